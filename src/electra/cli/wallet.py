"""`electra wallet`: a vehicle's money in PaymentHub: deposits, withdrawals, fiat top-ups (through the
sandbox provider, signed webhook and all), balances, history, earnings and low-balance alerts.

Amounts are decimal strings in the token's units ("12.50" EUSD), converted exactly to base units;
more decimals than the token has are refused.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from electra.cli import common
from electra.cli.common import AccountOpt, JsonOpt, console, emit, handles_errors, kv_table
from electra.errors import InvalidInput
from electra.payments.amounts import FIAT_DECIMALS, format_units, parse_units
from electra.payments.providers import SandboxProvider, load_or_create_secret
from electra.payments.topup import TopUpFailed, TopUpService
from electra.payments.wallet import AlertState, Asset, WalletEvent, WalletService
from electra.payments.webhooks import WebhookReceiver

wallet_app = typer.Typer(
    help="Vehicle wallets in PaymentHub: deposits, withdrawals, fiat top-ups, history, low-balance alerts.",
    no_args_is_help=True,
)

VehicleArg = Annotated[int, typer.Argument(help="The vehicle's id in VehicleLedger.", min=1)]
AmountArg = Annotated[str, typer.Argument(help="Amount in the asset's units, e.g. 12.50 (exact; no rounding).")]
AssetOpt = Annotated[str, typer.Option("--asset", help="EUSD (ElectraUSD, 6 decimals) or ELC (18 decimals).")]
FromKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--from-key",
        "--key",
        envvar="ELECTRA_USER_KEY",
        help="Sender's private key (hex). Default: the operator key.",
    ),
]


def _wallet() -> WalletService:
    return WalletService(common.store_engine(), common.electra())


def _amount(text: str, asset: Asset) -> int:
    units = parse_units(text, asset.decimals)
    if units == 0:
        raise InvalidInput(f"amount {text} is zero", "give a positive amount")
    return units


def _when(at_ms: int) -> str:
    return datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _money(units: int, asset: Asset) -> dict[str, Any]:
    return {"asset": asset.symbol, "amount": format_units(units, asset.decimals), "base_units": str(units)}


def _transfer_json(kind: str, t: Any, asset: Asset, **extra: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "vehicle_id": t.event.vehicle_id,
        **_money(t.event.amount, asset),
        "balance": format_units(t.balance, asset.decimals),
        "balance_base_units": str(t.balance),
        **extra,
        "tx_hash": t.tx.tx_hash,
        "gas_used": t.tx.gas_used,
    }


@wallet_app.command("deposit")
@handles_errors
def deposit(
    vehicle_id: VehicleArg,
    amount: AmountArg,
    asset: AssetOpt = "EUSD",
    key: FromKeyOpt = None,
    account: AccountOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Deposit for a vehicle from your account (approves PaymentHub first). Anyone may fund any vehicle."""
    w = _wallet()
    a = w.asset(asset)
    sender = common.sender(w.electra.client, key, account)
    t = w.deposit(vehicle_id, a.symbol, _amount(amount, a), sender=sender)
    data = _transfer_json("deposit", t, a, **{"from": sender.address})
    emit(
        data,
        as_json,
        lambda: kv_table(f"deposited {a.show(t.event.amount)} for vehicle {vehicle_id}", list(data.items())),
    )


