"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from electra.api.deps import Ctx, Staff
from electra.api.routes import problems
from electra.api.schemas import CheckPublic, HealthPublic, ReadyPublic
from electra.errors import ElectraError

router = APIRouter(tags=["ops"])
CHECK_TIMEOUT_S = 2.0


@router.get("/healthz", summary="The process is up", responses=problems(429))
def healthz() -> HealthPublic:
    return HealthPublic(status="ok")


async def _timed(what: str, work: Any) -> CheckPublic:
    try:
        return await asyncio.wait_for(work, CHECK_TIMEOUT_S)
    except TimeoutError:
        return CheckPublic(ok=False, detail=f"{what} did not answer within {CHECK_TIMEOUT_S:g} s")


async def _database(ctx: Any) -> CheckPublic:
    if ctx.engine is None:
        return CheckPublic(ok=False, detail="this process has no database")

    def ping() -> str:
        with ctx.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return str(ctx.engine.dialect.name)

    try:
        return CheckPublic(ok=True, detail=f"{await run_in_threadpool(ping)} answers")
    except Exception as exc:  # noqa: BLE001 - any failure of the driver means not ready
        return CheckPublic(ok=False, detail=f"the database does not answer: {type(exc).__name__}")


async def _chain(ctx: Any) -> CheckPublic:
    def ping() -> CheckPublic:
        e = ctx.electra()
        if e is None:
            return CheckPublic(ok=False, detail="no Electra deployment is known")
        block = int(e.client.w3.eth.block_number)
        return CheckPublic(ok=True, detail=f"chain id {e.client.chain_id} at block {block}")

    try:
        return await run_in_threadpool(ping)
    except ElectraError as exc:
        return CheckPublic(ok=False, detail=exc.one_line())
    except Exception as exc:  # noqa: BLE001 - a failing RPC (requests, web3) means not ready
        return CheckPublic(ok=False, detail=f"the chain RPC does not answer: {type(exc).__name__}")


async def _csms(ctx: Any) -> CheckPublic:
    address = ctx.csms_address
    system = ctx.live_system()
    if address is None and system is not None:
        address = (system.host, system.port)
    if address is None:
        return CheckPublic(ok=False, detail="no central system is configured for this API")
    host, port = address
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        return CheckPublic(ok=False, detail=f"the central system at {host}:{port} refuses: {exc.strerror or exc}")
    writer.close()
    await writer.wait_closed()
    connected = f", {len(system.live)} chargers connected" if system is not None else ""
    return CheckPublic(ok=True, detail=f"listening on {host}:{port}{connected}")


@router.get(
    "/readyz",
    response_model=ReadyPublic,
    summary="Ready to serve: chain, database and central system reachable (each named)",
    responses={503: {"model": ReadyPublic, "description": "At least one part is not reachable"}, **problems(429)},
)
async def readyz(ctx: Ctx) -> Any:
    db, chain, csms = await asyncio.gather(
        _timed("the database", _database(ctx)),
        _timed("the chain", _chain(ctx)),
        _timed("the central system", _csms(ctx)),
    )
    checks = {"chain": chain, "database": db, "csms": csms}
    ready = all(c.ok for c in checks.values())
    body = ReadyPublic(status="ready" if ready else "not-ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics (operator or admin API key)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}, **problems(401, 403, 429)},
)
async def metrics(ctx: Ctx, _: Staff) -> Response:
    body = await run_in_threadpool(generate_latest, ctx.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
