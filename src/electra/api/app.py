"""The REST API under ``/api/v1`` (FastAPI), served by `electra up` next to the central system.

It serves what an outsider needs to check a bill: a session's proof bundle
(docs/formats.md#proof-bundle), optionally with the server's own verification of it; discovery
of nearby chargers; a charger's dynamic price for the hour and why; maintenance tickets
(docs/intelligence.md). Errors are
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
from electra.discovery.index import Filters, StationIndex
from electra.domain.station import parse_connectors
from electra.errors import ChainError, DeploymentMissing, ElectraError, InvalidInput

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


def create_app(
    engine: Engine | None,
    electra: Callable[[], Electra | None],
    rpc_url: str | None = None,
    stations: Callable[[], StationIndex] | None = None,
    pricing: Callable[[], Any] | None = None,
) -> FastAPI:
    """The API over the platform's database. ``electra`` gives the chain bindings (None when no
    deployment is known); ``rpc_url`` is what the server verifies bundles against; ``stations``
    gives the current discovery index (kept in step by a StationIndexer); ``pricing`` gives the
    dynamic pricing service (default: one over this database and deployment, made on first use)."""
    app = FastAPI(
        title="Electra",
        version=__version__,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    from electra.api.web import static_files, web_router  # the web app: pages, /static, /api/v1/web

    app.include_router(web_router(engine, electra, stations))
    app.mount("/static", static_files(), name="static")

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

    @app.get(
        "/api/v1/stations/nearby",
        tags=["stations"],
        summary="The k best chargers near a position, with filters; each result says why it ranks there",
        responses={400: {"description": "bad position or filter"}, 503: {"description": "index not ready"}},
    )
    def stations_nearby(
        lat: Annotated[float, Query(ge=-90, le=90, description="Latitude, degrees")],
        lon: Annotated[float, Query(ge=-180, le=180, description="Longitude, degrees")],
        k: Annotated[int, Query(ge=1, le=100)] = 10,
        connector: Annotated[str | None, Query(description="Any of these connectors, comma-separated")] = None,
        min_power_kw: Annotated[int, Query(ge=0, le=10_000)] = 0,
        max_price_per_wh: Annotated[int | None, Query(ge=0, description="Base units of the asset per Wh")] = None,
        available: Annotated[bool, Query(description="Only chargers with a connector Available now")] = False,
        public: Annotated[bool, Query(description="Only chargers leased to the public")] = False,
        radius_km: Annotated[float | None, Query(gt=0, le=20_000)] = None,
    ) -> Any:
        if stations is None:
            return problem(503, "discovery-off", "discovery is not running in this process")
        try:
            filters = Filters(
                connector_mask=parse_connectors(connector.split(",")) if connector else 0,
                min_power_w=min_power_kw * 1000,
                max_price_per_wh=max_price_per_wh,
                available_now=available,
                public_only=public,
                radius_m=None if radius_km is None else int(radius_km * 1000),
            )
            found = stations().nearby(round(lat * 1e6), round(lon * 1e6), k, filters)
        except InvalidInput as exc:
            return problem(400, "bad-query", exc.cause, exc.fix)
        return {"count": len(found), "items": [f.to_json() for f in found]}

    made: list[Any] = []

    def pricing_service() -> Any:
        if pricing is not None:
            return pricing()
        if not made:
            from electra.intelligence.forecast import site_key
            from electra.intelligence.service import pricing_for

            e = electra()
            if e is None:
                raise DeploymentMissing("no Electra deployment is known", "deploy first: the DAO's bounds are on-chain")
            sites = None
            if stations is not None:

                def sites() -> dict[str, str]:
                    index = stations()
                    listings = [x for x in map(index.get, index.token_ids()) if x is not None]
                    return {x.charger_id: site_key(x.latitude_e6, x.longitude_e6) for x in listings}

            made.append(pricing_for(engine, e, sites=sites))
        return made[0]

    @app.get(
        "/api/v1/stations/{charger_id}/price",
        tags=["stations"],
        summary="A charger's dynamic price for this hour, and why: forecast, multiplier, bounds",
        responses={
            404: {"description": "the store knows nothing of this charger"},
            503: {"description": "store or chain unavailable"},
        },
    )
    async def station_price(charger_id: Annotated[str, Path(min_length=1, max_length=64)]) -> Any:
        from electra.intelligence.service import UnknownCharger

        if engine is None:
            return problem(503, "store-off", "this process has no database")

        def work() -> dict[str, Any]:
            q, published = pricing_service().quote(charger_id)
            return {**q.to_json(), "published_now": published}

        try:
            return await run_in_threadpool(work)
        except UnknownCharger as exc:
            return problem(404, "charger-unknown", exc.cause, exc.fix)
        except ChainError as exc:
            return problem(503, "chain-unavailable", exc.cause, exc.fix)
        except requests.RequestException as exc:
            return problem(503, "chain-unavailable", f"the chain RPC failed: {exc}", "retry when the chain is back")
        except ElectraError as exc:
            return problem(409, "pricing-refused", exc.cause, exc.fix)

    @app.get(
        "/api/v1/maintenance/tickets",
        tags=["maintenance"],
        summary="Maintenance tickets, the riskiest live ones first",
        responses={503: {"description": "store unavailable"}},
    )
    def maintenance_tickets(
        status: Annotated[
            str, Query(pattern="^(live|open|scheduled|closed|all)$", description="live = open or scheduled")
        ] = "live",
        charger_id: Annotated[str | None, Query(max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> Any:
        from electra.intelligence.maintenance import TicketStatus
        from electra.intelligence.store import TicketBook

        if engine is None:
            return problem(503, "store-off", "this process has no database")
        wanted: list[TicketStatus] | None
        if status == "all":
            wanted = None
        elif status == "live":
            wanted = [TicketStatus.OPEN, TicketStatus.SCHEDULED]
        else:
            wanted = [TicketStatus(status)]
        tickets = TicketBook(engine).list(wanted, charger_id, limit)
        return {"count": len(tickets), "items": [t.to_json() for t in tickets]}

    return app
