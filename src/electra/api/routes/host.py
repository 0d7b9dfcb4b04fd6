"""Host views: the chargers a wallet holds, its earnings, a charger's utilization, staking and
maintenance tickets; and the network's tickets for operators."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from electra.api.auth import Principal
from electra.api.context import ApiProblem
from electra.api.deps import Chain, Ctx, OwnCharger, Page, SignedIn, Staff, Store
from electra.api.repositories import EarningsRepository, utilization, wallet_history
from electra.api.routes import COMMON
from electra.api.schemas import (
    AmountPublic,
    ChargerEarningsPublic,
    EarningsPublic,
    HostChargerPublic,
    StakingPublic,
    TicketListPublic,
    TicketPublic,
    TierPublic,
    UtilizationPublic,
    WalletEventPublic,
)
from electra.api.schemas import (
    Page as PageOf,
)
from electra.chain.bindings import Electra, StationRecord

router = APIRouter(tags=["host"], responses=COMMON)
DAY_MS = 86_400_000
OwnerQuery = Annotated[str | None, Query(pattern=r"^0x[0-9a-fA-F]{40}$", description="Operators: whose")]


def _charger(r: StationRecord) -> HostChargerPublic:
    return HostChargerPublic(
        token_id=r.token_id,
        charger_id=r.charger_id,
        owner=r.owner,
        active=r.active,
        latitude=r.latitude_e6 / 1e6,
        longitude=r.longitude_e6 / 1e6,
        max_power_w=r.max_power_w,
    )


def _whose(caller: Principal, owner: str | None) -> str:
    """The address whose things to show: a wallet's own; an operator's choice (required)."""
    from eth_utils.address import to_checksum_address

    if caller.staff:
        if owner is None:
            raise ApiProblem(400, "bad-request", "operators say whose with ?owner=0x...")
        return to_checksum_address(owner)
    if owner is not None and owner.lower() != str(caller.address).lower():
        raise ApiProblem(403, "not-yours", "a wallet sees only its own", "leave out owner")
    return str(caller.address)


def _token_id(e: Electra, charger_id: str) -> int:
    token_id = e.stations.token_id_of(charger_id)
    if token_id == 0:
        raise ApiProblem(404, "charger-unknown", f"no charger {charger_id} is registered")
    return token_id


@router.get("/api/v1/host/chargers", summary="The chargers a wallet holds (operators: anyone's, or all)")
def chargers(ctx: Ctx, caller: SignedIn, e: Chain, page: Page, owner: OwnerQuery = None) -> PageOf[HostChargerPublic]:
    if caller.staff and owner is None:
        total = e.stations.total()
        first = page.cursor or 1
        last = min(total, first + page.limit - 1)
        items = [_charger(e.stations.station(t)) for t in range(first, last + 1)]
        return PageOf[HostChargerPublic](items=items, next=str(last + 1) if last < total else None)
    address = _whose(caller, owner)
    tokens = sorted(t for t in ctx.roles.holdings(address) if page.cursor is None or t >= page.cursor)
    items = [_charger(e.stations.station(t)) for t in tokens[: page.limit]]
    more = len(tokens) > page.limit
    return PageOf[HostChargerPublic](items=items, next=str(tokens[page.limit]) if more else None)


@router.get(
    "/api/v1/host/earnings",
    summary="A wallet's earnings: withdrawable on PaymentHub, settled sessions per charger, history",
)
def earnings(ctx: Ctx, caller: SignedIn, page: Page, owner: OwnerQuery = None) -> EarningsPublic:
    address = _whose(caller, owner)
    wallet = ctx.wallet()
    withdrawable = [AmountPublic(asset=a, amount=str(v)) for a, v in wallet.earnings(address).items()]
    by_charger = [
        ChargerEarningsPublic(
            charger_id=x.charger_id,
            asset=x.asset,
            sessions=x.sessions,
            gross=str(x.gross),
            fee=str(x.fee),
            net=str(x.net),
        )
        for x in EarningsRepository(ctx.store()).by_charger(address)
    ]
    h = wallet_history(ctx.store(), owner=address, limit=page.limit, before=page.cursor)
    lines = [WalletEventPublic(**ev.to_json()) for ev in h.events if ev.kind in ("earning", "payout")]
    history = PageOf[WalletEventPublic](items=lines, next=str(h.next_before) if h.next_before is not None else None)
    return EarningsPublic(owner=address, withdrawable=withdrawable, by_charger=by_charger, history=history)


@router.get("/api/v1/host/chargers/{charger_id}/utilization", summary="How busy the charger was over the last days")
def charger_utilization(
    charger_id: OwnCharger,
    ctx: Ctx,
    engine: Store,
    days: Annotated[int, Query(ge=1, le=90)] = 7,
) -> UtilizationPublic:
    end = int(ctx.clock() * 1000)
    u = utilization(engine, charger_id, end - days * DAY_MS, end)
    return UtilizationPublic(
        charger_id=charger_id,
        window_start_ms=u.start_ms,
        window_end_ms=u.end_ms,
        connectors=u.connectors,
        sessions=u.sessions,
        energy_wh=u.energy_wh,
        occupied_s=u.occupied_ms // 1000,
        utilization_permille=u.permille,
    )


@router.get("/api/v1/host/chargers/{charger_id}/staking", summary="Stake on the charger: tier, commission, unbonding")
def charger_staking(charger_id: OwnCharger, e: Chain) -> StakingPublic:
    token_id = _token_id(e, charger_id)
    staking = e.staking
    tier = staking.tier_of(token_id)
    position = staking.position(token_id, tier.holder)
    return StakingPublic(
        charger_id=charger_id,
        token_id=token_id,
        holder=tier.holder,
        bonded=str(tier.bonded),
        tier=tier.tier,
        discount_bps=tier.discount_bps,
        boost_bps=tier.boost_bps,
        unbonding=str(position.unbonding),
        release_at=position.release_at,
        unbonding_delay_s=staking.unbonding_delay(),
        tiers=[TierPublic(**t.to_json()) for t in staking.tiers()],
    )


@router.get("/api/v1/host/chargers/{charger_id}/tickets", summary="The charger's maintenance tickets")
def charger_tickets(charger_id: OwnCharger, engine: Store) -> TicketListPublic:
    from electra.intelligence.store import TicketBook

    tickets = TicketBook(engine).list(None, charger_id, 100)
    return TicketListPublic(count=len(tickets), items=[TicketPublic(**t.to_json()) for t in tickets])


@router.get(
    "/api/v1/maintenance/tickets",
    tags=["maintenance"],
    summary="The network's maintenance tickets, the riskiest live ones first (operators)",
)
def maintenance_tickets(
    _: Staff,
    engine: Store,
    status: Annotated[
        str, Query(pattern="^(live|open|scheduled|closed|all)$", description="live = open or scheduled")
    ] = "live",
    charger_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> TicketListPublic:
    from electra.intelligence.maintenance import TicketStatus
    from electra.intelligence.store import TicketBook

    wanted: list[TicketStatus] | None
    if status == "all":
        wanted = None
    elif status == "live":
        wanted = [TicketStatus.OPEN, TicketStatus.SCHEDULED]
    else:
        wanted = [TicketStatus(status)]
    tickets = TicketBook(engine).list(wanted, charger_id, limit)
    return TicketListPublic(count=len(tickets), items=[TicketPublic(**t.to_json()) for t in tickets])
