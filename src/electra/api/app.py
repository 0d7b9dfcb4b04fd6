"""The REST API under ``/api/v1`` (FastAPI), served by `electra up` next to the central system.

Drivers, hosts, operators and auditors use it (docs/api.md): stations (nearby, details, tariff,
live status, dynamic price), vehicles and their wallets, sessions (started and stopped through the
central system's remote commands, live progress, receipts, proof bundles anyone can check), host
views (chargers, earnings, utilization, staking, maintenance tickets), the DAO (proposals, state,
vote instructions), live updates over Server-Sent Events, ``/healthz``, ``/readyz`` and Prometheus
``/metrics``. A wallet signs in with Sign-In with Ethereum (EIP-4361, EIP-1271 for contract
wallets); operators and integrations use API keys. Errors are ``application/problem+json`` with a
stable ``code``. The OpenAPI document is at ``/api/v1/openapi.json``. Chain calls block, so they run
in the thread pool, and a chain that does not answer is a 503 ``chain-unavailable``, never a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import requests
from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException
from web3.exceptions import Web3Exception

from electra import __version__
from electra.api.context import ApiContext, ApiProblem
from electra.api.deps import authenticate
from electra.api.observability import Observed
from electra.api.ratelimit import Limiter, RateLimiter, RateLimits
from electra.chain.bindings import Electra
from electra.config import Settings
from electra.discovery.index import StationIndex
from electra.errors import ChainError, ContractReverted, ElectraError, InvalidInput
from electra.payments.events import EventBus
from electra.payments.providers import PaymentProvider

PROBLEM = "application/problem+json"
LOG = logging.getLogger("electra.api")


def problem(
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    headers: dict[str, str] | None = None,
    request_id: str | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://electra.dev/problems/{code}",
        "title": title,
        "status": status,
        "code": code,
    }
    if detail:
        body["detail"] = detail
    if request_id:
        body["request_id"] = request_id
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _request_id(request: Request) -> str | None:
    state = request.scope.get("state") or {}
    return state.get("request_id") if isinstance(state, dict) else None


class _LazyTopUps:
    """The top-up service for the webhook receiver, made when a webhook comes (it needs the chain)."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    def handle(self, provider: str, event: Any) -> Any:
        return self.ctx.topups().handle(provider, event)


