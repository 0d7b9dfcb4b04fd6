"""Site load sharing (electra.domain.allocation): limits never exceeded, ceilings and floors kept,
max-min fairness, and the conservative pause when not everyone can charge."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from electra.domain.allocation import Demand, share
from electra.errors import InvalidInput

PHASES = ("L1", "L2", "L3")


def test_a_power_budget_is_shared_equally_up_to_each_ceiling() -> None:
    d = [Demand("a", 11_000), Demand("b", 3_700), Demand("c", 22_000)]
    assert share({"P": 20_000}, d) == {"a": 8_150, "b": 3_700, "c": 8_150}
    assert share({"P": 100_000}, d) == {"a": 11_000, "b": 3_700, "c": 22_000}


def test_phases_single_phase_sessions_leave_room_on_the_others() -> None:
    d = [Demand("three", 32, 6, PHASES), Demand("one", 32, 6, ("L1",), arrived_ms=1)]
    assert share({"L1": 32, "L2": 32, "L3": 32}, d) == {"three": 16, "one": 16}
    d.append(Demand("other", 16, 6, ("L2",), arrived_ms=2))
    assert share({"L1": 32, "L2": 32, "L3": 32}, d) == {"three": 16, "one": 16, "other": 16}


def test_when_not_all_can_charge_the_latest_arrival_pauses() -> None:
    d = [Demand(k, 32, 6, PHASES, arrived_ms=i) for i, k in enumerate("abc")]
    assert share({"L1": 16, "L2": 16, "L3": 16}, d) == {"a": 8, "b": 8, "c": 0}
    assert share({"L1": 5, "L2": 16, "L3": 16}, d) == {"a": 0, "b": 0, "c": 0}


def test_bad_demands_are_refused() -> None:
    with pytest.raises(InvalidInput):
        share({"P": 10}, [Demand("a", 5, uses=("L1",))])
    with pytest.raises(InvalidInput):
        Demand("a", -1)
    with pytest.raises(InvalidInput):
        share({"P": -1}, [])


demands = st.lists(
    st.builds(
        Demand,
        key=st.uuids().map(str),
        ceiling=st.integers(0, 80),
        floor=st.sampled_from([0, 0, 6]),
        uses=st.sampled_from([PHASES, ("L1",), ("L2",), ("L3",), ("L1", "L2")]),
        arrived_ms=st.integers(0, 10**6),
    ),
    max_size=14,
    unique_by=lambda d: d.key,
)
limits = st.fixed_dictionaries({p: st.integers(0, 200) for p in PHASES})


@settings(max_examples=300, deadline=None)
@given(limits, demands)
def test_invariants(lim: dict[str, int], ds: list[Demand]) -> None:
    rates = share(lim, ds)
    assert set(rates) == {d.key for d in ds}
    for p in PHASES:  # the site limit is never exceeded
        assert sum(rates[d.key] for d in ds if p in d.uses) <= lim[p]
    for d in ds:  # each within its own bounds: paused, or between floor and ceiling
        assert rates[d.key] == 0 or d.floor <= rates[d.key] <= d.ceiling
    charging = [d for d in ds if rates[d.key] > 0]

    def used(p: str) -> int:
        return sum(rates[d.key] for d in charging if p in d.uses)

    for d in charging:
        if rates[d.key] < d.ceiling:
            # Max-min fair: it has a bottleneck, a resource that is full (to within a unit per
            # session on it) on which no other session gets more than a unit above it.
            def bottleneck(p: str, d: Demand = d) -> bool:
                on = [e for e in charging if p in e.uses]
                return lim[p] - used(p) < len(on) and all(rates[e.key] <= rates[d.key] + 1 for e in on)

            assert any(bottleneck(p) for p in d.uses), (d, rates)


@given(limits, demands)
def test_the_result_does_not_depend_on_the_order_given(lim: dict[str, int], ds: list[Demand]) -> None:
    assert share(lim, ds) == share(lim, list(reversed(ds)))