@wallet_app.command("withdraw")
@handles_errors
def withdraw(
    vehicle_id: VehicleArg,
    amount: AmountArg,
    asset: AssetOpt = "EUSD",
    to: Annotated[str | None, typer.Option("--to", help="Where to send it. Default: the owner.")] = None,
    key: FromKeyOpt = None,
    account: AccountOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The vehicle's owner takes unused balance back (send with the owner's key)."""
    w = _wallet()
    a = w.asset(asset)
    owner = common.sender(w.electra.client, key, account)
    t = w.withdraw(vehicle_id, a.symbol, _amount(amount, a), owner, to=to)
    data = _transfer_json("withdrawal", t, a, to=to or owner.address)
    emit(
        data,
        as_json,
        lambda: kv_table(f"withdrew {a.show(t.event.amount)} from vehicle {vehicle_id}", list(data.items())),
    )


@wallet_app.command("topup")
@handles_errors
def topup(
    vehicle_id: VehicleArg,
    amount_eur: Annotated[str, typer.Argument(help="Fiat amount, e.g. 25 or 25.50.")],
    currency: Annotated[str, typer.Option("--currency", help="EUR or USD.")] = "EUR",
    as_json: JsonOpt = False,
) -> None:
    """Top up with fiat through the sandbox provider: checkout, signed webhook, ElectraUSD credited.

    The ElectraUSD is minted and deposited for the vehicle at par: 1 cent is 10,000 base units.
    """
    cents = parse_units(amount_eur, FIAT_DECIMALS, what="fiat amount")
    engine = common.store_engine()
    wallet = WalletService(engine, common.electra())
    provider = SandboxProvider(load_or_create_secret(common.settings().data_dir / "payments" / "sandbox.secret"))
    topups = TopUpService(engine, wallet.electra, wallet=wallet)
    intent = topups.checkout(provider, vehicle_id, cents, currency)
    request = provider.complete(intent)  # the driver paid; the provider posts its webhook
    answer = WebhookReceiver([provider], topups).receive(provider.name, request.headers, request.body)
    if answer.outcome is None or answer.outcome.status != "credited":
        raise TopUpFailed(
            f"the webhook was answered {answer.status_code}: {answer.body.get('detail', answer.body)}",
            str(answer.body.get("fix", "retry the top-up")),
        )
    o = answer.outcome
    a = wallet.asset("EUSD")
    balance = wallet.balance(vehicle_id, "EUSD")
    data = {
        "vehicle_id": vehicle_id,
        "paid": f"{cents // 100}.{cents % 100:02d} {o.currency}",
        "provider_ref": o.provider_ref,
        "credited": format_units(o.amount, a.decimals),
        "credited_base_units": str(o.amount),
        "asset": a.symbol,
        "balance": format_units(balance, a.decimals),
        "mint_tx": o.mint_tx,
        "tx_hash": o.tx_hash,
    }
    emit(data, as_json, lambda: kv_table(f"credited {a.show(o.amount)} to vehicle {vehicle_id}", list(data.items())))


@wallet_app.command("balance")
@handles_errors
def balance(vehicle_id: VehicleArg, as_json: JsonOpt = False) -> None:
    """The vehicle's balances in PaymentHub (read from the chain), with its low-balance alerts."""
    w = _wallet()
    balances = w.balances(vehicle_id)
    alerts = {a.asset: a for a in w.check_alerts(vehicle_id)}
    rows = []
    for symbol, units in balances.items():
        a, alert = w.asset(symbol), alerts.get(symbol)
        rows.append(
            {
                **_money(units, a),
                "alert_below": format_units(alert.threshold, a.decimals) if alert else None,
                "alert_firing": alert.firing if alert else False,
            }
        )

    def human() -> None:
        t = Table(title=f"vehicle {vehicle_id}", title_justify="left")
        for col in ("asset", "balance", "base units", "alert below", ""):
            t.add_column(col, justify="right" if col in ("balance", "base units", "alert below") else "left")
        for r in rows:
            firing = "[bold red]LOW[/]" if r["alert_firing"] else ""
            t.add_row(r["asset"], r["amount"], r["base_units"], r["alert_below"] or "-", firing)
        console.print(t)

    emit({"vehicle_id": vehicle_id, "balances": rows}, as_json, human)


@wallet_app.command("earnings")
@handles_errors
def earnings(
    owner: Annotated[str, typer.Argument(help="A charger holder's address.")], as_json: JsonOpt = False
) -> None:
    """What a charger holder has earned from settled sessions and not yet withdrawn."""
    w = _wallet()
    rows = [_money(units, w.asset(symbol)) for symbol, units in w.earnings(owner).items()]
    emit(
        {"owner": owner, "earnings": rows},
        as_json,
        lambda: kv_table(f"earnings of {owner}", [(r["asset"], r["amount"]) for r in rows]),
    )


def _event_json(w: WalletService, e: WalletEvent) -> dict[str, Any]:
    decimals = w.assets[e.asset].decimals if e.asset in w.assets else 0
    return {**e.to_json(), "display": format_units(e.amount, decimals), "at": _when(e.at_ms)}


