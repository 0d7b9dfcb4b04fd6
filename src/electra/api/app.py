"""The REST API under ``/api/v1`` (FastAPI), served by `electra up` next to the central system.

So far it serves what an outsider needs to check a bill: a session's proof bundle
(docs/formats.md#proof-bundle), optionally with the server's own verification of it. Errors are
``application/problem+json`` with a stable ``code``. The OpenAPI document is at
``/api/v1/openapi.json``. Chain calls block, so they run in the thread pool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import requests
from fastapi import FastAPI, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import Engine

from electra import __version__
from electra.chain.bindings import Electra
from electra.errors import ChainError, ElectraError, InvalidInput

PROBLEM = "application/problem+json"


def problem(status: int, code: str, title: str, detail: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://electra.dev/problems/{code}",
        "title": title,
        "status": status,
        "code": code,
    }
    if detail:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def create_app(engine: Engine, electra: Callable[[], Electra | None], rpc_url: str | None = None) -> FastAPI:
    """The API over the platform's database. ``electra`` gives the chain bindings (None when no
    deployment is known); ``rpc_url`` is what the server verifies bundles against."""
    app = FastAPI(
        title="Electra",
        version=__version__,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )

    @app.get("/healthz", tags=["ops"], summary="The process is up")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/api/v1/sessions/{session_id}/proof",
        tags=["sessions"],
        summary="A session's proof bundle: record, leaf, Merkle proof, anchor and signed meter data",
        responses={404: {"description": "no record of this session"}, 503: {"description": "chain unavailable"}},
    )
    async def session_proof(
        session_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
        verify: Annotated[bool, Query(description="Also check the bundle against the chain here.")] = False,
    ) -> Any:
        from electra.proofs.builder import build_bundle
        from electra.proofs.verifier import verify_bundle

        def work() -> dict[str, Any]:
            e = electra()
            bundle = build_bundle(engine, e, session_id)
            body = bundle.to_json()
            if verify and e is not None:
                body["verification"] = verify_bundle(bundle, rpc_url or e.client.rpc_url).to_json()
            return body

        try:
            return await run_in_threadpool(work)
        except InvalidInput as exc:
            return problem(404, "session-not-recorded", exc.cause, exc.fix)
        except ChainError as exc:
            return problem(503, "chain-unavailable", exc.cause, exc.fix)
        except requests.RequestException as exc:
            return problem(503, "chain-unavailable", f"the chain RPC failed: {exc}", "retry when the chain is back")
        except ElectraError as exc:
            return problem(409, "log-inconsistent", exc.cause, exc.fix)

    return app
