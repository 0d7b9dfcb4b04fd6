"""`electra ocpp ...`: charger passwords, id tokens, sessions, and commands to connected chargers
through the running central system (over its control channel)."""

from __future__ import annotations

import asyncio
import ssl
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import select

from electra.cli import common
from electra.cli.common import JsonOpt, console, emit, handles_errors, kv_table
from electra.ocpp.control import ControlClient, read_token

ocpp_app = typer.Typer(
    help="The OCPP central system: charger passwords, id tokens, sessions, commands to chargers.",
    no_args_is_help=True,
)

Charger = Annotated[str, typer.Argument(help="Charge point id.")]


def _control(op: str, **args: Any) -> Any:
    s = common.settings()
    token = s.control_token.get_secret_value() if s.control_token else read_token(s.control_token_file)
    scheme = "wss" if s.ocpp_tls_cert else "ws"
    tls = ssl.create_default_context(cafile=str(s.ocpp_tls_cert)) if s.ocpp_tls_cert else None
    client = ControlClient(f"{scheme}://{s.csms_host}:{s.csms_port}", token, tls)
    return asyncio.run(client.request(op, **args))


def _show(title: str, result: Any, as_json: bool) -> None:
    emit(result, as_json, lambda: kv_table(title, [(k, v) for k, v in result.items()]))


@ocpp_app.command("password")
@handles_errors
def password(charger_id: Charger, as_json: JsonOpt = False) -> None:
    """Set a new Basic-auth password for a charger and print it once (only its scrypt hash is kept)."""
    from electra.ocpp.auth import CredentialStore

    secret = CredentialStore(common.store_engine()).rotate(charger_id)
    data = {"charger_id": charger_id, "username": charger_id, "password": secret}
    emit(
        data,
        as_json,
        lambda: kv_table("new charger password (shown once; configure it in the charger)", list(data.items())),
    )