@wallet_app.command("history")
@handles_errors
def history(
    vehicle: Annotated[int | None, typer.Option("--vehicle", help="A vehicle's history.", min=1)] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="An owner's: their vehicles and earnings.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Lines per page.", min=1, max=500)] = 20,
    before: Annotated[int | None, typer.Option("--before", help="Page on: lines older than this id.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Deposits, withdrawals, top-ups, charges, earnings and payouts, newest first."""
    w = _wallet()
    page = w.history(vehicle_id=vehicle, owner=owner, limit=limit, before=before)
    lines = [_event_json(w, e) for e in page.events]

    def human() -> None:
        who = f"vehicle {vehicle}" if vehicle is not None else f"owner {owner}"
        t = Table(title=f"history of {who}", title_justify="left")
        for col in ("id", "when (UTC)", "kind", "vehicle", "amount", "asset", "reference"):
            t.add_column(col, justify="right" if col in ("id", "amount", "vehicle") else "left")
        for x in lines:
            t.add_row(
                str(x["id"]), x["at"], x["kind"], str(x["vehicle_id"] or "-"), x["display"], x["asset"], x["reference"]
            )
        console.print(t)
        if page.next_before is not None:
            console.print(f"older lines: --before {page.next_before}", highlight=False)

    emit({"events": lines, "next_before": page.next_before}, as_json, human)


def _alert_json(w: WalletService, a: AlertState) -> dict[str, Any]:
    asset = w.asset(a.asset)
    shown = {
        "threshold_display": format_units(a.threshold, asset.decimals),
        "balance_display": None if a.balance is None else format_units(a.balance, asset.decimals),
    }
    return {**a.to_json(), **shown, "checked_at": _when(a.updated_at_ms)}


def _alert_table(title: str, rows: list[dict[str, Any]]) -> None:
    t = Table(title=title, title_justify="left")
    for col in ("vehicle", "asset", "balance", "below", "state", "checked (UTC)"):
        t.add_column(col, justify="right" if col in ("vehicle", "balance", "below") else "left")
    for r in rows:
        state = "[bold red]firing[/]" if r["firing"] else "ok"
        t.add_row(
            str(r["vehicle_id"]),
            r["asset"],
            r["balance_display"] or "?",
            r["threshold_display"],
            state,
            r["checked_at"],
        )
    console.print(t)


@wallet_app.command("alert")
@handles_errors
def alert(
    vehicle_id: VehicleArg,
    below: Annotated[str | None, typer.Option("--below", help="Alert when the balance is below this.")] = None,
    asset: AssetOpt = "EUSD",
    remove: Annotated[bool, typer.Option("--remove", help="Remove the vehicle's alert in this asset.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Set (or --remove) a vehicle's low-balance alert in an asset; it is checked at once."""
    w = _wallet()
    a = w.asset(asset)
    if remove == (below is not None):
        raise InvalidInput("give either --below AMOUNT or --remove", "e.g. `electra wallet alert 1 --below 10`")
    if remove:
        removed = w.remove_alert(vehicle_id, a.symbol)
        data: dict[str, Any] = {"vehicle_id": vehicle_id, "asset": a.symbol, "removed": removed}
        emit(data, as_json, lambda: console.print("alert removed" if removed else "there was no such alert"))
        return
    state = _alert_json(w, w.set_alert(vehicle_id, a.symbol, _amount(str(below), a)))
    emit(state, as_json, lambda: _alert_table(f"alert of vehicle {vehicle_id}", [state]))


@wallet_app.command("alerts")
@handles_errors
def alerts(
    show_all: Annotated[bool, typer.Option("--all", help="Also the alerts that are not firing.")] = False,
    check: Annotated[bool, typer.Option("--check", help="Re-read every balance from the chain first.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Low-balance alerts that are firing (as of the last check; --check re-reads the chain)."""
    w = _wallet()
    if check:
        w.check_all_alerts()
    rows = [_alert_json(w, a) for a in w.alerts(firing_only=not show_all)]

    def human() -> None:
        if not rows:
            console.print("no alerts are firing" if not show_all else "no alerts are set")
            return
        _alert_table("low-balance alerts", rows)

    emit({"alerts": rows}, as_json, human)
