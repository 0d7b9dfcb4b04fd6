"""Stations: nearby, details, tariff and lease (read by anyone, set by the holder), live status, price."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from electra.api.context import ApiContext, ApiProblem, chain_off
from electra.api.deps import Chain, ChargerIdPath, Ctx, HeldCharger, OwnCharger, SignedIn, Store
from electra.api.repositories import ChargerRepository
from electra.api.routes import COMMON
from electra.api.schemas import (
    ConnectorPublic,
    LeaseHeld,
    LeasePublic,
    LeaseUpdate,
    NearbyPublic,
    PricePublic,
    StationPublic,
    StationStatusPublic,
    TariffPublic,
    TariffUpdate,
)
from electra.chain.bindings import Electra
from electra.discovery.index import Filters
from electra.domain.station import connector_names, parse_connectors
from electra.domain.tariff import Tariff
from electra.errors import ChainError, ElectraError, InvalidInput
from electra.payments.tariffs import DEFAULT_TARIFF, LeaseBook

router = APIRouter(prefix="/api/v1/stations", tags=["stations"], responses=COMMON)


def _token_id(e: Electra, charger_id: str) -> int:
    token_id = e.stations.token_id_of(charger_id)
    if token_id == 0:
        raise ApiProblem(
            404, "charger-unknown", f"no charger {charger_id} is registered", "see /api/v1/stations/nearby"
        )
    return token_id


@router.get("/nearby", summary="The k best chargers near a position, with filters; each result says why it ranks there")
def stations_nearby(
    ctx: Ctx,
    lat: Annotated[float, Query(ge=-90, le=90, description="Latitude, degrees")],
    lon: Annotated[float, Query(ge=-180, le=180, description="Longitude, degrees")],
    k: Annotated[int, Query(ge=1, le=100)] = 10,
    connector: Annotated[
        str | None, Query(max_length=200, description="Any of these connectors, comma-separated")
    ] = None,
    min_power_kw: Annotated[int, Query(ge=0, le=10_000)] = 0,
    max_price_per_wh: Annotated[
        int | None, Query(ge=0, le=10**30, description="Base units of the asset per Wh")
    ] = None,
    available: Annotated[bool, Query(description="Only chargers with a connector Available now")] = False,
    public: Annotated[bool, Query(description="Only chargers leased to the public")] = False,
    radius_km: Annotated[float | None, Query(gt=0, le=20_000)] = None,
) -> NearbyPublic:
    if ctx.stations is None:
        raise ApiProblem(503, "discovery-off", "discovery is not running in this process")
    try:
        filters = Filters(
            connector_mask=parse_connectors(connector.split(",")) if connector else 0,
            min_power_w=min_power_kw * 1000,
            max_price_per_wh=max_price_per_wh,
            available_now=available,
            public_only=public,
            radius_m=None if radius_km is None else int(radius_km * 1000),
        )
        found = ctx.stations().nearby(round(lat * 1e6), round(lon * 1e6), k, filters)
    except InvalidInput as exc:
        raise ApiProblem(400, "bad-query", exc.cause, exc.fix) from exc
    return NearbyPublic(count=len(found), items=[f.to_json() for f in found])


@router.get("/{charger_id}", summary="A charger: its on-chain record, holder and lease")
def station(charger_id: ChargerIdPath, e: Chain, engine: Store) -> StationPublic:
    r = e.stations.station(_token_id(e, charger_id))
    lease = LeaseBook(engine).get(charger_id)
    return StationPublic(
        token_id=r.token_id,
        charger_id=r.charger_id,
        owner=r.owner,
        latitude=r.latitude_e6 / 1e6,
        longitude=r.longitude_e6 / 1e6,
        max_power_w=r.max_power_w,
        connector_types=connector_names(r.connector_types),
        ocpp_versions=r.ocpp_versions,
        ocpi_compliant=r.ocpi_compliant,
        operator_id=r.operator_id,
        device=r.device,
        active=r.active,
        metadata_uri=r.metadata_uri,
        metadata_hash=r.metadata_hash,
        registered_at=r.registered_at,
        lease=LeasePublic(public=lease.public, windows=[w.text() for w in lease.windows]),
    )


def _tariff_public(charger_id: str, t: Tariff, default: bool) -> TariffPublic:
    return TariffPublic(
        charger_id=charger_id,
        asset=t.asset,
        energy_price_per_wh=str(t.energy_price_per_wh),
        time_price_per_hour=str(t.time_price_per_hour),
        idle_price_per_hour=str(t.idle_price_per_hour),
        idle_grace_s=t.idle_grace_s,
        session_fee=str(t.session_fee),
        default=default,
    )


@router.get("/{charger_id}/tariff", summary="The tariff the charger's holder set (or the platform default)")
def tariff(charger_id: ChargerIdPath, ctx: Ctx) -> TariffPublic:
    from electra.api.repositories import has_tariff

    engine = ctx.store()
    t = ctx.tariffs().get(charger_id)
    return _tariff_public(charger_id, t, not has_tariff(engine, charger_id) and t == DEFAULT_TARIFF)


@router.put("/{charger_id}/tariff", summary="Sets the tariff within the DAO's bounds (the charger's holder)")
def set_tariff(charger_id: HeldCharger, caller: SignedIn, ctx: Ctx, body: TariffUpdate) -> TariffPublic:
    e = ctx.chain()
    _token_id(e, charger_id)
    t = Tariff(
        body.asset,
        int(body.energy_price_per_wh),
        int(body.time_price_per_hour),
        int(body.idle_price_per_hour),
        body.idle_grace_s,
        int(body.session_fee),
    )
    try:
        ctx.tariffs().set(charger_id, t, by=caller.address or f"api-key:{caller.key_id}")
    except InvalidInput as exc:
        raise ApiProblem(400, "tariff-out-of-bounds", exc.cause, exc.fix) from exc
    return _tariff_public(charger_id, t, False)


def _lease_held(lease: Any) -> LeaseHeld:
    return LeaseHeld(
        charger_id=lease.charger_id,
        public=lease.public,
        windows=[w.text() for w in lease.windows],
        allowed_vehicles=sorted(lease.allowed_vehicles),
    )


@router.get(
    "/{charger_id}/lease", summary="The lease with the vehicles it always admits (the charger's holder, or staff)"
)
def lease(charger_id: OwnCharger, e: Chain, engine: Store) -> LeaseHeld:
    _token_id(e, charger_id)
    return _lease_held(LeaseBook(engine).get(charger_id))


@router.put(
    "/{charger_id}/lease",
    summary="Leases the charger: to the public in its windows, or only to listed vehicles (the charger's holder)",
)
def set_lease(charger_id: HeldCharger, e: Chain, engine: Store, body: LeaseUpdate) -> LeaseHeld:
    _token_id(e, charger_id)
    try:
        held = LeaseBook(engine).set(charger_id, body.public, body.windows, body.allowed_vehicles)
    except InvalidInput as exc:
        raise ApiProblem(400, "lease-invalid", exc.cause, exc.fix) from exc
    return _lease_held(held)


@router.get("/{charger_id}/status", summary="Live status: connected now, connectors as the charger last reported")
def status(charger_id: ChargerIdPath, ctx: Ctx, engine: Store) -> StationStatusPublic:
    repo = ChargerRepository(engine)
    state = repo.state(charger_id)
    connectors = repo.connectors(charger_id)
    system = ctx.live_system()
    live = system.live.get(charger_id) if system is not None else None
    if state is None and live is None and not connectors:
        raise ApiProblem(404, "charger-unknown", f"the central system has never seen {charger_id}")
    listed = [
        ConnectorPublic(
            connector_id=c.connector_id, status=c.status, error_code=c.error_code, updated_at_ms=c.updated_at_ms
        )
        for c in connectors
    ]
    return StationStatusPublic(
        charger_id=charger_id,
        connected=(live is not None) if system is not None else None,
        ocpp_version=state.ocpp_version if state is not None else (live.version.removeprefix("ocpp") if live else None),
        registration=state.registration if state is not None else None,
        last_seen_ms=state.last_seen_ms if state is not None else None,
        connectors=listed,
    )


def pricing_service(ctx: ApiContext) -> Any:
    """The dynamic pricing service: the one given to the app, else one over this store and
    deployment, made on first use."""
    if ctx.pricing is not None:
        return ctx.pricing()

    def make() -> Any:
        from electra.intelligence.forecast import site_key
        from electra.intelligence.service import pricing_for

        e = ctx.electra()
        if e is None:
            raise chain_off(fix="deploy first: the DAO's bounds are on-chain")
        sites = None
        stations = ctx.stations
        if stations is not None:

            def sites() -> dict[str, str]:
                index = stations()
                listings = [x for x in map(index.get, index.token_ids()) if x is not None]
                return {x.charger_id: site_key(x.latitude_e6, x.longitude_e6) for x in listings}

        return pricing_for(ctx.store(), e, sites=sites)

    return ctx._once("pricing", make)


@router.get(
    "/{charger_id}/price", summary="A charger's dynamic price for this hour, and why: forecast, multiplier, bounds"
)
async def station_price(charger_id: ChargerIdPath, ctx: Ctx) -> PricePublic:
    from electra.intelligence.service import UnknownCharger

    ctx.store()

    def work() -> dict[str, Any]:
        q, published = pricing_service(ctx).quote(charger_id)
        return {**q.to_json(), "published_now": published}

    try:
        return PricePublic(**await run_in_threadpool(work))
    except UnknownCharger as exc:
        raise ApiProblem(404, "charger-unknown", exc.cause, exc.fix) from exc
    except (ApiProblem, ChainError):
        raise
    except ElectraError as exc:
        raise ApiProblem(409, "pricing-refused", exc.cause, exc.fix) from exc
