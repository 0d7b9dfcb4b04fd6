"""Wallets on a real anvil: deposits, withdrawals, balances, history, earnings, low-balance alerts and
the event bus that carries them; amounts parsed exactly."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine

from electra.chain.bindings import Electra
from electra.chain.keys import dev_account
from electra.chain.payments import SessionCharge
from electra.domain.station import StationSpec
from electra.domain.vehicle import vin_hash
from electra.errors import InvalidInput
from electra.payments.amounts import format_units, parse_units
from electra.payments.events import BALANCE_LOW, BALANCE_RECOVERED, DEPOSITED, EventBus
from electra.payments.providers import SandboxProvider
from electra.payments.topup import TopUpService
from electra.payments.wallet import WalletService
from electra.store.db import make_engine, migrate

OPERATOR = dev_account(0)
HOST = dev_account(1)
OWNER = dev_account(3)
FUNDER = dev_account(5)
ELC = 10**18
EUSD = 10**6


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path}/wallet.db")
    migrate(engine)
    yield engine
    engine.dispose()


def new_vehicle(electra: Electra, vin: str = "WVWZZZE1ZPP000001") -> int:
    vid, _ = electra.vehicles.register(vin_hash(vin), Account.create().address, owner=OWNER)
    return vid


class Clock:
    def __init__(self) -> None:
        self.t = 1_790_000_000.0

    def __call__(self) -> float:
        self.t += 1
        return self.t


# ---------------------------------------------------------------- amounts


def test_amounts_are_parsed_exactly() -> None:
    assert parse_units("12.5", 6) == 12_500_000
    assert parse_units("0.000001", 6) == 1
    assert parse_units(" 7 ", 18) == 7 * ELC
    assert parse_units("1.000000000000000001", 18) == ELC + 1
    for bad in ("1.0000001", "-1", "1e6", "", "1,5", ".5", "5.", "0x10", "NaN", "1_000"):
        with pytest.raises(InvalidInput):
            parse_units(bad, 6)
    with pytest.raises(InvalidInput) as e:
        parse_units("0.123", 2)
    assert "has 3 decimals" in e.value.cause
    with pytest.raises(InvalidInput):
        parse_units("9" * 80, 0)
    assert format_units(12_500_000, 6) == "12.5"
    assert format_units(10**18, 18) == "1"
    assert format_units(1, 6) == "0.000001"
    assert format_units(-5, 2) == "-0.05"
    assert format_units(42, 0) == "42"


@given(st.integers(min_value=0, max_value=2**200), st.integers(min_value=0, max_value=30))
def test_format_then_parse_is_identity(units: int, decimals: int) -> None:
    assert parse_units(format_units(units, decimals), decimals) == units


# ---------------------------------------------------------------- the event bus


def test_bus_fans_out_by_topic_and_drops_the_oldest_for_a_slow_reader() -> None:
    bus = EventBus()
    everything, low, small = bus.subscribe(), bus.subscribe([BALANCE_LOW]), bus.subscribe(maxsize=2)
    for i in range(3):
        bus.publish(BALANCE_LOW if i % 2 == 0 else DEPOSITED, {"i": i})
    assert [e.data["i"] for e in everything.drain()] == [0, 1, 2]
    assert [(e.seq, e.topic) for e in low.drain()] == [(1, BALANCE_LOW), (3, BALANCE_LOW)]
    assert [e.data["i"] for e in small.drain()] == [1, 2]
    assert small.dropped == 1
    with low:
        assert bus.subscribers == 3
    assert bus.subscribers == 2
    bus.publish(BALANCE_LOW, {"i": 9})
    assert low.get_nowait() is None
    sse = everything.drain()[0].sse()
    assert sse == f'id: {bus.epoch}-4\nevent: balance.low\ndata: {{"i": 9}}\n\n'


def test_bus_replays_what_a_reconnecting_reader_missed_and_says_when_it_cannot() -> None:
    bus = EventBus(retain=3)
    first = bus.publish(BALANCE_LOW, {"i": 1})
    for i in range(2, 5):
        bus.publish(BALANCE_LOW if i % 2 else DEPOSITED, {"i": i})
    # Retained: 2, 3, 4. After 2, on BALANCE_LOW only: 3 (4 is a deposit).
    sub, replay = bus.subscribe_after(f"{bus.epoch}-2", [BALANCE_LOW])
    assert replay.complete and [e.data["i"] for e in replay.events] == [3]
    bus.publish(BALANCE_LOW, {"i": 5})  # live, after the replay: no gap, no repeat
    assert [e.data["i"] for e in sub.drain()] == [5]
    # Event 1 fell out of what is kept: what is left comes, flagged incomplete.
    _, old = bus.subscribe_after(first.event_id)
    assert not old.complete and "no longer kept" in old.reason
    assert [e.data["i"] for e in old.events] == [3, 4, 5]
    # Up to date: nothing to replay, and nothing is missing.
    _, current = bus.subscribe_after(f"{bus.epoch}-5")
    assert current.complete and current.events == [] and current.position == f"{bus.epoch}-5"
    _, fresh = bus.subscribe_after(None)
    assert fresh.complete and fresh.events == [] and fresh.position == f"{bus.epoch}-5"
    # An id from another process (another epoch), from the future, or not an id at all.
    for stale in (f"{EventBus().epoch}-2", f"{bus.epoch}-99", "7", "", "x-y"):
        _, r = bus.subscribe_after(stale)
        assert not r.complete and r.events == [] and "current run" in r.reason, stale


def test_bus_wakes_an_async_reader_from_another_thread() -> None:
    bus = EventBus()

    async def read() -> list[int]:
        sub = bus.subscribe()
        threads = [threading.Thread(target=bus.publish, args=("x", {"n": n})) for n in range(3)]
        for t in threads:
            t.start()
        got = [(await asyncio.wait_for(sub.get(), 5)).data["n"] for _ in range(3)]  # type: ignore[union-attr]
        for t in threads:
            t.join()
        loop_reader = asyncio.create_task(anext(sub))
        await asyncio.sleep(0)
        sub.close()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(loop_reader, 5)
        return sorted(got)

    assert asyncio.run(read()) == [0, 1, 2]

    async def leave_open() -> object:
        return bus.subscribe(["late"])

    stale = asyncio.run(leave_open())  # its loop is gone when the event comes
    bus.publish("late", {"n": 1})
    assert stale.get_nowait().data == {"n": 1}  # type: ignore[attr-defined]
    with pytest.raises(InvalidInput):
        asyncio.run(bus.subscribe().get())  # made outside a loop: it cannot be awaited


# ---------------------------------------------------------------- deposits, withdrawals, history


def test_deposit_withdraw_balance_history(electra: Electra, store_engine: Engine) -> None:
    wallet = WalletService(store_engine, electra, clock=Clock())
    vid = new_vehicle(electra)
    assert wallet.balances(vid) == {"EUSD": 0, "ELC": 0}
    assert wallet.asset("eusd").decimals == 6 and wallet.asset("ELC").decimals == 18

    d1 = wallet.deposit(vid, "ELC", 5 * ELC)  # from the operator, who holds the genesis supply
    assert (d1.balance, d1.event.kind, d1.event.amount, d1.event.reference) == (
        5 * ELC,
        "deposit",
        5 * ELC,
        d1.tx.tx_hash,
    )
    electra.stablecoin.mint(FUNDER.address, 30 * EUSD)
    d2 = wallet.deposit(vid, "EUSD", 30 * EUSD, sender=FUNDER)  # anyone may fund any vehicle
    assert electra.stablecoin.balance_of(FUNDER.address) == 0
    w = wallet.withdraw(vid, "EUSD", 12 * EUSD, OWNER)
    assert w.balance == 18 * EUSD
    assert electra.stablecoin.balance_of(OWNER.address) == 12 * EUSD
    assert wallet.balances(vid) == {"EUSD": 18 * EUSD, "ELC": 5 * ELC}
    assert wallet.balance(vid, "EUSD") == electra.payments.balance(vid, electra.stablecoin.address)

    page = wallet.history(vehicle_id=vid)
    assert [(e.kind, e.asset, e.amount) for e in page.events] == [
        ("withdrawal", "EUSD", 12 * EUSD),
        ("deposit", "EUSD", 30 * EUSD),
        ("deposit", "ELC", 5 * ELC),
    ]
    assert page.next_before is None
    assert {e.owner for e in page.events} == {OWNER.address}
    assert [e.reference for e in page.events] == [w.tx.tx_hash, d2.tx.tx_hash, d1.tx.tx_hash]
    first = wallet.history(vehicle_id=vid, limit=2)
    assert [e.kind for e in first.events] == ["withdrawal", "deposit"]
    rest = wallet.history(vehicle_id=vid, limit=2, before=first.next_before)
    assert [(e.asset, e.kind) for e in rest.events] == [("ELC", "deposit")] and rest.next_before is None
    by_owner = wallet.history(owner=OWNER.address.lower())
    assert [e.id for e in by_owner.events] == [e.id for e in page.events]
    assert wallet.history(owner=FUNDER.address).events == []
    assert page.to_json()["events"][0]["amount"] == str(12 * EUSD)

    # Recording is idempotent per (kind, reference).
    assert wallet.record("deposit", vid, OWNER.address, "ELC", 5 * ELC, d1.tx.tx_hash) is False
    assert len(wallet.history(vehicle_id=vid).events) == 3


def test_wallet_refusals(electra: Electra, sqlite_engine: Engine) -> None:
    wallet = WalletService(sqlite_engine, electra)
    vid = new_vehicle(electra)
    wallet.deposit(vid, "ELC", ELC)
    cases = [
        (lambda: wallet.withdraw(vid, "ELC", ELC, FUNDER), "does not own vehicle"),
        (lambda: wallet.withdraw(vid, "ELC", 2 * ELC, OWNER), "less than 2 ELC"),
        (lambda: wallet.withdraw(vid, "ELC", 0, OWNER), "withdrawal amount 0"),
        (lambda: wallet.deposit(vid, "EUSD", EUSD, sender=FUNDER), "holds 0 EUSD"),
        (lambda: wallet.deposit(vid, "DOGE", 1), "unknown asset"),
        (lambda: wallet.deposit(vid + 1, "ELC", 1), "no vehicle with id"),
        (lambda: wallet.deposit(vid, "ELC", 0), "deposit amount 0"),
        (lambda: wallet.history(), "either a vehicle or an owner"),
        (lambda: wallet.history(vehicle_id=vid, owner=OWNER.address), "either a vehicle or an owner"),
        (lambda: wallet.history(owner="0x1234"), "not an address"),
        (lambda: wallet.history(vehicle_id=vid, limit=0), "page size"),
        (lambda: wallet.record("bribe", vid, None, "ELC", 1, "x"), "wallet event kind"),
        (lambda: wallet.set_alert(vid, "ELC", 0), "alert threshold 0"),
        (lambda: wallet.withdraw_earnings("ELC", HOST), "no earnings"),
    ]
    for call, message in cases:
        with pytest.raises(InvalidInput) as e:
            call()
        assert message in e.value.cause, (message, e.value.cause)
    assert wallet.balances(vid) == {"EUSD": 0, "ELC": ELC}


def _register_charger(electra: Electra) -> int:
    spec = StationSpec(
        charger_id="CP-WALLET-1",
        latitude_e6=52_520_008,
        longitude_e6=13_404_954,
        max_power_w=22_000,
        connector_types=0b10,
        ocpp_versions=1,
        operator_id=b"DEELC",
        metadata_uri="ipfs://bafy/wallet.json",
        metadata={"site": "test"},
    )
    token_id, _ = electra.stations.register(spec, Account.create(), owner=HOST)
    return token_id


def test_owner_earnings_and_payout(electra: Electra, sqlite_engine: Engine) -> None:
    wallet = WalletService(sqlite_engine, electra)
    vid = new_vehicle(electra)
    charger = _register_charger(electra)
    eusd = electra.stablecoin.address
    electra.stablecoin.mint(OPERATOR.address, 10 * EUSD)
    wallet.deposit(vid, "EUSD", 10 * EUSD)
    signed = electra.payments.authorize(OWNER, vid, charger, eusd, 5 * EUSD)
    result = electra.payments.settle(eusd, SessionCharge(1, signed, 4 * EUSD, b"\x01" * 32))
    assert result.settled == [1]
    fee = result.fee_amount
    assert wallet.earnings(HOST.address) == {"EUSD": 4 * EUSD - fee, "ELC": 0}

    payout = wallet.withdraw_earnings("EUSD", HOST)
    assert (payout.event.kind, payout.event.owner, payout.event.amount) == ("payout", HOST.address, 4 * EUSD - fee)
    assert electra.stablecoin.balance_of(HOST.address) == 4 * EUSD - fee
    assert wallet.earnings(HOST.address)["EUSD"] == 0
    assert [e.kind for e in wallet.history(owner=HOST.address).events] == ["payout"]
    assert wallet.balance(vid, "EUSD") == 6 * EUSD


# ---------------------------------------------------------------- low-balance alerts


def test_alert_fires_below_threshold_and_clears_after_a_top_up(electra: Electra, store_engine: Engine) -> None:
    bus = EventBus()
    wallet = WalletService(store_engine, electra, bus=bus, clock=Clock())
    topups = TopUpService(store_engine, electra, wallet=wallet)
    provider = SandboxProvider(b"k" * 32)
    vid = new_vehicle(electra)
    sub = bus.subscribe([BALANCE_LOW, BALANCE_RECOVERED])
    electra.stablecoin.mint(OPERATOR.address, 8 * EUSD)
    wallet.deposit(vid, "EUSD", 8 * EUSD)

    state = wallet.set_alert(vid, "EUSD", 10 * EUSD)  # 8 < 10: fires at once
    assert (state.firing, state.changed, state.balance, state.threshold) == (True, True, 8 * EUSD, 10 * EUSD)
    assert [(a.vehicle_id, a.asset) for a in wallet.alerts()] == [(vid, "EUSD")]
    [low] = sub.drain()
    assert (low.topic, low.data["vehicle_id"], low.data["balance"]) == (BALANCE_LOW, vid, str(8 * EUSD))
    # Checking again changes nothing and publishes nothing.
    [again] = wallet.check_alerts(vid)
    assert (again.firing, again.changed) == (True, False)
    assert sub.drain() == []

    intent = topups.checkout(provider, vid, 500, "EUR")  # 5.00 EUR -> 13 eUSD in all
    request = provider.complete(intent)
    outcome = topups.handle(provider.name, provider.parse_webhook(request.headers, request.body))
    assert outcome.status == "credited"
    assert wallet.alerts() == []
    [recovered] = sub.drain()
    assert (recovered.topic, recovered.data["balance"], recovered.data["firing"]) == (
        BALANCE_RECOVERED,
        str(13 * EUSD),
        False,
    )
    [state] = wallet.alerts(firing_only=False)
    assert (state.firing, state.balance) == (False, 13 * EUSD)

    wallet.withdraw(vid, "EUSD", 4 * EUSD, OWNER)  # 9 < 10: fires again
    assert [a.balance for a in wallet.alerts()] == [9 * EUSD]
    assert [e.topic for e in sub.drain()] == [BALANCE_LOW]
    assert wallet.remove_alert(vid, "EUSD") is True
    assert wallet.remove_alert(vid, "EUSD") is False
    assert wallet.check_alerts(vid) == [] and wallet.alerts() == []


def test_alert_per_asset_and_check_all(electra: Electra, sqlite_engine: Engine) -> None:
    wallet = WalletService(sqlite_engine, electra)
    v1, v2 = new_vehicle(electra), new_vehicle(electra, "WVWZZZE1ZPP000002")
    wallet.set_alert(v1, "ELC", ELC)
    wallet.set_alert(v1, "EUSD", 1)
    wallet.set_alert(v2, "ELC", ELC)
    assert [(a.vehicle_id, a.asset) for a in wallet.alerts()] == [(v1, "ELC"), (v1, "EUSD"), (v2, "ELC")]
    # Money arriving outside the wallet service (straight on the chain) is seen by the next check.
    electra.payments.deposit(v2, electra.token.address, 2 * ELC)
    assert [(a.vehicle_id, a.firing) for a in wallet.alerts()] == [(v1, True), (v1, True), (v2, True)]
    states = wallet.check_all_alerts()
    assert [(a.vehicle_id, a.asset, a.firing, a.changed) for a in states] == [
        (v1, "ELC", True, False),
        (v1, "EUSD", True, False),
        (v2, "ELC", False, True),
    ]
    assert [(a.vehicle_id, a.asset) for a in wallet.alerts()] == [(v1, "ELC"), (v1, "EUSD")]
    wallet.set_alert(v1, "ELC", 1)  # a new threshold is checked at once; ELC balance 0 < 1 still fires
    assert [a.threshold for a in wallet.alerts() if a.asset == "ELC"] == [1]


def test_alert_event_reaches_an_async_subscriber(electra: Electra, sqlite_engine: Engine) -> None:
    """What the SSE endpoint will do: await the bus in the loop while the wallet works in a thread."""
    bus = EventBus()
    wallet = WalletService(sqlite_engine, electra, bus=bus)
    vid = new_vehicle(electra)

    async def watch() -> tuple[str, object]:
        sub = bus.subscribe([BALANCE_LOW])
        await asyncio.to_thread(wallet.set_alert, vid, "ELC", ELC)
        event = await asyncio.wait_for(sub.get(), 5)
        sub.close()
        assert event is not None
        return event.topic, event.data["vehicle_id"]

    assert asyncio.run(watch()) == (BALANCE_LOW, vid)
