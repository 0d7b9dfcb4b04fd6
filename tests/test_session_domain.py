"""The session state machine: order, idempotency, backwards meters, stops. Property-based."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from electra.domain.session import (
    ChargingSession,
    Flag,
    MeterReading,
    Outcome,
    Sampled,
    SessionStatus,
    Started,
    Stopped,
)
from electra.errors import InvalidInput

T0 = 1_790_000_000_000


def new(meter_start: int = 1_000) -> ChargingSession:
    return ChargingSession.start("tx-1", "CP-1", 1, Started(T0, meter_start, "TOKEN"))


@st.composite
def monotone_series(draw: st.DrawFn) -> tuple[int, list[MeterReading], int, int]:
    """A start register, increasing readings at distinct times, and a stop after them."""
    start = draw(st.integers(1, 10**9))
    steps = draw(st.lists(st.tuples(st.integers(1, 60_000), st.integers(0, 50_000)), min_size=0, max_size=30))
    t, reg, out = T0, start, []
    for dt, de in steps:
        t, reg = t + dt, reg + de
        out.append(MeterReading(t, reg))
    stop_dt, stop_de = draw(st.integers(2, 60_000)), draw(st.integers(0, 50_000))
    return start, out, t + stop_dt, reg + stop_de


@given(monotone_series(), st.randoms(use_true_random=False), st.integers(0, 3))
def test_any_arrival_order_and_retransmissions_give_the_same_bill(
    series: tuple[int, list[MeterReading], int, int], rnd, dup_factor: int
) -> None:
    start, readings, stop_t, stop_reg = series
    events = [Sampled(r) for r in readings] * (1 + dup_factor)
    rnd.shuffle(events)
    s = new(start)
    for e in events:
        s = s.apply(e).session
    s = s.apply(Stopped(stop_t, stop_reg)).session
    assert s.status is SessionStatus.COMPLETED
    assert s.flags == frozenset()
    assert s.billable_energy_wh == stop_reg - start
    assert [r.timestamp_ms for r in s.readings] == sorted({T0, *[r.timestamp_ms for r in readings], stop_t})
    assert s.apply(Stopped(stop_t, stop_reg)).outcome is Outcome.DUPLICATE


@given(monotone_series(), st.data())
def test_a_meter_running_backwards_is_flagged_not_billed(
    series: tuple[int, list[MeterReading], int, int], data: st.DataObject
) -> None:
    start, readings, stop_t, stop_reg = series
    s = new(start)
    for r in readings:
        s = s.apply(Sampled(r)).session
    # One reading, somewhere inside the session, below a register seen earlier in time.
    t = data.draw(st.integers(T0 + 1, stop_t - 1))
    earlier = max([start] + [r.register_wh for r in readings if r.timestamp_ms < t])  # >= start >= 1
    bad = MeterReading(t, data.draw(st.integers(0, earlier - 1)))
    assert s.apply(Sampled(bad)).outcome is Outcome.APPLIED
    s = s.apply(Sampled(bad)).session
    s = s.apply(Stopped(stop_t, max(stop_reg, earlier))).session
    assert Flag.METER_BACKWARDS in s.flags
    assert s.billable_energy_wh is None


def test_duplicate_and_conflicting_readings() -> None:
    s = new()
    r = MeterReading(T0 + 1000, 1_500)
    a = s.apply(Sampled(r))
    assert a.outcome is Outcome.APPLIED
    assert a.session.apply(Sampled(r)).outcome is Outcome.DUPLICATE
    c = a.session.apply(Sampled(MeterReading(T0 + 1000, 1_600)))
    assert c.outcome is Outcome.APPLIED
    assert Flag.CONFLICTING_READING in c.session.flags


def test_readings_outside_the_session_are_rejected() -> None:
    s = new()
    assert s.apply(Sampled(MeterReading(T0 - 1, 900))).outcome is Outcome.REJECTED
    done = s.apply(Stopped(T0 + 10_000, 2_000)).session
    late = done.apply(Sampled(MeterReading(T0 + 20_000, 2_100)))
    assert late.outcome is Outcome.REJECTED and late.session == done
    # A reading from before the stop that arrives late (offline replay) is still taken in order.
    replayed = done.apply(Sampled(MeterReading(T0 + 5_000, 1_400)))
    assert replayed.outcome is Outcome.APPLIED
    assert replayed.session.billable_energy_wh == 1_000


def test_conflicting_second_stop_flags_the_session() -> None:
    done = new().apply(Stopped(T0 + 10_000, 2_000)).session
    assert done.billable_energy_wh == 1_000
    r = done.apply(Stopped(T0 + 11_000, 2_500))
    assert r.outcome is Outcome.REJECTED
    assert Flag.CONFLICTING_STOP in r.session.flags
    assert r.session.billable_energy_wh is None
    assert r.session.meter_stop_wh == 2_000


def test_stop_before_known_readings_is_rejected() -> None:
    s = new().apply(Sampled(MeterReading(T0 + 5_000, 1_200))).session
    assert s.apply(Stopped(T0 + 4_000, 1_100)).outcome is Outcome.REJECTED
    assert s.apply(Stopped(T0 - 1, 1_100)).outcome is Outcome.REJECTED


def test_stop_below_start_is_backwards() -> None:
    s = new(5_000).apply(Stopped(T0 + 1_000, 4_000)).session
    assert Flag.METER_BACKWARDS in s.flags
    assert s.energy_wh == -1_000
    assert s.billable_energy_wh is None


def test_active_session_is_not_billable_and_input_is_checked() -> None:
    s = new().apply(Sampled(MeterReading(T0 + 1, 1_100))).session
    assert s.energy_wh == 100
    assert s.billable_energy_wh is None
    with pytest.raises(InvalidInput):
        MeterReading(T0, -1)
    with pytest.raises(InvalidInput):
        ChargingSession.start("", "CP-1", 1, Started(T0, 0, "T"))
    with pytest.raises(InvalidInput):
        ChargingSession.start("tx", "CP-1", 1, Started(T0, -5, "T"))


@given(
    st.lists(st.tuples(st.integers(0, 20), st.integers(0, 40)), max_size=25),
    st.randoms(use_true_random=False),
)
def test_readings_stay_sorted_and_flags_follow_them_in_any_order(pairs: list[tuple[int, int]], rnd) -> None:
    """Against a model computed from scratch: any readings (repeats, inversions, shared instants),
    in any order, leave the sorted distinct readings, flagged backwards iff they are not monotone
    and conflicting iff two share an instant."""
    readings = [MeterReading(T0 + 1_000 * t, wh) for t, wh in pairs]
    events = [Sampled(r) for r in readings] * 2
    rnd.shuffle(events)
    s = new(20)
    for e in events:
        s = s.apply(e).session
    expected = sorted({MeterReading(T0, 20), *readings}, key=lambda r: (r.timestamp_ms, r.register_wh))
    assert list(s.readings) == expected
    backwards = any(a.register_wh > b.register_wh for a, b in itertools.pairwise(expected))
    conflicting = len({r.timestamp_ms for r in expected}) < len(expected)
    assert (Flag.METER_BACKWARDS in s.flags) == backwards
    assert (Flag.CONFLICTING_READING in s.flags) == conflicting
