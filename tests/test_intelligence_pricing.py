"""Dynamic pricing: the multiplier rule, the governed bounds, the DAO's tariff ceilings, the quote's
reasons, and where the bounds come from (pure; the on-chain read through an in-memory twin)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from electra.domain.tariff import Tariff, TariffBounds
from electra.errors import ElectraError, InvalidInput
from electra.intelligence.pricing import (
    BPS,
    DEFAULT_MULTIPLIER_BOUNDS,
    MAX_CAP_BPS,
    Forecast,
    MultiplierBounds,
    PriceQuote,
    PricingPolicy,
    permille,
    quote,
)
from electra.intelligence.service import governed_multiplier_bounds, published_multiplier_bounds
from electra.intelligence.signals import HOUR_MS

T0 = 1_767_571_200_000  # 2026-01-05 00:00 UTC
BASE = Tariff("EUSD", energy_price_per_wh=400, time_price_per_hour=1_000_000, idle_price_per_hour=5_000, session_fee=7)


def flat(u: int, method: str = "model") -> Forecast:
    return Forecast(method, T0, (u,) * 24)


def test_busy_hour_costs_more_and_quiet_hour_less_within_default_bounds() -> None:
    busy = quote("CP-1", BASE, flat(600), T0 + 10 * 60_000)
    assert busy.raw_multiplier_bps == BPS + 10 * (600 - 400) == 12_000
    assert busy.multiplier_bps == 12_000
    assert busy.price.energy_price_per_wh == 480 and busy.price.time_price_per_hour == 1_200_000
    # idle fee and session fee price behaviour, not demand
    assert (busy.price.idle_price_per_hour, busy.price.session_fee) == (5_000, 7)
    quiet = quote("CP-1", BASE, flat(300), T0)
    assert (quiet.multiplier_bps, quiet.price.energy_price_per_wh) == (9_000, 360)
    at_target = quote("CP-1", BASE, flat(400), T0)
    assert at_target.price == BASE


def test_multiplier_is_held_at_floor_and_cap_and_says_so() -> None:
    low = quote("CP-1", BASE, flat(0), T0)
    assert (low.raw_multiplier_bps, low.multiplier_bps) == (6_000, 8_000)
    assert low.price.energy_price_per_wh == 320
    assert any("floor 8000 bps" in w and "platform defaults" in w for w in low.why)
    high = quote("CP-1", BASE, flat(1000), T0)
    assert (high.raw_multiplier_bps, high.multiplier_bps) == (16_000, 15_000)
    assert high.price.energy_price_per_wh == 600
    assert any("cap 15000 bps" in w for w in high.why)
    governed = MultiplierBounds(9_500, 11_000, "chain")
    q = quote("CP-1", BASE, flat(1000), T0, bounds=governed)
    assert q.multiplier_bps == 11_000 and any("set by the DAO" in w for w in q.why)


def test_the_daos_tariff_ceiling_still_holds() -> None:
    ceiling = TariffBounds(450, 1_100_000, 10**9, 10**9)
    q = quote("CP-1", BASE, flat(1000), T0, ceiling=ceiling)
    assert q.multiplier_bps == 15_000
    assert (q.price.energy_price_per_wh, q.price.time_price_per_hour) == (450, 1_100_000)
    assert q.capped_by_ceiling == ("energy_price_per_wh", "time_price_per_hour")
    assert any("tariff ceiling" in w for w in q.why)


def test_without_a_forecast_the_base_tariff_applies() -> None:
    q = quote("CP-1", BASE, Forecast("none", T0), T0 + 5 * HOUR_MS)
    assert (q.forecast_permille, q.raw_multiplier_bps, q.multiplier_bps) == (None, BPS, BPS)
    assert q.price == BASE and "no forecast" in q.why[0]
    beyond = quote("CP-1", BASE, flat(900), T0 + 30 * HOUR_MS)  # past the forecast's 24 hours
    assert beyond.multiplier_bps == BPS


def test_quote_covers_the_hour_and_reads_back_as_stored() -> None:
    f = Forecast("model", T0, (*range(100, 1020, 40), 0))
    q = quote("CP-1", BASE, f, T0 + 3 * HOUR_MS + 59 * 60_000, ceiling=TariffBounds(2_000, 10**8, 10**8, 10**8))
    assert (q.valid_from_ms, q.valid_until_ms) == (T0 + 3 * HOUR_MS, T0 + 4 * HOUR_MS)
    assert q.forecast_permille == 220
    body = q.to_json()
    assert body["forecast"]["next_24h_permille"] == list(f.utilization_permille)
    assert body["bounds"] == {
        "floor_bps": 8_000,
        "cap_bps": 15_000,
        "source": "default",
        "tariff_ceiling": {
            "max_energy_price_per_wh": "2000",
            "max_time_price_per_hour": "100000000",
            "max_idle_price_per_hour": "100000000",
            "max_session_fee": "100000000",
        },
        "capped_by_ceiling": [],
    }
    assert PriceQuote.from_json(body) == q


@given(
    u=st.integers(0, 1000),
    price=st.integers(0, 10**24),
    per_hour=st.integers(0, 10**24),
    floor=st.integers(1, BPS),
    cap=st.integers(BPS, MAX_CAP_BPS),
    target=st.integers(0, 1000),
    slope=st.integers(0, 100),
    ceiling=st.one_of(st.none(), st.integers(0, 10**24)),
)
def test_price_always_within_bounds_and_ceiling(
    u: int, price: int, per_hour: int, floor: int, cap: int, target: int, slope: int, ceiling: int | None
) -> None:
    base = Tariff("ELC", price, per_hour)
    bounds = MultiplierBounds(floor, cap)
    tb = None if ceiling is None else TariffBounds(ceiling, ceiling, 0, 0)
    q = quote("CP-1", base, flat(u), T0, bounds, PricingPolicy(target, slope), tb)
    assert floor <= q.multiplier_bps <= cap
    for got, was in ((q.price.energy_price_per_wh, price), (q.price.time_price_per_hour, per_hour)):
        assert isinstance(got, int)
        assert got <= was * cap // BPS
        assert got >= min(was * floor // BPS, ceiling if ceiling is not None else got)
        if ceiling is not None:
            assert got <= ceiling
    # busier never costs less
    busier = quote("CP-1", base, flat(min(1000, u + 1)), T0, bounds, PricingPolicy(target, slope), tb)
    assert busier.price.energy_price_per_wh >= q.price.energy_price_per_wh


@pytest.mark.parametrize(
    ("floor", "cap"),
    [(0, 12_000), (10_001, 12_000), (8_000, 9_999), (8_000, MAX_CAP_BPS + 1), (-1, 10_000)],
)
def test_bounds_that_cannot_reach_the_base_price_are_refused(floor: int, cap: int) -> None:
    with pytest.raises(InvalidInput, match="multiplier bounds"):
        MultiplierBounds(floor, cap)


def test_bad_inputs_are_electra_errors() -> None:
    with pytest.raises(InvalidInput):
        MultiplierBounds(8_000.0, 12_000)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        PricingPolicy(target_permille=1001)
    with pytest.raises(InvalidInput):
        Forecast("model", T0 + 1, ())
    with pytest.raises(InvalidInput):
        Forecast("model", T0, (1001,))
    with pytest.raises(InvalidInput):
        Forecast("guess", T0, ())
    with pytest.raises(ElectraError):
        permille(float("nan"))
    assert (permille(0.1234), permille(-0.2), permille(1.7)) == (123, 0, 1000)


class _Fn:
    def __init__(self, value: tuple[int, int]) -> None:
        self.value = value


class _Functions:
    def __init__(self, value: tuple[int, int]) -> None:
        self.value = value

    def dynamicPricingBounds(self) -> _Fn:
        return _Fn(self.value)


class _Contract:
    def __init__(self, has_getter: bool, value: tuple[int, int]) -> None:
        self.abi = [{"type": "function", "name": "tariffBounds"}]
        if has_getter:
            self.abi.append({"type": "function", "name": "dynamicPricingBounds"})
        self.functions = _Functions(value)


class _Client:
    def call(self, fn: Any) -> tuple[int, int]:
        return fn.value


class _Hub:
    """PaymentHub's in-memory twin: the ABI and one getter."""

    def __init__(self, has_getter: bool, value: tuple[int, int] = (0, 0)) -> None:
        self.contract = _Contract(has_getter, value)
        self.client = _Client()


def test_multiplier_bounds_come_from_paymenthub_once_the_dao_publishes_them() -> None:
    assert published_multiplier_bounds(_Hub(has_getter=False)) is None  # today's contract
    assert published_multiplier_bounds(_Hub(has_getter=True)) is None  # there, not set yet
    assert published_multiplier_bounds(_Hub(True, (9_000, 12_500))) == MultiplierBounds(9_000, 12_500, "chain")
    with pytest.raises(InvalidInput):
        published_multiplier_bounds(_Hub(True, (12_000, 11_000)))  # nonsense on-chain is refused, not used
    assert governed_multiplier_bounds(lambda: None)() == DEFAULT_MULTIPLIER_BOUNDS
    published = MultiplierBounds(9_000, 12_500, "chain")
    assert governed_multiplier_bounds(lambda: published)() is published
