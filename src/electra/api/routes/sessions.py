"""Sessions: list, start and stop through the central system's remote commands, live progress,
receipt and proof."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import requests
from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from electra.api.context import ApiContext, ApiProblem
from electra.api.deps import Ctx, Page, SessionAccess, SessionIdPath, SignedIn, Store
from electra.api.repositories import ChargerRepository, SessionRepository
from electra.api.routes import COMMON
from electra.api.schemas import (
    Page as PageOf,
)
from electra.api.schemas import (
    ProgressPublic,
    ReceiptPublic,
    SessionCreate,
    SessionPublic,
    SessionStartPublic,
    SessionStopPublic,
)
from electra.errors import ChainError, ElectraError, InvalidInput
from electra.store.models import SessionRecord

router = APIRouter(prefix="/api/v1/sessions", tags=["sessions"], responses=COMMON)
POLL_S = 0.2


def session_public(row: SessionRecord, settlement: str | None) -> SessionPublic:
    return SessionPublic(
        id=row.id,
        charger_id=row.charger_id,
        connector_id=row.connector_id,
        transaction_uid=row.transaction_uid,
        ocpp_version=row.ocpp_version,
        vehicle_id=row.vehicle_id,
        status=row.status,
        token_status=row.token_status,
        started_at_ms=row.started_at_ms,
        stopped_at_ms=row.stopped_at_ms,
        meter_start_wh=row.meter_start_wh,
        meter_stop_wh=row.meter_stop_wh,
        energy_wh=row.energy_wh,
        billable_wh=row.billable_wh,
        stop_reason=row.stop_reason,
        flags=[f for f in row.flags.split(",") if f],
        meter_data=row.meter_data,
        settlement=settlement,
    )


@router.get("", summary="Sessions the caller may see, newest first: a driver's, a host's chargers', or all")
def sessions(
    ctx: Ctx,
    caller: SignedIn,
    engine: Store,
    page: Page,
    status: Annotated[str | None, Query(pattern="^(active|completed)$")] = None,
    charger_id: Annotated[str | None, Query(max_length=64)] = None,
    vehicle_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> PageOf[SessionPublic]:
    vehicles = chargers = None
    if not caller.staff:
        assert caller.address is not None
        vehicles = ctx.roles.vehicles_of(caller.address)
        chargers = ctx.roles.chargers_of(caller.address)
    found = SessionRepository(engine).page(page.limit, page.cursor, vehicles, chargers, status, charger_id, vehicle_id)
    return PageOf[SessionPublic](
        items=[session_public(r, found.settlements.get(r.id)) for r in found.rows],
        next=str(found.next_cursor) if found.next_cursor is not None else None,
    )


async def on_csms(ctx: ApiContext, call: Any) -> dict[str, Any]:
    """Runs a remote command in the central system's event loop, wherever this request runs."""
    from electra.ocpp.commands import ChargerUnavailable

    if ctx.commands is None:
        raise ApiProblem(503, "csms-unavailable", "no central system runs in this process", "use `electra up`")
    try:
        loop = ctx.csms_loop
        if loop is None or loop is asyncio.get_running_loop():
            return dict(await call())
        return dict(await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call(), loop)))
    except ChargerUnavailable as exc:
        raise ApiProblem(409, "charger-unavailable", exc.cause, exc.fix) from exc
    except InvalidInput as exc:
        raise ApiProblem(400, "bad-request", exc.cause, exc.fix) from exc


def _start_token(ctx: ApiContext, caller: Any, body: SessionCreate) -> str:
    """The id token to start with: the caller's own (a token of a vehicle it owns, or a driver
    token issued to it); staff may start with any."""
    from electra.charging.tokens import TokenRegistry

    engine = ctx.store()
    if body.id_token is not None:
        if caller.staff:
            return body.id_token
        info = TokenRegistry(engine).lookup(body.id_token)
        mine = info.owner is not None and info.owner.lower() == str(caller.address).lower()
        if info.vehicle_id is not None:
            mine = mine or info.vehicle_id in ctx.roles.vehicles_of(caller.address)
        if not mine:
            raise ApiProblem(403, "not-your-token", "this id token is not one of your vehicles' or yours")
        return body.id_token
    vehicle_id = body.vehicle_id
    if vehicle_id is None:
        if caller.staff:
            raise ApiProblem(400, "bad-request", "give an id_token or a vehicle_id to start with")
        owned = sorted(ctx.roles.vehicles_of(caller.address))
        if len(owned) != 1:
            raise ApiProblem(400, "bad-request", f"you own {len(owned)} vehicles", "say which with vehicle_id")
        vehicle_id = owned[0]
    elif not caller.staff and not ctx.roles.owns_vehicle(caller.address, vehicle_id):
        raise ApiProblem(403, "not-your-vehicle", f"vehicle {vehicle_id} is not yours")
    token = ChargerRepository(engine).vehicle_token(vehicle_id)
    if token is None:
        raise ApiProblem(
            409, "no-id-token", f"vehicle {vehicle_id} has no id token", "issue one: `electra ocpp token-issue`"
        )
    return token


