"""`electra session`: one charging session, its bill and its receipt."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from electra.cli import common
from electra.cli.common import JsonOpt, console, emit, handles_errors
from electra.errors import InvalidInput

session_app = typer.Typer(help="Charging sessions: what was metered, billed and settled.", no_args_is_help=True)


@session_app.command("show")
@handles_errors
def show(
    session_id: Annotated[int, typer.Argument(help="The session's id (a 1.6 transactionId).")], as_json: JsonOpt = False
) -> None:
    """A session: charger, token, times, meter registers, energy, flags, signed meter data and its settlement."""
    from sqlalchemy.orm import Session

    from electra.store.models import SessionRecord, SettlementRecord

    with Session(common.store_engine()) as s:
        row = s.get(SessionRecord, session_id)
        if row is None:
            raise InvalidInput(f"no session {session_id}", "see `electra ocpp sessions`")
        bill = s.get(SettlementRecord, session_id)
        data = {
            "id": row.id,
            "charger_id": row.charger_id,
            "transaction": row.transaction_uid,
            "id_token": row.id_token,
            "token_status": row.token_status,
            "vehicle_id": row.vehicle_id,
            "status": row.status,
            "started_at_ms": row.started_at_ms,
            "stopped_at_ms": row.stopped_at_ms,
            "meter_start_wh": row.meter_start_wh,
            "meter_stop_wh": row.meter_stop_wh,
            "energy_wh": row.energy_wh,
            "billable_wh": row.billable_wh,
            "flags": row.flags,
            "meter_data": row.meter_data,
            "meter_data_detail": row.meter_data_detail,
            "settlement": bill.status if bill is not None else "not billed yet",
            "amount": f"{bill.amount} {bill.asset}" if bill is not None else None,
        }

    def human() -> None:
        t = Table(title=f"session {session_id}", title_justify="left", show_header=False)
        for k, v in data.items():
            t.add_row(k, "-" if v is None else str(v))
        console.print(t)

    emit(data, as_json, human)


@session_app.command("receipt")
@handles_errors
def receipt(session_id: Annotated[int, typer.Argument(help="The session's id.")], as_json: JsonOpt = False) -> None:
    """The receipt: energy, tariff, cost lines, the settlement transaction and the record hash."""
    from electra.chain.settlement import receipt_of

    data = receipt_of(common.store_engine(), session_id)
    if data is None:
        raise InvalidInput(
            f"session {session_id} has no bill yet", "a session is billed once it completes and the platform runs"
        )

    def human() -> None:
        asset = data["asset"]
        t = Table(title=f"receipt for session {session_id} at {data['charger_id']}", title_justify="left")
        t.add_column("line")
        t.add_column(f"{asset} base units", justify="right")
        for line, amount in (data["cost"] or {}).items():
            t.add_row(line, str(amount))
        t.add_row("[b]charged[/]", f"[b]{data['amount']}[/]")
        console.print(t)
        usage = data["usage"] or {}
        console.print(f"energy: {usage.get('energy_wh', '-')} Wh   tariff: {data['tariff']}", highlight=False)
        console.print(f"status: {data['status']}" + (f" ({data['reason']})" if data["reason"] else ""), highlight=False)
        console.print(f"settlement transaction: {data['settlement_tx'] or '-'} (block {data['block'] or '-'})")
        console.print(f"paid to: {data['payee'] or '-'}   protocol fee: {data['fee'] or '-'}", highlight=False)
        console.print(f"session record hash: {data['record_hash']}")

    emit(data, as_json, human)
