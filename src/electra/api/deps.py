"""The API's dependencies, declared once as ``Annotated`` aliases the routes take as parameters.

Every route depends on :func:`authenticate` (the app declares it), which finds the caller from
``Authorization: Bearer <token or API key>`` or ``X-API-Key``, and takes one request from the
caller's rate-limit bucket. The aliases below then say who may call: :data:`SignedIn`,
:data:`AddressCaller`, :data:`Staff`, :data:`Admin`, and the owner-or-staff guards of one
vehicle, one charger or one session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine

from electra.api.auth import ANONYMOUS, KEY_PREFIX, TOKEN_PREFIX, CredentialRejected, Principal
from electra.api.context import ApiContext, ApiProblem
from electra.api.ratelimit import retry_after
from electra.chain.bindings import Electra
from electra.store.models import SessionRecord

_bearer = HTTPBearer(auto_error=False, description="A session token from POST /api/v1/auth/siwe, or an API key")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="An operator's or integration's API key")

MAX_ID = 2**63 - 1
ChargerIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9*\-_.:]+$")]
VehicleIdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
SessionIdPath = Annotated[int, Path(ge=1, le=MAX_ID)]


def get_ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ApiContext, Depends(get_ctx)]


def get_store(ctx: Ctx) -> Engine:
    return ctx.store()


def get_chain(ctx: Ctx) -> Electra:
    return ctx.chain()


Store = Annotated[Engine, Depends(get_store)]
Chain = Annotated[Electra, Depends(get_chain)]


def _unauthenticated(cause: str = "this needs a signed-in wallet or an API key") -> ApiProblem:
    return ApiProblem(
        401,
        "unauthenticated",
        cause,
        "sign in (POST /api/v1/auth/nonce, then /api/v1/auth/siwe) or send an API key",
        headers={"WWW-Authenticate": 'Bearer realm="electra"'},
    )


async def authenticate(
    request: Request,
    ctx: Ctx,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> Principal:
    raw = request.headers.get("authorization")
    if raw is not None and bearer is None:
        raise _unauthenticated("the Authorization header must be 'Bearer <session token or API key>'")
    presented = [c for c in (api_key, bearer.credentials if bearer is not None else None) if c is not None]
    principal = ANONYMOUS
    found: list[Principal] = []
    try:
        for credential in presented:  # every credential sent must hold, not just one of them
            if credential.startswith(KEY_PREFIX):
                found.append(await run_in_threadpool(ctx.keys.principal, credential))
            elif credential.startswith(TOKEN_PREFIX):
                found.append(await run_in_threadpool(ctx.sessions.principal, credential))
            else:
                raise CredentialRejected("the credentials are neither a session token nor an API key")
    except CredentialRejected as exc:
        raise _unauthenticated(exc.cause) from exc
    if len(set(found)) > 1:
        raise _unauthenticated("two different credentials were sent; send one")
    if found:
        principal = found[0]
    request.scope.setdefault("state", {})["principal"] = principal
    bucket = principal.rate_key or ("ip", request.client.host if request.client else "unknown")
    wait = ctx.limiter.take(*bucket)
    if wait:
        ctx.metrics.rate_limited.labels(bucket[0]).inc()
        raise ApiProblem(
            429,
            "rate-limited",
            f"too many requests for this {'API key' if bucket[0] == 'key' else bucket[0]}",
            f"retry after {retry_after(wait)} s",
            headers={"Retry-After": str(retry_after(wait))},
        )
    return principal


Caller = Annotated[Principal, Depends(authenticate)]


def signed_in(caller: Caller) -> Principal:
    if caller.kind == "anonymous":
        raise _unauthenticated()
    return caller


SignedIn = Annotated[Principal, Depends(signed_in)]


def address_caller(caller: SignedIn) -> Principal:
    if caller.kind != "address":
        raise ApiProblem(403, "address-only", "this is for a signed-in wallet, not an API key")
    return caller


AddressCaller = Annotated[Principal, Depends(address_caller)]


def staff(caller: SignedIn) -> Principal:
    if not caller.staff:
        raise ApiProblem(403, "operator-only", "this needs an operator's or admin's API key")
    return caller


Staff = Annotated[Principal, Depends(staff)]


def admin(caller: SignedIn) -> Principal:
    if not caller.admin:
        raise ApiProblem(403, "admin-only", "this needs an admin's API key")
    return caller


Admin = Annotated[Principal, Depends(admin)]


def not_yours(what: str) -> ApiProblem:
    return ApiProblem(403, f"not-your-{what}", f"this {what} is not yours", f"sign in with the {what}'s owner")


def check_vehicle(ctx: ApiContext, caller: Principal, vehicle_id: int) -> int:
    """The vehicle's owner (VehicleLedger, asked of the chain now) or staff; else 403. For routes
    whose vehicle is in the body; :data:`OwnVehicle` is the same for a path's vehicle."""
    if caller.staff:
        return vehicle_id
    if caller.kind != "address" or caller.address is None or not ctx.roles.owns_vehicle(caller.address, vehicle_id):
        raise not_yours("vehicle")
    return vehicle_id