def create_app(
    engine: Engine | None = None,
    electra: Callable[[], Electra | None] = lambda: None,
    rpc_url: str | None = None,
    stations: Callable[[], StationIndex] | None = None,
    pricing: Callable[[], Any] | None = None,
    *,
    commands: Any = None,
    system: Callable[[], Any] | None = None,
    csms_address: tuple[str, int] | None = None,
    csms_loop: Any = None,
    bus: EventBus | None = None,
    providers: Sequence[PaymentProvider] = (),
    siwe_domain: str | None = None,
    rate_limits: RateLimits | None = None,
    limiter: Limiter | None = None,
    settings: Settings | None = None,
    clock: Callable[[], float] | None = None,
) -> FastAPI:
    """The API over the platform's database. ``electra`` gives the chain bindings (None when no
    deployment is known); ``rpc_url`` is what the server verifies bundles against; ``stations``
    gives the current discovery index; ``pricing`` the dynamic pricing service (default: one over
    this database and deployment, made on first use). With the central system in this process,
    ``commands`` (electra.ocpp.commands.Commands) starts and stops sessions and ``system`` gives
    the CentralSystem (live status, readiness, metrics); ``csms_loop`` is its event loop if it is
    not the API's. ``bus`` carries live events (the session service and wallets publish on it);
    ``providers`` are the fiat top-up providers whose webhooks arrive at /api/v1/webhooks/{name};
    ``siwe_domain`` is the domain sign-in messages must name (default: the request's Host);
    ``limiter`` holds the rate-limit buckets (default: in memory, at ``rate_limits``); ``settings``
    say where the web app finds the control channel, the sandbox secret and the device keys
    (default: ELECTRA_* and the settings file)."""
    import time

    from electra.api.routes import admin, auth, dao, events, host, ops, sessions, vehicles
    from electra.api.routes import stations as station_routes
    from electra.payments.webhooks import WebhookReceiver, webhook_router

    ctx = ApiContext(
        engine,
        electra,
        rpc_url=rpc_url,
        stations=stations,
        pricing=pricing,
        commands=commands,
        system=system,
        csms_address=csms_address,
        csms_loop=csms_loop,
        bus=bus if bus is not None else EventBus(),
        providers=tuple(providers),
        siwe_domain=siwe_domain,
        limiter=limiter if limiter is not None else RateLimiter(rate_limits),
        clock=clock or time.time,
    )
    ctx.metrics.watch(engine, system)
    app = FastAPI(
        title="Electra",
        version=__version__,
        summary="EV charging settled on an EVM chain: stations, wallets, sessions, host views, the DAO.",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    app.state.ctx = ctx
    everyone = [Depends(authenticate)]  # who calls, and one request from their rate-limit bucket
    for module in (ops, auth, station_routes, vehicles, sessions, host, dao, events, admin):
        app.include_router(module.router, dependencies=everyone)
    receiver = WebhookReceiver(list(providers), _LazyTopUps(ctx))  # type: ignore[arg-type]
    app.include_router(webhook_router(receiver), prefix="/api/v1", include_in_schema=False, dependencies=everyone)
    from electra.api.web import static_files, web_router  # the web app: pages, /static, /api/v1/web

    # The web app's own routes are not part of the public API document (docs/web.md lists them).
    app.include_router(web_router(engine, electra, stations, settings), dependencies=everyone, include_in_schema=False)
    app.mount("/static", static_files(), name="static")
    _handle_errors(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    from fastapi.routing import iter_route_contexts

    paths = {id(rc.original_route): str(rc.path) for rc in iter_route_contexts(app.routes)}
    paths |= {id(rc.endpoint): str(rc.path) for rc in iter_route_contexts(app.routes) if rc.endpoint is not None}
    app.add_middleware(Observed, metrics=ctx.metrics, paths=paths)
    return app


def _handle_errors(app: FastAPI) -> None:
    @app.exception_handler(ApiProblem)
    async def on_problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return problem(exc.status, exc.code, exc.cause, exc.fix, exc.headers, _request_id(request))

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
        return problem(
            422,
            "invalid-request",
            "the request does not match the API's schema",
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)[:1000],
            request_id=_request_id(request),
            errors=jsonable_encoder(errors),
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        return problem(exc.status_code, code, str(exc.detail), request_id=_request_id(request))

    @app.exception_handler(ContractReverted)
    async def on_reverted(request: Request, exc: ContractReverted) -> JSONResponse:
        return problem(409, "contract-refused", exc.cause, exc.fix, request_id=_request_id(request))

    def unavailable(request: Request, cause: str, fix: str | None) -> JSONResponse:
        return problem(503, "chain-unavailable", cause, fix, {"Retry-After": "5"}, _request_id(request))

    @app.exception_handler(ChainError)
    async def on_chain(request: Request, exc: ChainError) -> JSONResponse:
        return unavailable(request, exc.cause, exc.fix)

    @app.exception_handler(requests.RequestException)
    async def on_rpc(request: Request, exc: requests.RequestException) -> JSONResponse:
        return unavailable(request, f"the chain RPC failed: {type(exc).__name__}", "retry when the chain is back")

    @app.exception_handler(Web3Exception)
    async def on_web3(request: Request, exc: Web3Exception) -> JSONResponse:
        return unavailable(request, f"the chain answered what Electra cannot read: {type(exc).__name__}", "retry later")

    @app.exception_handler(InvalidInput)
    async def on_input(request: Request, exc: InvalidInput) -> JSONResponse:
        return problem(400, "bad-request", exc.cause, exc.fix, request_id=_request_id(request))

    @app.exception_handler(ElectraError)
    async def on_electra(request: Request, exc: ElectraError) -> JSONResponse:
        return problem(409, "refused", exc.cause, exc.fix, request_id=_request_id(request))

    @app.exception_handler(Exception)
    async def on_bug(request: Request, exc: Exception) -> JSONResponse:
        LOG.error("unhandled error", exc_info=exc, extra={"request_id": _request_id(request)})
        return problem(500, "internal", "an unexpected error; it is logged", request_id=_request_id(request))


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with every problem response under application/problem+json."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    from fastapi.routing import APIRoute, iter_route_contexts

    from electra.api.deps import signed_in

    doc = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
    guarded = set()
    for rc in iter_route_contexts(app.routes):
        route = rc.original_route
        if isinstance(route, APIRoute) and _depends_on(route.dependant, signed_in):
            guarded |= {(m.lower(), str(rc.path)) for m in rc.methods or ()}
    ref = "#/components/schemas/ProblemPublic"
    for path, operations in doc.get("paths", {}).items():
        for method, op in operations.items():
            if "security" in op and (method, path) not in guarded:
                op["security"] = [{}, *op["security"]]  # credentials are optional here
            elif (method, path) in guarded:
                op["security"] = [s for s in op.get("security", []) if s]
            for response in op.get("responses", {}).values():
                content = response.get("content", {})
                body = content.get("application/json")
                if body is not None and body.get("schema", {}).get("$ref") == ref:
                    content[PROBLEM] = content.pop("application/json")
    app.openapi_schema = doc
    return doc


def _depends_on(dependant: Any, call: Any) -> bool:
    return any(d.call is call or _depends_on(d, call) for d in dependant.dependencies)
