"""Dynamic pricing over the store (SQLite and PostgreSQL): quotes published once per hour, a
session billed at the quote in force when it started, and the API routes for prices and tickets."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from electra.api.app import PROBLEM, create_app
from electra.api.auth import ApiKeyBook
from electra.domain.tariff import Tariff
from electra.intelligence.history import simulate_fleet
from electra.intelligence.maintenance import TicketStatus
from electra.intelligence.pricing import BPS
from electra.intelligence.service import PricingService, UnknownCharger
from electra.intelligence.signals import DAY_MS, HOUR_MS, ChargerHistory, SessionOutcome
from electra.intelligence.store import QuoteBook, TicketBook, price_in_force, write_history
from electra.payments.billing import MANUAL, Biller
from electra.payments.tariffs import DEFAULT_BOUNDS, TariffBook
from electra.store.models import SessionRecord


@dataclass
class Clock:
    t_ms: int

    def __call__(self) -> float:
        return self.t_ms / 1000


@pytest.fixture
def fleet_store(store_engine: Engine) -> tuple[Engine, Any]:
    fleet = simulate_fleet(21, sites=3, chargers_per_site=2, weeks=5, failure_share=0.0)
    write_history(store_engine, fleet.histories())
    return store_engine, fleet


def _service(engine: Engine, clock: Clock) -> PricingService:
    return PricingService(engine, TariffBook(engine).get, DEFAULT_BOUNDS.get, clock=clock)


def test_quote_follows_the_forecast_and_holds_for_the_hour(fleet_store: tuple[Engine, Any]) -> None:
    engine, fleet = fleet_store
    cid = fleet.chargers[0].charger_id
    clock = Clock(fleet.end_ms + 20 * 60_000)
    svc = _service(engine, clock)
    q, published = svc.quote(cid)
    assert published
    assert q.forecast.method == "model" and len(q.forecast.utilization_permille) == 24
    assert q.valid_from_ms == fleet.end_ms and q.valid_until_ms == fleet.end_ms + HOUR_MS
    assert q.forecast_permille == q.forecast.utilization_permille[0]
    assert q.multiplier_bps == q.bounds.clamp(BPS + 10 * (q.forecast_permille - 400))
    assert q.price.energy_price_per_wh == 400 * q.multiplier_bps // BPS  # the platform's default tariff
    assert q.ceiling == DEFAULT_BOUNDS["EUSD"]
    # the owner changes the tariff: this hour's price stands, the next hour's follows
    TariffBook(engine).set(cid, Tariff("EUSD", 1_000), by="owner")
    clock.t_ms += 30 * 60_000
    same, published = svc.quote(cid)
    assert not published and same == q
    clock.t_ms += HOUR_MS
    later, published = svc.quote(cid)
    assert published and later.base.energy_price_per_wh == 1_000
    assert later.price.energy_price_per_wh == 1_000 * later.multiplier_bps // BPS
    # another process sees the same quote: it is in the store
    assert _service(engine, clock).quote(cid) == (later, False)


def test_unknown_and_new_chargers(fleet_store: tuple[Engine, Any]) -> None:
    engine, fleet = fleet_store
    clock = Clock(fleet.end_ms)
    with pytest.raises(UnknownCharger):
        _service(engine, clock).quote("CP-NEVER-SEEN")
    young = ChargerHistory(
        "CP-YOUNG", "y", 1, (SessionOutcome(1, fleet.end_ms - DAY_MS, fleet.end_ms - DAY_MS + HOUR_MS, 5000),)
    )
    write_history(engine, [young])
    q, _ = _service(engine, clock).quote("CP-YOUNG")
    assert q.forecast.method == "none" and q.multiplier_bps == BPS and q.price.energy_price_per_wh == 400


def test_quotes_are_written_once(store_engine: Engine) -> None:
    fleet = simulate_fleet(5, sites=1, chargers_per_site=1, weeks=3, failure_share=0.0)
    write_history(store_engine, fleet.histories())
    cid = fleet.chargers[0].charger_id
    svc = _service(store_engine, Clock(fleet.end_ms + 10 * 60_000))
    q, _ = svc.quote(cid)
    book = QuoteBook(store_engine)
    other = type(q)(**{**q.__dict__, "multiplier_bps": BPS + 1})
    assert book.publish(other, fleet.end_ms + 11 * 60_000) == q  # the first one holds
    assert book.get(cid, q.valid_from_ms) == (q, fleet.end_ms + 10 * 60_000)
    assert book.in_force(cid, fleet.end_ms + 10 * 60_000) == q
    assert book.in_force(cid, fleet.end_ms + 9 * 60_000) is None  # started before it was published
    assert book.in_force(cid, fleet.end_ms + HOUR_MS + 1) is None  # the next hour has none yet


class NoAuthorizations:
    def for_session(self, session_id: int) -> None:
        return None


def test_a_session_pays_the_quote_in_force_when_it_started(fleet_store: tuple[Engine, Any]) -> None:
    engine, fleet = fleet_store
    cid = fleet.chargers[1].charger_id
    hour = fleet.end_ms + 2 * HOUR_MS
    clock = Clock(hour + 10 * 60_000)
    q, _ = _service(engine, clock).quote(cid)
    assert q.multiplier_bps != BPS, "the test needs a price that moved"
    before = SessionOutcome(1, hour + 5 * 60_000, hour + 50 * 60_000, 7_000, "EVDisconnected")
    after = SessionOutcome(2, hour + 15 * 60_000, hour + 3 * HOUR_MS, 9_000, "EVDisconnected")
    write_history(engine, [ChargerHistory(cid, "s", 2, (before, after))])
    clock.t_ms = hour + 4 * HOUR_MS  # billed later, when other quotes may be in force
    biller = Biller(
        engine,
        TariffBook(engine),
        NoAuthorizations(),  # type: ignore[arg-type]
        {"EUSD": "0x" + "11" * 20},
        lambda _cid: 1,
        clock=clock,
        price_in_force=price_in_force(engine),
    )
    with Session(engine) as s:
        rows = {
            r.started_at_ms: r
            for r in s.scalars(
                select(SessionRecord).where(SessionRecord.charger_id == cid, SessionRecord.started_at_ms >= hour)
            )
        }
    started_after, _ = biller.bill(rows[after.started_at_ms])
    assert started_after.amount == str(9_000 * q.price.energy_price_per_wh)
    assert json.loads(started_after.breakdown)["dynamic_price"] is True
    assert started_after.status == MANUAL  # no authorization: a driver's token, billed outside PaymentHub
    started_before, _ = biller.bill(rows[before.started_at_ms])
    assert started_before.amount == str(7_000 * 400)  # no quote was published yet: the owner's tariff
    assert json.loads(started_before.breakdown)["dynamic_price"] is False


def _get(app: Any, url: str, headers: dict[str, str] | None = None, **params: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://electra.test") as http:
            return await http.get(url, params=params, headers=headers)

    return asyncio.run(go())


def test_api_price_and_tickets(fleet_store: tuple[Engine, Any]) -> None:
    engine, fleet = fleet_store
    clock = Clock(fleet.end_ms + 60_000)
    svc = _service(engine, clock)
    app = create_app(engine, lambda: None, pricing=lambda: svc)
    cid = fleet.chargers[2].charger_id
    r = _get(app, f"/api/v1/stations/{cid}/price")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["charger_id"] == cid and body["published_now"] is True
    assert body["forecast"]["method"] == "model" and len(body["forecast"]["next_24h_permille"]) == 24
    assert body["bounds"]["floor_bps"] <= body["multiplier_bps"] <= body["bounds"]["cap_bps"]
    assert body["price"]["energy_price_per_wh"] == str(400 * body["multiplier_bps"] // BPS)
    assert len(body["why"]) >= 3
    assert _get(app, f"/api/v1/stations/{cid}/price").json()["published_now"] is False
    missing = _get(app, "/api/v1/stations/CP-NOPE/price")
    assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM
    assert missing.json()["code"] == "charger-unknown"

    book = TicketBook(engine)
    operator = {"X-API-Key": ApiKeyBook(engine).create("ops", "operator").secret}
    assert _get(app, "/api/v1/maintenance/tickets").status_code == 401  # the network's tickets are for operators
    t1, _ = book.raise_for(cid, 900, ["faults"], clock.t_ms)
    t2, _ = book.raise_for("CP-X", 800, ["meter"], clock.t_ms)
    book.close(t2.id, "recalibrated", clock.t_ms + 1)
    live = _get(app, "/api/v1/maintenance/tickets", headers=operator).json()
    assert [x["id"] for x in live["items"]] == [t1.id] and live["items"][0]["status"] == TicketStatus.OPEN.value
    closed = _get(app, "/api/v1/maintenance/tickets", headers=operator, status="closed").json()
    assert [(x["id"], x["resolution"]) for x in closed["items"]] == [(t2.id, "recalibrated")]
    assert (
        _get(app, "/api/v1/maintenance/tickets", headers=operator, status="all", charger_id="CP-X").json()["count"] == 1
    )
    assert _get(app, "/api/v1/maintenance/tickets", headers=operator, status="bogus").status_code == 422

    # no deployment known: the DAO's bounds cannot be read, so no price
    bare = create_app(engine, lambda: None)
    r = _get(bare, f"/api/v1/stations/{cid}/price")
    assert r.status_code == 503 and r.json()["code"] == "chain-unavailable"
    no_store = create_app(None, lambda: None)
    assert _get(no_store, "/api/v1/maintenance/tickets").status_code == 401  # no store: no API keys either
    assert _get(no_store, f"/api/v1/stations/{cid}/price").status_code == 503


def _busy_charger(cid: str, start_ms: int, weeks: int) -> ChargerHistory:
    """A charger occupied around the clock: its forecast is full utilization."""
    hours = weeks * 7 * 24
    sessions = tuple(
        SessionOutcome(1, start_ms + h * HOUR_MS, start_ms + (h + 1) * HOUR_MS, 11_000, "EVDisconnected")
        for h in range(hours)
    )
    return ChargerHistory(cid, cid, 1, sessions)


def test_a_tariff_ceiling_set_through_the_dao_caps_the_dynamic_price(electra: Any, tmp_path: Any) -> None:
    from electra.chain.governance import Dao, Support
    from electra.domain.tariff import TariffBounds
    from electra.intelligence.history import DEFAULT_START_MS
    from electra.intelligence.service import pricing_for
    from electra.store.db import make_engine, migrate

    engine = make_engine(f"sqlite:///{tmp_path}/electra.db")
    migrate(engine)
    write_history(engine, [_busy_charger("CP-BUSY", DEFAULT_START_MS, 3)])
    clock = Clock(DEFAULT_START_MS + 3 * 7 * DAY_MS + 5 * 60_000)
    before, _ = pricing_for(engine, electra, clock=clock).quote("CP-BUSY")
    assert before.forecast_permille is not None and before.forecast_permille >= 950
    assert (before.multiplier_bps, before.price.energy_price_per_wh, before.capped_by_ceiling) == (15_000, 600, ())
    assert before.bounds.source == "default"  # this PaymentHub has no multiplier bounds parameter yet

    published = TariffBounds(450, 10_000_000, 20_000_000, 500_000)
    target, calldata = electra.payments.governance_call(
        "setTariffBounds", electra.stablecoin.address, tuple(published.__dict__.values())
    )
    dao, params = Dao(electra), electra.deployment.parameters
    pid, _ = _propose(dao, target, calldata, "EUSD tariffs: at most 0.45 per kWh")
    for seconds, step in (
        (params["voting_delay_s"] + 1, lambda: dao.vote(pid, Support.FOR)),
        (params["voting_period_s"] + 1, lambda: dao.queue(pid)),
        (params["timelock_delay_s"] + 1, lambda: dao.execute(pid)),
    ):
        electra.client.rpc("evm_increaseTime", seconds)
        electra.client.rpc("evm_mine")
        step()
    assert electra.payments.tariff_bounds(electra.stablecoin.address) == published

    clock.t_ms += HOUR_MS  # the next hour's quote reads the new ceiling
    after, _ = pricing_for(engine, electra, clock=clock).quote("CP-BUSY")
    assert after.multiplier_bps == 15_000 and after.price.energy_price_per_wh == 450
    assert after.capped_by_ceiling == ("energy_price_per_wh",) and after.ceiling == published
    assert any("tariff ceiling" in w for w in after.why)


def _propose(dao: Any, target: str, calldata: bytes, description: str) -> tuple[int, Any]:
    from web3.logs import DISCARD

    receipt = dao.client.transact(dao.governor.functions.propose([target], [0], [calldata], description))
    return int(
        dao.governor.events.ProposalCreated().process_receipt(receipt, errors=DISCARD)[0]["args"]["proposalId"]
    ), receipt
