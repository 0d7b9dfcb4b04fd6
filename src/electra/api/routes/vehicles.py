"""Vehicles and their wallets: balances, deposit instructions, fiat top-ups, history, alerts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from hexbytes import HexBytes

from electra.api.context import ApiContext, ApiProblem
from electra.api.deps import Chain, Ctx, OwnVehicle, Page, SignedIn
from electra.api.routes import COMMON
from electra.api.schemas import (
    AlertPublic,
    AlertUpdate,
    AssetPublic,
    AssetSymbol,
    BalancePublic,
    DepositInstructionsPublic,
    TopUpCreate,
    TopUpPublic,
    TxCallPublic,
    VehicleCreate,
    VehiclePublic,
    WalletEventPublic,
    WalletPublic,
)
from electra.api.schemas import (
    Page as PageOf,
)
from electra.chain.bindings import Electra, VehicleRecord
from electra.errors import ContractReverted, InvalidInput

router = APIRouter(prefix="/api/v1/vehicles", tags=["vehicles"], responses=COMMON)
MAX_ID = 2**63 - 1


def _public(v: VehicleRecord) -> VehiclePublic:
    return VehiclePublic(
        vehicle_id=v.vehicle_id,
        vin_hash=v.vin_hash,
        owner=v.owner,
        device=v.device,
        registered_at=v.registered_at,
        active=v.active,
    )


def _vehicle(e: Electra, vehicle_id: int) -> VehicleRecord:
    if not 1 <= vehicle_id <= e.vehicles.total():
        raise ApiProblem(404, "vehicle-unknown", f"no vehicle {vehicle_id} in VehicleLedger")
    return e.vehicles.vehicle(vehicle_id)


@router.get("", summary="Vehicles: a driver's own; every vehicle for operators (by id)")
def vehicles(ctx: Ctx, caller: SignedIn, e: Chain, page: Page) -> PageOf[VehiclePublic]:
    if caller.staff:
        first = page.cursor or 1
        last = min(e.vehicles.total(), first + page.limit - 1)
        ids = list(range(first, last + 1))
        more = last < e.vehicles.total()
        return PageOf[VehiclePublic](
            items=[_public(e.vehicles.vehicle(i)) for i in ids], next=str(last + 1) if more else None
        )
    assert caller.address is not None
    owned = sorted(v for v in ctx.roles.vehicles_of(caller.address) if page.cursor is None or v >= page.cursor)
    shown = owned[: page.limit]
    more = len(owned) > page.limit
    return PageOf[VehiclePublic](
        items=[_public(e.vehicles.vehicle(i)) for i in shown], next=str(owned[page.limit]) if more else None
    )


@router.post("", status_code=201, summary="Onboards a vehicle its device signed for; the platform relays it")
def onboard(ctx: Ctx, caller: SignedIn, e: Chain, body: VehicleCreate) -> VehiclePublic:
    m = body.message
    if not caller.staff and (caller.address or "").lower() != m.owner.lower():
        raise ApiProblem(403, "not-your-vehicle", "a wallet onboards vehicles it will own", "set owner to your address")
    try:
        vin_hash = bytes(HexBytes(m.vinHash))
        if len(vin_hash) != 32:
            raise InvalidInput("vinHash must be 32 bytes", "keccak256 of the VIN")
        signed = {
            "message": {
                "vinHash": vin_hash,
                "owner": m.owner,
                "device": m.device,
                "nonce": m.nonce,
                "deadline": m.deadline,
            },
            "signature": body.signature,
        }
        vehicle_id, _ = e.vehicles.relay_onboarding(signed)
    except ContractReverted as exc:
        raise ApiProblem(409, "onboarding-refused", exc.cause, exc.fix) from exc
    except InvalidInput as exc:
        raise ApiProblem(400, "bad-request", exc.cause, exc.fix) from exc
    if caller.address:
        ctx.roles.forget(caller.address)
    return _public(e.vehicles.vehicle(vehicle_id))


@router.get("/{vehicle_id}", summary="A vehicle as VehicleLedger holds it")
def vehicle(vehicle_id: OwnVehicle, e: Chain) -> VehiclePublic:
    return _public(_vehicle(e, vehicle_id))


def _wallet(ctx: ApiContext, vehicle_id: int) -> Any:
    w = ctx.wallet()
    _vehicle(w.electra, vehicle_id)
    return w


@router.get("/{vehicle_id}/wallet", summary="The vehicle's balances on PaymentHub (read from the chain), with alerts")
def wallet(vehicle_id: OwnVehicle, ctx: Ctx) -> WalletPublic:
    w = _wallet(ctx, vehicle_id)
    alerts = {a.asset: a for a in w.check_alerts(vehicle_id)}
    rows = []
    for symbol, units in w.balances(vehicle_id).items():
        a, alert = w.asset(symbol), alerts.get(symbol)
        rows.append(
            BalancePublic(
                asset=symbol,
                address=a.address,
                decimals=a.decimals,
                balance=str(units),
                alert_below=str(alert.threshold) if alert else None,
                alert_firing=alert.firing if alert else False,
            )
        )
    return WalletPublic(vehicle_id=vehicle_id, balances=rows)


@router.get(
    "/{vehicle_id}/wallet/deposit",
    summary="How to deposit: the calls a wallet sends (approve, deposit), or a permit to sign",
)
def deposit_instructions(
    vehicle_id: OwnVehicle,
    ctx: Ctx,
    amount: Annotated[str, Query(pattern=r"^[1-9][0-9]{0,77}$", description="Base units")],
    asset: AssetSymbol = "EUSD",
    funder: Annotated[str | None, Query(pattern=r"^0x[0-9a-fA-F]{40}$", description="Who pays: adds a permit")] = None,
    deadline: Annotated[int | None, Query(ge=0, le=2**64 - 1, description="Permit deadline, unix s")] = None,
) -> DepositInstructionsPublic:
    from eth_utils.address import to_checksum_address

    from electra.chain.payments import Erc20Binding

    w = _wallet(ctx, vehicle_id)
    a = w.asset(asset)
    units = int(amount)
    hub = w.electra.payments
    token = Erc20Binding(w.electra.client, a.address)
    calls = [
        TxCallPublic(
            to=a.address,
            data=token.contract.encode_abi("approve", args=[hub.address, units]),
            description=f"approve PaymentHub to take {a.show(units)}",
        ),
        TxCallPublic(
            to=hub.address,
            data=hub.contract.encode_abi("deposit", args=[vehicle_id, a.address, units]),
            description=f"deposit {a.show(units)} for vehicle {vehicle_id}",
        ),
    ]
    permit = None
    if funder is not None:
        until = deadline if deadline is not None else hub.chain_time() + 3600
        permit = token.permit_message(to_checksum_address(funder), hub.address, units, until)
    return DepositInstructionsPublic(
        vehicle_id=vehicle_id,
        chain_id=w.electra.client.chain_id,
        payment_hub=hub.address,
        asset=AssetPublic(symbol=a.symbol, address=a.address, decimals=a.decimals),
        amount=str(units),
        calls=calls,
        permit=_plain(permit) if permit is not None else None,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@router.post("/{vehicle_id}/wallet/topup", status_code=201, summary="A fiat top-up: a checkout at the payment provider")
def topup(vehicle_id: OwnVehicle, ctx: Ctx, body: TopUpCreate) -> TopUpPublic:
    provider = ctx.provider(body.provider)
    topups = ctx.topups()
    _vehicle(topups.electra, vehicle_id)
    try:
        intent = topups.checkout(provider, vehicle_id, body.amount_cents, body.currency)
    except InvalidInput as exc:
        raise ApiProblem(400, "bad-request", exc.cause, exc.fix) from exc
    return TopUpPublic(
        provider=intent.provider,
        provider_ref=intent.provider_ref,
        checkout_url=intent.checkout_url,
        vehicle_id=vehicle_id,
        amount_cents=intent.amount_cents,
        currency=intent.currency,
        credits=str(topups.units(intent.amount_cents)),
    )


@router.get("/{vehicle_id}/wallet/history", summary="Deposits, withdrawals, top-ups and charges, newest first")
def history(vehicle_id: OwnVehicle, ctx: Ctx, page: Page) -> PageOf[WalletEventPublic]:
    from electra.api.repositories import wallet_history

    h = wallet_history(ctx.store(), vehicle_id=vehicle_id, limit=page.limit, before=page.cursor)
    return PageOf[WalletEventPublic](
        items=[WalletEventPublic(**e.to_json()) for e in h.events],
        next=str(h.next_before) if h.next_before is not None else None,
    )


@router.get("/{vehicle_id}/wallet/alerts", summary="Low-balance alerts, checked against the chain now")
def alerts(vehicle_id: OwnVehicle, ctx: Ctx) -> list[AlertPublic]:
    w = _wallet(ctx, vehicle_id)
    return [AlertPublic(**{k: v for k, v in a.to_json().items() if k != "changed"}) for a in w.check_alerts(vehicle_id)]


@router.put("/{vehicle_id}/wallet/alerts/{asset}", summary="Alert when the balance in an asset is below a threshold")
def set_alert(vehicle_id: OwnVehicle, asset: AssetSymbol, ctx: Ctx, body: AlertUpdate) -> AlertPublic:
    w = _wallet(ctx, vehicle_id)
    try:
        a = w.set_alert(vehicle_id, asset, int(body.below))
    except InvalidInput as exc:
        raise ApiProblem(400, "bad-request", exc.cause, exc.fix) from exc
    return AlertPublic(**{k: v for k, v in a.to_json().items() if k != "changed"})


@router.delete(
    "/{vehicle_id}/wallet/alerts/{asset}", status_code=204, response_class=Response, summary="Removes an alert"
)
def remove_alert(vehicle_id: OwnVehicle, asset: AssetSymbol, ctx: Ctx) -> Response:
    w = _wallet(ctx, vehicle_id)
    if not w.remove_alert(vehicle_id, asset):
        raise ApiProblem(404, "alert-unknown", f"vehicle {vehicle_id} has no {asset} alert")
    return Response(status_code=204)