@router.post(
    "",
    status_code=202,
    summary="Starts a session: a remote start to the charger (RemoteStartTransaction / RequestStartTransaction)",
    responses={201: {"model": SessionStartPublic, "description": "The charger opened the session within wait_s"}},
)
async def start_session(ctx: Ctx, caller: SignedIn, body: SessionCreate) -> Any:
    token = await run_in_threadpool(_start_token, ctx, caller, body)
    since_ms = int(ctx.clock() * 1000)
    answer = await on_csms(ctx, lambda: ctx.commands.remote_start(body.charger_id, token, body.connector_id))
    if answer.get("status") != "Accepted":
        raise ApiProblem(
            409, "charger-refused", f"{body.charger_id} answered the remote start with {answer.get('status')}"
        )
    repo = SessionRepository(ctx.store())
    row = None
    deadline = asyncio.get_running_loop().time() + body.wait_s
    while body.wait_s > 0:
        row = await run_in_threadpool(repo.started_since, body.charger_id, token, since_ms)
        if row is not None or asyncio.get_running_loop().time() >= deadline:
            break
        await asyncio.sleep(POLL_S)
    out = SessionStartPublic(
        charger_id=body.charger_id,
        charger_answer=answer,
        session=session_public(row, None) if row is not None else None,
    )
    return JSONResponse(out.model_dump(), status_code=201 if row is not None else 202)


@router.get("/{session_id}", summary="A session: charger, vehicle, times, meter registers, energy, flags, settlement")
def session(grant: SessionAccess, engine: Store) -> SessionPublic:
    return session_public(grant.row, SessionRepository(engine).settlement_status(grant.row.id))


@router.post("/{session_id}/stop", status_code=202, summary="Stops a running session (a remote stop to its charger)")
async def stop_session(grant: SessionAccess, ctx: Ctx) -> SessionStopPublic:
    row = grant.row
    if row.status != "active":
        raise ApiProblem(409, "session-not-active", f"session {row.id} is {row.status}")
    answer = await on_csms(ctx, lambda: ctx.commands.remote_stop(row.charger_id, row.transaction_uid))
    if answer.get("status") != "Accepted":
        raise ApiProblem(
            409, "charger-refused", f"{row.charger_id} answered the remote stop with {answer.get('status')}"
        )
    return SessionStopPublic(session_id=row.id, charger_answer=answer)


@router.get("/{session_id}/progress", summary="Live progress: energy so far, power, cost so far at its tariff")
def progress(grant: SessionAccess, ctx: Ctx, engine: Store) -> ProgressPublic:
    from electra.domain.tariff import Usage
    from electra.intelligence.store import price_in_force

    row = grant.row
    readings = SessionRepository(engine).last_readings(row.id, 2)
    start_wh = row.meter_start_wh if row.meter_start_wh is not None else (readings[-1].register_wh if readings else 0)
    register = row.meter_stop_wh if row.status == "completed" else (readings[0].register_wh if readings else None)
    energy = row.energy_wh if row.energy_wh is not None else max(0, (register or start_wh) - start_wh)
    last_at = row.stopped_at_ms or (readings[0].timestamp_ms if readings else row.started_at_ms)
    power = None
    if len(readings) == 2 and readings[0].timestamp_ms > readings[1].timestamp_ms:
        dwh = readings[0].register_wh - readings[1].register_wh
        power = max(0, dwh * 3_600_000 // (readings[0].timestamp_ms - readings[1].timestamp_ms))
    tariff = price_in_force(engine)(row.charger_id, row.started_at_ms) or ctx.tariffs().get(row.charger_id)
    end = max(last_at, row.started_at_ms)
    cost = tariff.cost(Usage(energy, row.started_at_ms, end, end))
    return ProgressPublic(
        session_id=row.id,
        charger_id=row.charger_id,
        status=row.status,
        started_at_ms=row.started_at_ms,
        duration_s=(end - row.started_at_ms) // 1000,
        energy_wh=energy,
        register_wh=register,
        last_reading_at_ms=readings[0].timestamp_ms if readings else None,
        power_w=power,
        asset=tariff.asset,
        cost_so_far=str(cost.total),
    )


@router.get(
    "/{session_id}/receipt", summary="The receipt: energy, tariff, cost lines, settlement transaction, record hash"
)
def receipt(grant: SessionAccess, engine: Store) -> ReceiptPublic:
    from electra.chain.settlement import receipt_of

    data = receipt_of(engine, grant.row.id)
    if data is None:
        raise ApiProblem(
            404, "receipt-not-ready", f"session {grant.row.id} has no bill yet", "a session is billed once it completes"
        )
    return ReceiptPublic(**data)


@router.get(
    "/{session_id}/proof",
    summary="A session's proof bundle: record, leaf, Merkle proof, anchor and signed meter data (public)",
)
async def session_proof(
    session_id: SessionIdPath,
    ctx: Ctx,
    verify: Annotated[bool, Query(description="Also check the bundle against the chain here.")] = False,
) -> dict[str, Any]:
    from electra.proofs.builder import build_bundle
    from electra.proofs.verifier import verify_bundle

    def work() -> dict[str, Any]:
        e = ctx.electra()
        bundle = build_bundle(ctx.store(), e, session_id)
        body = bundle.to_json()
        if verify and e is not None:
            body["verification"] = verify_bundle(bundle, ctx.rpc_url or e.client.rpc_url).to_json()
        return body

    try:
        return await run_in_threadpool(work)
    except InvalidInput as exc:
        raise ApiProblem(404, "session-not-recorded", exc.cause, exc.fix) from exc
    except (ChainError, requests.RequestException):
        raise
    except ApiProblem:
        raise
    except ElectraError as exc:
        raise ApiProblem(409, "log-inconsistent", exc.cause, exc.fix) from exc
