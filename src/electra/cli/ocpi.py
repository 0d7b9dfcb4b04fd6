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


@ocpi_app.command("mint")
@handles_errors
def mint(
    location_id: Annotated[str, typer.Argument(help="An imported location's id (see `electra ocpi import`).")],
    operator_id: Annotated[str | None, typer.Option(help="Its operator, e.g. DE*ELC, if the id is not unique.")] = None,
    ocpp: Annotated[str, typer.Option(help="OCPP versions it speaks, e.g. 1.6,2.0.1.")] = "1.6,2.0.1",
    key: Annotated[str | None, typer.Option("--key", help="Hex key of the host who receives the NFT.")] = None,
    account: Annotated[int | None, typer.Option("--account", help="Dev chain account index of the host.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Registers an imported OCPI location on-chain as a charger NFT: the operator's choice, never
    done by the import itself. The charger's device key is created under the data directory."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from electra.domain.station import StationSpec, parse_ocpp_versions
    from electra.store.models import OcpiLocationRecord

    with Session(common.store_engine()) as s:
        q = select(OcpiLocationRecord).where(OcpiLocationRecord.location_id == location_id)
        if operator_id:
            cc, party = operator_id.replace("*", "")[:2], operator_id.replace("*", "")[2:]
            q = q.where(OcpiLocationRecord.country_code == cc.upper(), OcpiLocationRecord.party_id == party.upper())
        found = list(s.scalars(q))
    if not found:
        raise InvalidInput(f"no imported location {location_id!r}", "import it with `electra ocpi import FILE`")
    if len(found) > 1:
        raise InvalidInput(f"{len(found)} operators have a location {location_id!r}", "give --operator-id")
    loc = found[0]
    if loc.connector_types == 0 or loc.max_power_w <= 0:
        raise InvalidInput(f"location {location_id} names no connector standard or power", "fix the OCPI source")
    spec = StationSpec(
        location_id,
        loc.latitude_e6,
        loc.longitude_e6,
        loc.max_power_w,
        loc.connector_types,
        parse_ocpp_versions(ocpp.split(",")),
        (loc.country_code + loc.party_id).encode(),
        ocpi_compliant=True,
        metadata={"name": loc.name, "ocpi": {"country_code": loc.country_code, "party_id": loc.party_id}},
    )
    e = common.electra()
    if e.stations.token_id_of(location_id):
        raise InvalidInput(f"{location_id} is already a charger NFT", "nothing to mint")
    owner = common.sender(e.client, key, account)
    device, key_file, _ = common.device_account(None, "stations", location_id)
    token_id, tx = e.stations.register(spec, device, owner=owner)
    data = {
        "charger_id": location_id,
        "token_id": token_id,
        "owner": owner.address,
        "tx_hash": tx.tx_hash,
        "device_key_file": str(key_file) if key_file else None,
    }
    emit(data, as_json, lambda: console.print(f"minted {location_id} as charger NFT {token_id} for {owner.address}"))
