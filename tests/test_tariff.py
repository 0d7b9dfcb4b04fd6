"""Tariffs and session cost: integer arithmetic, bounds, usage taken from a session."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from electra.domain.session import ChargingSession, MeterReading, Sampled, Started, Stopped
from electra.domain.tariff import Tariff, TariffBounds, Usage
from electra.errors import InvalidInput

T0 = 1_790_000_000_000
MIN = 60_000


def _session(readings: list[tuple[int, int]], stop: tuple[int, int]) -> ChargingSession:
    s = ChargingSession.start("1", "CP-1", 1, Started(T0, readings[0][1], "TAG"))
    for t, wh in readings[1:]:
        s = s.apply(Sampled(MeterReading(T0 + t, wh))).session
    return s.apply(Stopped(T0 + stop[0], stop[1])).session


def test_cost_of_a_session_with_every_component() -> None:
    # 12 kWh over 60 minutes of charging, then 25 minutes plugged in doing nothing.
    s = _session([(0, 1_000), (30 * MIN, 7_000), (60 * MIN, 13_000), (70 * MIN, 13_000)], (85 * MIN, 13_000))
    tariff = Tariff("EUSD", energy_price_per_wh=350, time_price_per_hour=600_000, idle_price_per_hour=6_000_000,
                    idle_grace_s=15 * 60, session_fee=250_000)  # fmt: skip
    cost = tariff.cost(Usage.of(s))
    assert cost.energy_wh == 12_000
    assert cost.energy == 12_000 * 350  # 4.20 EUSD: 0.35 per kWh
    assert cost.charging_s == 3600 and cost.time == 600_000
    assert cost.idle_s == 10 * 60 and cost.idle == 1_000_000  # 25 min idle, 15 of them free
    assert cost.session_fee == 250_000
    assert cost.total == 4_200_000 + 600_000 + 1_000_000 + 250_000
    assert [name for name, _ in cost.lines()] == ["energy", "charging time", "idle fee", "session fee"]


def test_time_is_rounded_down_to_whole_seconds_and_base_units() -> None:
    tariff = Tariff("EUSD", energy_price_per_wh=0, time_price_per_hour=1_000)
    cost = tariff.cost(Usage(0, T0, T0 + 1_999, T0 + 1_999))  # 1.999 s: one whole second
    assert (cost.charging_s, cost.time) == (1, 0)  # 1000 per hour is 0.277 per second: rounds to 0
    cost = tariff.cost(Usage(0, T0, T0 + 3_600_000, T0 + 3_600_000))
    assert cost.time == 1_000


@given(
    energy=st.integers(0, 500_000),
    charging_s=st.integers(0, 86_400),
    idle_s=st.integers(0, 86_400),
    price=st.integers(0, 10**15),
    per_hour=st.integers(0, 10**18),
    grace=st.integers(0, 7_200),
    fee=st.integers(0, 10**18),
)
def test_cost_is_exact_monotone_and_bounded_by_the_worst_case(
    energy: int, charging_s: int, idle_s: int, price: int, per_hour: int, grace: int, fee: int
) -> None:
    tariff = Tariff("ELC", price, per_hour, per_hour, grace, fee)
    usage = Usage(energy, T0, T0 + charging_s * 1000, T0 + (charging_s + idle_s) * 1000)
    cost = tariff.cost(usage)
    assert cost.energy == energy * price  # exact: no rounding on energy
    assert cost.total == cost.energy + cost.time + cost.idle + cost.session_fee
    assert cost.total <= tariff.worst_case(energy, charging_s + idle_s)
    more = tariff.cost(Usage(energy + 1, T0, T0 + charging_s * 1000, T0 + (charging_s + idle_s) * 1000))
    assert more.total >= cost.total


def test_bounds_name_the_price_that_is_too_high() -> None:
    bounds = TariffBounds(max_energy_price_per_wh=1_000, max_time_price_per_hour=10**6,
                          max_idle_price_per_hour=10**7, max_session_fee=10**6)  # fmt: skip
    assert Tariff("EUSD", 1_000, session_fee=10**6).check_within(bounds).energy_price_per_wh == 1_000
    with pytest.raises(InvalidInput, match="energy price per Wh 1001 is above the DAO's bound 1000"):
        Tariff("EUSD", 1_001).check_within(bounds)
    with pytest.raises(InvalidInput, match="session fee"):
        Tariff("EUSD", 1, session_fee=10**6 + 1).check_within(bounds)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"asset": "EUSD", "energy_price_per_wh": -1},
        {"asset": "EUSD", "energy_price_per_wh": 1.5},
        {"asset": "EUSD", "energy_price_per_wh": True},
        {"asset": "", "energy_price_per_wh": 1},
        {"asset": "E USD", "energy_price_per_wh": 1},
        {"asset": "EUSD", "energy_price_per_wh": 1, "idle_grace_s": -5},
    ],
)
def test_bad_tariffs_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        Tariff(**kwargs)  # type: ignore[arg-type]


def test_a_flagged_or_active_session_is_not_billed() -> None:
    active = ChargingSession.start("2", "CP-1", 1, Started(T0, 100, "TAG"))
    with pytest.raises(InvalidInput, match="not billable"):
        Usage.of(active)
    backwards = _session([(0, 5_000), (10 * MIN, 4_000)], (20 * MIN, 6_000))
    with pytest.raises(InvalidInput, match="meter_backwards"):
        Usage.of(backwards)


def test_usage_finds_when_charging_ended() -> None:
    s = _session([(0, 0), (10 * MIN, 2_000), (20 * MIN, 3_000), (40 * MIN, 3_000)], (50 * MIN, 3_000))
    usage = Usage.of(s)
    assert usage == Usage(3_000, T0, T0 + 20 * MIN, T0 + 50 * MIN)
    with pytest.raises(InvalidInput, match="out of order"):
        Usage(1, T0, T0 - 1, T0)
