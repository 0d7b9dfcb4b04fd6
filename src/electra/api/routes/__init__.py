"""The API's routers, one per part: ops, auth, stations, vehicles and wallets, sessions, host
views, the DAO, admin, and the event stream."""

from __future__ import annotations

from typing import Any

from electra.api.schemas import ProblemPublic

_DESCRIPTIONS = {
    400: "The request breaks a rule (the problem says which)",
    401: "No credentials, or credentials that are unknown or expired",
    403: "The caller may not do this, or this is not theirs",
    404: "No such thing",
    409: "The state of things refuses it now (the problem says why)",
    422: "The request does not match its schema",
    429: "Too many requests; see Retry-After",
    503: "A part the answer needs (chain, store, central system) is not available",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses for these statuses, as problem documents (application/problem+json)."""
    return {s: {"model": ProblemPublic, "description": _DESCRIPTIONS[s]} for s in statuses}


COMMON = problems(400, 401, 403, 404, 409, 422, 429, 503)
