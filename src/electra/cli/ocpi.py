"""`electra ocpi`: station lists in the OCPI 2.2.1 Locations format."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from electra.cli import common
from electra.cli.common import JsonOpt, console, emit, handles_errors
from electra.errors import InvalidInput

ocpi_app = typer.Typer(
    help="OCPI 2.2.1 Locations: export this network's chargers, import another's.", no_args_is_help=True
)


@ocpi_app.command("export")
@handles_errors
def export(
    out: Annotated[Path | None, typer.Option("--out", help="Write the OCPI envelope here (default: stdout).")] = None,
) -> None:
    """Every registered charger as an OCPI Location, with live status, lease and tariff from the store."""
    from electra.discovery.indexer import StationIndexer
    from electra.discovery.ocpi import export_locations

    e = common.electra()
    indexer = StationIndexer.for_electra(e, common.store_engine())
    with console.status("reading the charger registry"):
        indexer.sync()
    listings = [x for t in sorted(indexer.index.token_ids()) if (x := indexer.index.get(t)) is not None]
    operators = {x.token_id: e.stations.station(x.token_id).operator_id for x in listings}
    doc = export_locations(listings, operators, int(time.time() * 1000))
    text = json.dumps(doc, indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        console.print(f"{len(listings)} locations written to {out}")


@ocpi_app.command("import")
@handles_errors
def import_(
    source: Annotated[Path, typer.Argument(help="An OCPI Locations response (envelope) or a JSON array.")],
    as_json: JsonOpt = False,
) -> None:
    """Reads and checks OCPI Locations into the platform's read model. Nothing is registered
    on-chain: mint a charger from an imported location with `electra station register`."""
    from electra.discovery.ocpi import import_locations, store_locations

    try:
        doc = json.loads(source.read_text())
    except OSError as exc:
        raise InvalidInput(f"cannot read {source}: {exc.strerror}", "give the file's path") from exc
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{source} is not JSON: {exc}", "give an OCPI Locations response") from exc
    rows = import_locations(doc)
    stored = store_locations(common.store_engine(), rows, str(source), int(time.time() * 1000))
    data = {
        "imported": stored,
        "locations": [
            {
                "id": r.location_id,
                "operator_id": r.operator_id,
                "name": r.name,
                "latitude_e6": r.latitude_e6,
                "longitude_e6": r.longitude_e6,
                "connector_types": r.connector_types,
                "max_power_w": r.max_power_w,
                "public": r.public,
                "availability": r.availability.name.lower(),
            }
            for r in rows
        ],
    }
    emit(
        data,
        as_json,
        lambda: console.print(f"{stored} OCPI locations read, checked and stored (table ocpi_locations); none minted"),
    )
