"""`electra find --near LAT,LON`: the best chargers near a position, ranked, each with why."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated

import typer
from rich.table import Table

from electra.cli import common
from electra.cli.common import JsonOpt, console, emit, handles_errors
from electra.errors import InvalidInput


def parse_near(text: str) -> tuple[int, int]:
    """``"52.52,13.405"`` -> microdegrees (exact decimals, no float rounding)."""
    try:
        lat, lon = (Decimal(p.strip()) for p in text.split(","))
    except (ValueError, InvalidOperation):
        raise InvalidInput(f"--near {text!r} is not LAT,LON", "e.g. --near 52.520008,13.404954") from None
    return int(lat * 1_000_000), int(lon * 1_000_000)


@handles_errors
def find(
    near: Annotated[str, typer.Option("--near", help="LAT,LON in degrees, e.g. 52.520008,13.404954.")],
    k: Annotated[int, typer.Option("-k", help="How many chargers.")] = 10,
    connector: Annotated[str | None, typer.Option(help="Any of these connectors, e.g. ccs2,type2.")] = None,
    min_power_kw: Annotated[int, typer.Option(help="At least this power.")] = 0,
    max_price_per_wh: Annotated[int | None, typer.Option(help="At most this energy price (base units per Wh).")] = None,
    available: Annotated[bool, typer.Option("--available", help="Only chargers Available now (OCPP).")] = False,
    public: Annotated[bool, typer.Option("--public", help="Only chargers leased to the public.")] = False,
    radius_km: Annotated[float | None, typer.Option(help="Within this distance.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Chargers near a position: distance, price, live availability, reliability and staking boost
    blended into one score (docs/discovery.md); every row says why it ranks where it does."""
    from electra.discovery.index import Filters
    from electra.discovery.indexer import StationIndexer
    from electra.domain.station import parse_connectors

    lat, lon = parse_near(near)
    e = common.electra()
    indexer = StationIndexer.for_electra(e, common.store_engine())
    with console.status("reading the charger registry"):
        indexer.sync()
    filters = Filters(
        connector_mask=parse_connectors(connector.split(",")) if connector else 0,
        min_power_w=min_power_kw * 1000,
        max_price_per_wh=max_price_per_wh,
        available_now=available,
        public_only=public,
        radius_m=None if radius_km is None else int(radius_km * 1000),
    )
    found = [f.to_json() for f in indexer.index.nearby(lat, lon, k, filters)]

    def human() -> None:
        t = Table(title=f"chargers near {near}", title_justify="left")
        for col in ("#", "charger", "km", "kW", "price/Wh", "status", "score", "why"):
            t.add_column(col)
        for f in found:
            t.add_row(
                str(f["rank"]),
                str(f["charger_id"]),
                f"{int(f['distance_m']) / 1000:.1f}",  # type: ignore[call-overload]
                str(int(f["max_power_w"]) // 1000),  # type: ignore[call-overload]
                f"{f['price_per_wh']} {f['asset']}",
                str(f["availability"]),
                str(f["score"]),
                ", ".join(f"{k} {v}" for k, v in f["points"].items()),  # type: ignore[attr-defined]
            )
        console.print(t)
        if not found:
            console.print("no charger matches; widen the radius or drop a filter")

    emit({"near": near, "count": len(found), "items": found}, as_json, human)
