"""Live updates over Server-Sent Events: ``GET /api/v1/events?topics=...``.

Fed by the platform's event bus (electra.payments.events): the session service publishes
``session.started``, ``session.progress``, ``session.stopped`` and ``charger.status``; the wallet
side ``balance.low``, ``balance.recovered``, ``wallet.topup``, ``wallet.deposit`` and
``wallet.withdrawal``. Each caller sees what it may see: anyone a charger's status; a driver the
events of its vehicles; a host the sessions at its chargers; operators everything. A comment line
every 15 s keeps proxies from closing a quiet stream.

Every event has an id (``<epoch>-<seq>``), and the stream opens with the id of the bus's position,
so a browser's EventSource always has one to send back. A client that reconnects with
``Last-Event-ID`` (or ``last_event_id``) first gets the events it missed that it may see, from the
last 10,000 the process keeps, then the live ones, with no gap between them. When that is not all
it missed (the process restarted, or the id is older than what is kept) it gets a ``reset`` event
first, saying why: it should re-read the state it shows over REST.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from electra.api.auth import TOKEN_PREFIX, CredentialRejected, Principal
from electra.api.context import ApiContext, ApiProblem
from electra.api.deps import Caller, Ctx
from electra.api.routes import problems
from electra.payments.events import BALANCE_LOW, BALANCE_RECOVERED, DEPOSITED, TOPUP_CREDITED, WITHDRAWN, BusEvent

router = APIRouter(prefix="/api/v1", tags=["events"])
PUBLIC_TOPICS = frozenset({"charger.status"})
SESSION_TOPICS = frozenset({"session.started", "session.progress", "session.stopped"})
WALLET_TOPICS = frozenset({BALANCE_LOW, BALANCE_RECOVERED, TOPUP_CREDITED, DEPOSITED, WITHDRAWN})
TOPICS = PUBLIC_TOPICS | SESSION_TOPICS | WALLET_TOPICS
HEARTBEAT_S = 15.0
ROLES_REFRESH_S = 30.0


class Visibility:
    """What one stream's caller may see; a wallet's vehicles and chargers re-read every 30 s."""

    def __init__(self, ctx: ApiContext, caller: Principal) -> None:
        self.ctx = ctx
        self.caller = caller
        self.vehicles: frozenset[int] = frozenset()
        self.chargers: frozenset[str] = frozenset()
        self.read_at = -ROLES_REFRESH_S

    async def refresh(self) -> None:
        if self.caller.kind != "address" or time.monotonic() - self.read_at < ROLES_REFRESH_S:
            return
        address = str(self.caller.address)
        self.vehicles = await run_in_threadpool(self.ctx.roles.vehicles_of, address)
        self.chargers = await run_in_threadpool(self.ctx.roles.chargers_of, address)
        self.read_at = time.monotonic()

    def sees(self, event: BusEvent) -> bool:
        if event.topic in PUBLIC_TOPICS or self.caller.staff:
            return True
        if self.caller.kind != "address":
            return False
        data: dict[str, Any] = dict(event.data)
        if data.get("vehicle_id") is not None and data["vehicle_id"] in self.vehicles:
            return True
        return event.topic in SESSION_TOPICS and data.get("charger_id") in self.chargers


@router.get(
    "/events",
    summary="Server-Sent Events: session progress and charger status (and a driver's wallet events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}, **problems(400, 401, 422, 429)},
)
async def events(
    ctx: Ctx,
    caller: Caller,
    topics: Annotated[
        str | None, Query(max_length=500, description="Comma-separated; default: all you may see")
    ] = None,
    access_token: Annotated[
        str | None, Query(max_length=200, description="A session token, for EventSource (which cannot send headers)")
    ] = None,
    last_event_id_header: Annotated[
        str | None,
        Header(alias="Last-Event-ID", max_length=64, description="The last event's id: replay what came after it"),
    ] = None,
    last_event_id: Annotated[
        str | None, Query(max_length=64, description="As the Last-Event-ID header, for clients that cannot set it")
    ] = None,
) -> StreamingResponse:
    if access_token is not None and caller.kind == "anonymous":
        if not access_token.startswith(TOKEN_PREFIX):
            raise ApiProblem(401, "unauthenticated", "access_token takes a session token, not an API key")
        try:
            caller = await run_in_threadpool(ctx.sessions.principal, access_token)
        except CredentialRejected as exc:
            raise ApiProblem(401, "unauthenticated", exc.cause, exc.fix) from exc
    wanted = frozenset(t.strip() for t in topics.split(",") if t.strip()) if topics else TOPICS
    unknown = wanted - TOPICS
    if unknown:
        raise ApiProblem(
            400, "topic-unknown", f"no topic {', '.join(sorted(unknown))}", f"topics: {', '.join(sorted(TOPICS))}"
        )
    if caller.kind == "anonymous" and not wanted <= PUBLIC_TOPICS:
        if topics:
            raise ApiProblem(401, "unauthenticated", "only charger.status is open to anonymous callers", "sign in")
        wanted = PUBLIC_TOPICS
    visibility = Visibility(ctx, caller)
    await visibility.refresh()
    resume = last_event_id_header if last_event_id_header is not None else last_event_id
    sub, replay = ctx.bus.subscribe_after(resume, wanted, maxsize=1_000)

    async def stream() -> AsyncIterator[str]:
        ctx.metrics.sse_streams.inc()
        dropped = 0
        try:
            # The id sets the client's last event id without dispatching anything (HTML's SSE rules).
            yield f"retry: 3000\nid: {replay.position}\n: subscribed to {','.join(sorted(wanted))}\n\n"
            if not replay.complete:
                reset = {"reason": replay.reason, "fix": "re-read the state you show over REST"}
                yield f"event: reset\ndata: {json.dumps(reset, sort_keys=True)}\n\n"
            for missed in replay.events:
                if visibility.sees(missed):
                    ctx.metrics.sse_replayed.inc()
                    yield missed.sse()
            while True:
                try:
                    event = await asyncio.wait_for(sub.get(), HEARTBEAT_S)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if event is None:
                    return
                if sub.dropped > dropped:
                    ctx.metrics.sse_dropped.inc(sub.dropped - dropped)
                    dropped = sub.dropped
                await visibility.refresh()
                if visibility.sees(event):
                    yield event.sse()
        finally:
            sub.close()
            ctx.metrics.sse_streams.dec()

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