@ocpp_app.command("token-issue")
@handles_errors
def token_issue(
    id_token: Annotated[str, typer.Argument(help="The idToken / idTag (RFID uid, app token, vehicle token).")],
    vehicle: Annotated[int | None, typer.Option("--vehicle", help="VehicleLedger id it stands for.")] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="Driver wallet address it stands for.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Allow an id token: chargers will be told Accepted for it."""
    from electra.charging.tokens import TokenRegistry

    info = TokenRegistry(common.store_engine()).issue(id_token, vehicle_id=vehicle, owner=owner)
    _show("id token", info.__dict__, as_json)


@ocpp_app.command("token-block")
@handles_errors
def token_block(
    id_token: Annotated[str, typer.Argument()],
    unblock: Annotated[bool, typer.Option("--unblock", help="Accept it again.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Block an id token (a lost card): chargers will be told Blocked."""
    from electra.charging.tokens import ACCEPTED, BLOCKED, TokenRegistry

    info = TokenRegistry(common.store_engine()).set_status(id_token, ACCEPTED if unblock else BLOCKED)
    _show("id token", info.__dict__, as_json)


@ocpp_app.command("sessions")
@handles_errors
def sessions(
    charger_id: Annotated[str | None, typer.Option("--charger", help="Only this charger.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 20,
    as_json: JsonOpt = False,
) -> None:
    """The newest charging sessions in the store."""
    from sqlalchemy.orm import Session

    from electra.store.models import SessionRecord

    with Session(common.store_engine()) as s:
        q = select(SessionRecord).order_by(SessionRecord.id.desc()).limit(limit)
        if charger_id:
            q = q.where(SessionRecord.charger_id == charger_id)
        rows = [
            {
                "id": r.id,
                "charger_id": r.charger_id,
                "connector": r.connector_id,
                "transaction": r.transaction_uid,
                "ocpp": r.ocpp_version,
                "id_token": r.id_token,
                "token_status": r.token_status,
                "status": r.status,
                "started_at_ms": r.started_at_ms,
                "stopped_at_ms": r.stopped_at_ms,
                "energy_wh": r.energy_wh,
                "billable_wh": r.billable_wh,
                "flags": r.flags,
                "meter_data": r.meter_data,
                "offline": r.offline,
            }
            for r in s.scalars(q)
        ]

    def human() -> None:
        t = Table(title="sessions", title_justify="left")
        for col in ("id", "charger", "tx", "token", "status", "energy Wh", "billable Wh", "flags"):
            t.add_column(col)
        for r in rows:
            t.add_row(
                str(r["id"]),
                r["charger_id"],
                r["transaction"],
                f"{r['id_token']} ({r['token_status']})",
                r["status"],
                str(r["energy_wh"] if r["energy_wh"] is not None else "-"),
                str(r["billable_wh"] if r["billable_wh"] is not None else "-"),
                r["flags"] or "",
            )
        console.print(t)

    emit(rows, as_json, human)


@ocpp_app.command("chargers")
@handles_errors
def chargers(as_json: JsonOpt = False) -> None:
    """Chargers connected to the running central system."""
    rows = _control("chargers")

    def human() -> None:
        t = Table(title=f"{len(rows)} connected", title_justify="left")
        for col in ("charger", "ocpp", "booted", "vendor/model", "connectors"):
            t.add_column(col)
        for r in rows:
            conns = " ".join(f"{k}:{v}" for k, v in r["connectors"].items())
            t.add_row(r["charger_id"], r["ocpp"], str(r["booted"]), f"{r['vendor']} {r['model']}", conns)
        console.print(t)

    emit(rows, as_json, human)


@ocpp_app.command("remote-start")
@handles_errors
def remote_start(
    charger_id: Charger,
    id_token: Annotated[str, typer.Option("--id-token", help="Token to start the session for.")],
    connector: Annotated[int | None, typer.Option("--connector", help="Connector (1.6) / EVSE (2.0.1).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """RemoteStartTransaction (1.6) / RequestStartTransaction (2.0.1)."""
    _show(
        "remote start",
        _control("remote_start", charger_id=charger_id, id_token=id_token, connector_id=connector),
        as_json,
    )


@ocpp_app.command("remote-stop")
@handles_errors
def remote_stop(
    charger_id: Charger,
    transaction: Annotated[str, typer.Option("--transaction", help="Transaction id.")],
    as_json: JsonOpt = False,
) -> None:
    """RemoteStopTransaction (1.6) / RequestStopTransaction (2.0.1)."""
    _show("remote stop", _control("remote_stop", charger_id=charger_id, transaction=transaction), as_json)


@ocpp_app.command("reset")
@handles_errors
def reset(
    charger_id: Charger,
    hard: Annotated[bool, typer.Option("--hard", help="Hard (1.6) / Immediate (2.0.1) instead of soft.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Reset a charger."""
    _show("reset", _control("reset", charger_id=charger_id, hard=hard), as_json)


@ocpp_app.command("trigger")
@handles_errors
def trigger(
    charger_id: Charger,
    message: Annotated[str, typer.Argument(help="e.g. Heartbeat, StatusNotification, MeterValues.")],
    connector: Annotated[int | None, typer.Option("--connector")] = None,
    as_json: JsonOpt = False,
) -> None:
    """TriggerMessage: ask the charger to send a message now."""
    _show("trigger", _control("trigger", charger_id=charger_id, message=message, connector_id=connector), as_json)


@ocpp_app.command("get-config")
@handles_errors
def get_config(
    charger_id: Charger,
    keys: Annotated[list[str] | None, typer.Argument(help="1.6 keys / 2.0.1 Component.Variable names.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """GetConfiguration (1.6) / GetVariables (2.0.1)."""
    emit(_control("get_config", charger_id=charger_id, keys=list(keys or [])), True)  # nested: always JSON


@ocpp_app.command("set-config")
@handles_errors
def set_config(
    charger_id: Charger,
    key: Annotated[str, typer.Argument(help="1.6 key / 2.0.1 Component.Variable.")],
    value: Annotated[str, typer.Argument()],
    as_json: JsonOpt = False,
) -> None:
    """ChangeConfiguration (1.6) / SetVariables (2.0.1)."""
    emit(_control("set_config", charger_id=charger_id, key=key, value=value), True)  # nested: always JSON


@ocpp_app.command("set-profile")
@handles_errors
def set_profile(
    charger_id: Charger,
    limit_w: Annotated[int, typer.Option("--limit-w", help="Power cap in W.", min=0)],
    connector: Annotated[int, typer.Option("--connector", help="0: the whole charger.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """SetChargingProfile: cap a charger's or a connector's power."""
    _show(
        "charging profile",
        _control("set_charging_profile", charger_id=charger_id, limit_w=limit_w, connector_id=connector),
        as_json,
    )
