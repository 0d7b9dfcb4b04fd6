"""`electra pricing` and `electra maintenance`: dynamic prices and maintenance tickets."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import typer
from rich.table import Table

from electra.cli import common
from electra.cli.common import JsonOpt, console, emit, handles_errors, kv_table
from electra.errors import InvalidInput

pricing_app = typer.Typer(help="Dynamic prices: the owner's tariff times a forecast multiplier.", no_args_is_help=True)
maintenance_app = typer.Typer(help="Predictive maintenance: risk scores and tickets.", no_args_is_help=True)


def _iso(at_ms: int | None) -> str:
    if at_ms is None:
        return "-"
    return dt.datetime.fromtimestamp(at_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


@pricing_app.command("show")
@handles_errors
def show(
    charger_id: Annotated[str, typer.Argument(help="The charger's id.")],
    as_json: JsonOpt = False,
) -> None:
    """The charger's price for this hour and why: forecast, multiplier, bounds. A session that
    starts this hour pays it."""
    from electra.intelligence.service import pricing_for

    q, published = pricing_for(common.store_engine(), common.electra()).quote(charger_id)
    data = {**q.to_json(), "published_now": published}

    def human() -> None:
        f = data["forecast"]
        kv_table(
            f"price of {charger_id}, {_iso(q.valid_from_ms)} to {_iso(q.valid_until_ms)}",
            [
                (
                    "energy per Wh",
                    f"{q.price.energy_price_per_wh} {q.price.asset} base units (base {q.base.energy_price_per_wh})",
                ),
                ("time per hour", f"{q.price.time_price_per_hour} (base {q.base.time_price_per_hour})"),
                ("multiplier", f"{q.multiplier_bps} bps (rule gave {q.raw_multiplier_bps})"),
                ("bounds", f"{q.bounds.floor_bps}..{q.bounds.cap_bps} bps ({q.bounds.source})"),
                ("forecast", f"{f['utilization_permille']} permille ({f['method']})"),
                ("next 24 h", " ".join(str(u) for u in f["next_24h_permille"]) or "-"),
            ],
        )
        for line in q.why:
            console.print(f"- {line}", highlight=False)

    emit(data, as_json, human)


STATUS_CHOICES = ("live", "open", "scheduled", "closed", "all")


def _tickets_table(tickets: list[Any]) -> None:
    t = Table(title="maintenance tickets", title_justify="left")
    for col in ("id", "charger", "status", "risk", "opened", "visit", "why"):
        t.add_column(col)
    for x in tickets:
        t.add_row(
            str(x.id),
            x.charger_id,
            x.status.value,
            f"{x.risk_permille} permille",
            _iso(x.opened_at_ms),
            _iso(x.scheduled_for_ms),
            x.resolution or (x.reasons[0] if x.reasons else ""),
        )
    console.print(t)


@maintenance_app.command("list")
@handles_errors
def list_tickets(
    status: Annotated[
        str, typer.Option("--status", help="live (open or scheduled), open, scheduled, closed, all")
    ] = "live",
    charger: Annotated[str | None, typer.Option("--charger", help="Only this charger's tickets.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Maintenance tickets, the riskiest live ones first."""
    from electra.intelligence.maintenance import TicketStatus
    from electra.intelligence.store import TicketBook

    wanted = _statuses(status, TicketStatus)
    tickets = TicketBook(common.store_engine()).list(wanted, charger)
    emit({"count": len(tickets), "items": [t.to_json() for t in tickets]}, as_json, lambda: _tickets_table(tickets))


def _statuses(status: str, kind: Any) -> list[Any] | None:
    if status not in STATUS_CHOICES:
        raise InvalidInput(f"ticket status {status!r}", f"one of {', '.join(STATUS_CHOICES)}")
    if status == "all":
        return None
    if status == "live":
        return [kind.OPEN, kind.SCHEDULED]
    return [kind(status)]


@maintenance_app.command("scan")
@handles_errors
def scan(as_json: JsonOpt = False) -> None:
    """Scores every charger's risk of failing in the next days; opens a ticket for each one at or
    above the threshold (or updates its open ticket)."""
    from electra.intelligence.service import MaintenanceService

    report = MaintenanceService(common.store_engine()).scan()

    def human() -> None:
        console.print(
            f"scored {len(report.scores)} chargers; threshold {report.threshold_permille} permille; "
            f"{len(report.opened)} ticket(s) opened, {len(report.rescored)} updated",
            highlight=False,
        )
        for s in report.scores[:10]:
            console.print(f"  {s.charger_id}: {s.risk_permille} permille; {s.evidence[0]}", highlight=False)

    emit(report.to_json(), as_json, human)


def _parse_time(text: str) -> int:
    try:
        t = dt.datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise InvalidInput(f"time {text!r}", "write ISO 8601, e.g. 2026-12-03T09:00Z") from exc
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1000)


@maintenance_app.command("schedule")
@handles_errors
def schedule(
    ticket_id: Annotated[int, typer.Argument(help="The ticket's id.", min=1)],
    at: Annotated[str, typer.Option("--at", help="When the visit is, ISO 8601 (UTC if no zone).")],
    as_json: JsonOpt = False,
) -> None:
    """Books a visit for a ticket (again, to move it)."""
    import time

    from electra.intelligence.store import TicketBook

    t = TicketBook(common.store_engine()).schedule(ticket_id, _parse_time(at), int(time.time() * 1000))
    emit(t.to_json(), as_json, lambda: _tickets_table([t]))


@maintenance_app.command("close")
@handles_errors
def close(
    ticket_id: Annotated[int, typer.Argument(help="The ticket's id.", min=1)],
    resolution: Annotated[str, typer.Option("--resolution", help="What was done, e.g. 'replaced contactor'.")],
    as_json: JsonOpt = False,
) -> None:
    """Closes a ticket with what was done."""
    import time

    from electra.intelligence.store import TicketBook

    t = TicketBook(common.store_engine()).close(ticket_id, resolution, int(time.time() * 1000))
    emit(t.to_json(), as_json, lambda: _tickets_table([t]))