def vehicle_access(vehicle_id: VehicleIdPath, caller: SignedIn, ctx: Ctx) -> int:
    return check_vehicle(ctx, caller, vehicle_id)


OwnVehicle = Annotated[int, Depends(vehicle_access)]


def charger_access(charger_id: ChargerIdPath, caller: SignedIn, ctx: Ctx) -> str:
    """The charger's holder (StationRegistry ownerOf, asked of the chain now) or staff."""
    if caller.staff:
        return charger_id
    assert caller.address is not None
    if not ctx.roles.holds_charger(caller.address, charger_id):
        raise not_yours("charger")
    return charger_id


OwnCharger = Annotated[str, Depends(charger_access)]


@dataclass(frozen=True)
class SessionGrant:
    row: SessionRecord
    as_driver: bool
    as_host: bool


def session_access(session_id: SessionIdPath, caller: SignedIn, ctx: Ctx) -> SessionGrant:
    """The session's driver (owner of its vehicle), its charger's holder, or staff; 404 if none."""
    from electra.api.repositories import SessionRepository

    row = SessionRepository(ctx.store()).get(session_id)
    if row is None:
        raise ApiProblem(404, "session-unknown", f"no session {session_id}")
    if caller.staff:
        return SessionGrant(row, False, False)
    assert caller.address is not None
    driver = row.vehicle_id is not None and row.vehicle_id in ctx.roles.vehicles_of(caller.address)
    host = row.charger_id in ctx.roles.chargers_of(caller.address)
    if not (driver or host):
        raise not_yours("session")
    return SessionGrant(row, driver, host)


SessionAccess = Annotated[SessionGrant, Depends(session_access)]


@dataclass(frozen=True)
class PageParams:
    limit: int
    cursor: int | None


def page_params(
    limit: Annotated[int, Query(ge=1, le=500, description="Items per page")] = 50,
    cursor: Annotated[
        str | None, Query(pattern=r"^[0-9]{1,19}$", description="The `next` of the previous page")
    ] = None,
) -> PageParams:
    return PageParams(limit, int(cursor) if cursor is not None else None)


Page = Annotated[PageParams, Depends(page_params)]


def holder_or_admin(charger_id: ChargerIdPath, caller: SignedIn, ctx: Ctx) -> str:
    """The charger's holder, or an admin: a charger's prices are its holder's to set."""
    if caller.admin:
        return charger_id
    if caller.kind != "address":
        raise ApiProblem(403, "holder-only", "only the charger's holder (or an admin) sets its tariff")
    assert caller.address is not None
    if not ctx.roles.holds_charger(caller.address, charger_id):
        raise not_yours("charger")
    return charger_id


HeldCharger = Annotated[str, Depends(holder_or_admin)]
