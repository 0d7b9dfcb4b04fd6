"""The web app's core parts: utilization by hour of the week, signed actions (the message,
one-time nonces, expiry, who signed) in memory and in the store, and a host's earnings series."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine

from electra.domain.utilization import HOUR_MS, HOURS_PER_WEEK, hour_of_week, weekly_occupancy
from electra.errors import InvalidInput
from electra.web.actions import ActionBook, ActionRefused, ActionUnknown, action_message

MONDAY = int(dt.datetime(2026, 1, 5, tzinfo=dt.UTC).timestamp() * 1000)  # a Monday, 00:00 UTC
WEEK_MS = HOURS_PER_WEEK * HOUR_MS


def test_hour_of_week_counts_from_monday_midnight_utc() -> None:
    assert hour_of_week(MONDAY) == 0
    assert hour_of_week(MONDAY + HOUR_MS - 1) == 0
    assert hour_of_week(MONDAY + 8 * HOUR_MS + 30 * 60_000) == 8
    assert hour_of_week(MONDAY + 6 * 24 * HOUR_MS + 23 * HOUR_MS) == 167  # Sunday 23:00
    assert hour_of_week(MONDAY + WEEK_MS) == 0
    assert hour_of_week(0) == 72  # the epoch was a Thursday


def test_ninety_minutes_over_three_mondays_at_two_connectors_is_a_quarter() -> None:
    at_eight = MONDAY + 8 * HOUR_MS
    busy = [(at_eight, at_eight + 60 * 60_000), (at_eight + WEEK_MS, at_eight + WEEK_MS + 30 * 60_000)]
    occ = weekly_occupancy(busy, MONDAY, MONDAY + 3 * WEEK_MS, connectors=2)
    p = occ.permille()
    assert p[8] == 250  # 90 busy minutes of 3 x 2 connector-hours
    assert sum(p) == 250
    assert occ.by_day()[0][8] == 250 and len(occ.by_day()) == 7


def test_a_session_across_hours_and_the_window_edges_is_split_and_clipped() -> None:
    start = MONDAY + 10 * HOUR_MS + 45 * 60_000  # 10:45 to 12:15
    occ = weekly_occupancy([(start, start + 90 * 60_000)], MONDAY + 11 * HOUR_MS, MONDAY + 12 * HOUR_MS, 1)
    assert occ.busy_ms[10] == 0 and occ.busy_ms[12] == 0, "clipped to the window"
    assert occ.permille()[11] == 1000
    with pytest.raises(InvalidInput):
        weekly_occupancy([], MONDAY, MONDAY + HOUR_MS, connectors=0)
    with pytest.raises(InvalidInput):
        weekly_occupancy([], MONDAY + HOUR_MS, MONDAY, connectors=1)


@given(
    st.lists(st.tuples(st.integers(0, 2 * WEEK_MS), st.integers(0, 10 * HOUR_MS)), max_size=20),
    st.integers(1, 4),
)
def test_busy_time_is_conserved_and_never_above_what_was_observable(spans: list[tuple[int, int]], n: int) -> None:
    window = (MONDAY, MONDAY + 2 * WEEK_MS)
    busy = [(MONDAY + a, MONDAY + a + d) for a, d in spans]
    occ = weekly_occupancy(busy, *window, connectors=n)
    clipped = sum(max(0, min(b, window[1]) - max(a, window[0])) for a, b in busy)
    assert sum(occ.busy_ms) == clipped
    assert sum(occ.observed_ms) == 2 * WEEK_MS * n
    assert all(0 <= p <= 1000 for p in occ.permille())


def _sign(account: object, message: str) -> str:
    return "0x" + account.sign_message(encode_defunct(text=message)).signature.hex()  # type: ignore[attr-defined]


def test_an_action_is_done_once_and_only_with_the_accounts_signature() -> None:
    holder, other = Account.create(), Account.create()
    nonces = iter(["a" * 32, "b" * 32])
    book = ActionBook(clock=lambda: 1_767_600_000, new_nonce=lambda: next(nonces))
    action = book.issue("127.0.0.1:8000", "tariff", holder.address.lower(), {"charger_id": "CP-1"}, "Set it.")
    assert action.account == holder.address  # checksummed
    assert action.message == action_message(
        "127.0.0.1:8000", "Set it.", holder.address, "tariff", "a" * 32, action.expires_at
    )
    assert action.message.startswith("127.0.0.1:8000 asks you to confirm an Electra action.\n\nSet it.\n\n")
    assert f"Account: {holder.address}\nAction: tariff\nNonce: {'a' * 32}\nExpires At: 2026-01-05T" in action.message
    with pytest.raises(ActionRefused, match="signed by"):
        book.take(action.nonce, _sign(other, action.message))
    with pytest.raises(ActionRefused):
        book.take(action.nonce, _sign(holder, action.message + " changed"))
    assert book.take(action.nonce, _sign(holder, action.message)) == action
    with pytest.raises(ActionUnknown):
        book.take(action.nonce, _sign(holder, action.message))  # used once
    with pytest.raises(InvalidInput):
        book.take(action.nonce, "0x1234")


def test_an_action_expires_and_unknown_kinds_and_accounts_are_refused() -> None:
    now = [1_767_600_000.0]
    holder = Account.create()
    book = ActionBook(clock=lambda: now[0], lifetime_s=300)
    action = book.issue("h", "topup", holder.address, {}, "Top up.")
    now[0] += 301
    with pytest.raises(ActionUnknown):
        book.take(action.nonce, _sign(holder, action.message))
    with pytest.raises(InvalidInput):
        book.issue("h", "mint", holder.address, {}, "x")
    with pytest.raises(InvalidInput):
        book.issue("h", "topup", "not-an-address", {}, "x")
    small = ActionBook(max_pending=1)
    small.issue("h", "stop", holder.address, {}, "Stop.")
    with pytest.raises(ActionRefused):
        small.issue("h", "stop", holder.address, {}, "Stop again.")


def test_a_stored_action_is_confirmed_through_any_process_once_and_survives_a_restart(store_engine: Engine) -> None:
    """In the store (what the API uses): issued by one process, confirmed through another (or after a
    restart), at most once even when several race for it; expiry and the pending cap still hold."""
    holder, other = Account.create(), Account.create()
    now = [1_767_600_000.0]
    one = ActionBook(clock=lambda: now[0], engine=store_engine)
    action = one.issue("h", "lease", holder.address, {"charger_id": "CP-1", "windows": ["daily 06:00-22:00"]}, "Lease.")
    two = ActionBook(clock=lambda: now[0], engine=store_engine)  # another API process, or this one restarted
    with pytest.raises(ActionRefused, match="signed by"):
        two.take(action.nonce, _sign(other, action.message))  # a wrong signer leaves it pending
    assert two.take(action.nonce, _sign(holder, action.message)) == action
    with pytest.raises(ActionUnknown):
        one.take(action.nonce, _sign(holder, action.message))

    raced = one.issue("h", "stop", holder.address, {"session_id": 7}, "Stop.")
    signature = _sign(holder, raced.message)
    outcomes: list[str] = []
    lock = threading.Lock()

    def take() -> None:
        try:
            ActionBook(clock=lambda: now[0], engine=store_engine).take(raced.nonce, signature)
            outcome = "done"
        except ActionUnknown:
            outcome = "unknown"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=take) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["done"] + ["unknown"] * 5

    late = one.issue("h", "topup", holder.address, {"vehicle_id": 1}, "Top up.")
    now[0] += 301
    with pytest.raises(ActionUnknown):
        two.take(late.nonce, _sign(holder, late.message))
    capped = ActionBook(clock=lambda: now[0], engine=store_engine, max_pending=1)
    capped.issue("h", "stop", holder.address, {}, "Stop.")  # the expired one was swept first
    with pytest.raises(ActionRefused, match="too many"):
        capped.issue("h", "stop", holder.address, {}, "Stop again.")


def test_earnings_keep_the_top_chargers_apart_and_sum_the_rest_without_losing_a_unit(tmp_path: Path) -> None:
    from sqlalchemy.orm import Session

    from electra.store.db import make_engine, migrate
    from electra.store.models import SettlementRecord
    from electra.web.views import earnings_series
    from tests.apiworld import add_session

    engine = make_engine(f"sqlite:///{tmp_path}/earnings.db")
    migrate(engine)
    payee = "0x" + "ab" * 20
    paid = {f"CP-{n:02d}": (n + 1) * 1_000 for n in range(12)}  # CP-11 earned most
    sessions = []
    for n, (charger, amount) in enumerate(paid.items()):
        for k in range(2):  # two sessions each, an hour apart
            at = MONDAY + k * HOUR_MS
            sid = add_session(
                engine, charger, None, uid=f"E-{charger}-{k}", started_at_ms=at - 60_000, stopped_at_ms=at
            )
            sessions.append((n, charger, amount, sid))
    with Session(engine) as s, s.begin():
        for n, charger, amount, sid in sessions:
            s.add(
                SettlementRecord(
                    session_id=sid,
                    charger_id=charger,
                    asset="EUSD",
                    amount=str(amount),
                    fee=str(n),
                    breakdown="{}",
                    record_hash="0x" + "00" * 32,
                    status="settled",
                    payee=payee,
                    created_at_ms=MONDAY,
                    updated_at_ms=MONDAY,
                )
            )
    out = earnings_series(engine, payee.upper().replace("0X", "0x"), "hour", top=3)
    names = [x["charger_id"] for x in out["series"]]
    assert names == ["CP-09", "CP-10", "CP-11", "9 other chargers"]
    assert out["series"][-1]["others"] == 9 and "others" not in out["series"][0]
    assert out["buckets"] == [MONDAY, MONDAY + HOUR_MS] and out["sessions"] == 24
    net = {c: a - n for n, (c, a) in enumerate(paid.items())}
    for b in range(2):  # every unit is in exactly one series, bucket by bucket
        assert sum(int(x["amounts"][b]) for x in out["series"]) == sum(net.values())
    assert out["series"][2]["amounts"] == [str(net["CP-11"])] * 2
    assert int(out["totals"]["EUSD"]) == 2 * sum(net.values())
    everyone = earnings_series(engine, payee, "hour", top=50)
    assert len(everyone["series"]) == 12 and all("others" not in x for x in everyone["series"])
