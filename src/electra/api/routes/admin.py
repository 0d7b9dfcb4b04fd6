"""Admin: the API keys (made and rotated with `electra api-key`; listed and revoked here too)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from electra.api.context import ApiProblem
from electra.api.deps import Admin, Ctx
from electra.api.routes import COMMON
from electra.api.schemas import ApiKeyPublic
from electra.errors import InvalidInput

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], responses=COMMON)
KeyIdPath = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")]


@router.get("/api-keys", summary="API keys (never their secrets)")
def api_keys(
    ctx: Ctx, _: Admin, all: Annotated[bool, Query(description="Also revoked and expired ones")] = False
) -> list[ApiKeyPublic]:
    now = int(ctx.clock() * 1000)
    return [ApiKeyPublic(**k.to_json(now)) for k in ctx.keys.list(include_inactive=all)]


@router.delete("/api-keys/{key_id}", summary="Revokes an API key at once")
def revoke_api_key(key_id: KeyIdPath, ctx: Ctx, caller: Admin) -> ApiKeyPublic:
    if key_id == caller.key_id:
        raise ApiProblem(
            409, "own-key", "an admin may not revoke the key it calls with", "use `electra api-key revoke`"
        )
    try:
        key = ctx.keys.revoke(key_id)
    except InvalidInput as exc:
        raise ApiProblem(404, "api-key-unknown", exc.cause, exc.fix) from exc
    return ApiKeyPublic(**key.to_json(int(ctx.clock() * 1000)))
