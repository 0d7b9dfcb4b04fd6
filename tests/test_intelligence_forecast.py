"""Utilization forecast: hourly utilization from sessions, the features a forecast sees, the
seasonal naive baseline, the simulated history, and a small backtest the model must win."""

from __future__ import annotations

import numpy as np
import pytest

from electra.errors import InvalidInput
from electra.intelligence.forecast import (
    FEATURES,
    HORIZON_H,
    Fleet,
    UtilizationForecaster,
    backtest,
    feature_rows,
    fleet_of,
    hour_of_week,
    hourly_utilization,
    seasonal_naive,
    site_key,
)
from electra.intelligence.history import DEFAULT_START_MS, simulate_fleet, site_profile
from electra.intelligence.signals import HOUR_MS, WEEK_H, ChargerHistory, SessionOutcome

T0 = DEFAULT_START_MS  # a Monday, 00:00 UTC
MIN = 60_000


def s(start_min: int, stop_min: int, connector: int = 1) -> SessionOutcome:
    return SessionOutcome(connector, T0 + start_min * MIN, T0 + stop_min * MIN, energy_wh=1000)


def test_hourly_utilization_is_the_share_of_connector_time_occupied() -> None:
    # 00:30-02:15 on connector 1 and 01:00-01:30 on connector 2 of a two-connector charger
    u = hourly_utilization([s(30, 135), s(60, 90, 2)], connectors=2, start_ms=T0, hours=4)
    assert u.tolist() == [0.25, 0.75, 0.125, 0.0]
    # more overlap than connectors (retransmitted starts) never exceeds the charger's capacity
    full = hourly_utilization([s(0, 60), s(0, 60), s(0, 60)], connectors=2, start_ms=T0, hours=1)
    assert full.tolist() == [1.0]
    # a session that started before the series counts from its start
    assert hourly_utilization([s(-90, 30)], 1, T0, 2).tolist() == [0.5, 0.0]
    # hours before the charger's history are unknown, not idle
    late = hourly_utilization([s(150, 160)], 1, T0, 3, known_from_ms=T0 + 2 * HOUR_MS)
    assert np.isnan(late[:2]).all() and late[2] == pytest.approx(10 / 60)
    with pytest.raises(InvalidInput):
        hourly_utilization([], 1, T0 + 1, 3)
    with pytest.raises(InvalidInput):
        hourly_utilization([], 0, T0, 3)


def test_hour_of_week_counts_from_monday_midnight_utc() -> None:
    assert hour_of_week(T0) == 0
    assert hour_of_week(T0 + 26 * HOUR_MS + 59 * MIN) == 26  # Tuesday 02:59
    assert hour_of_week(T0 + WEEK_H * HOUR_MS) == 0


def _fleet(series: list[np.ndarray], sites: list[str]) -> Fleet:
    return Fleet(
        tuple(f"CP-{i}" for i in range(len(series))),
        tuple(sites),
        np.array([2.0] * len(series)),
        T0,
        np.vstack(series),
    )


def test_features_are_lags_levels_trend_and_site_seen_from_the_origin() -> None:
    hours = 5 * WEEK_H
    t = np.arange(hours)
    a = (t % 100) / 100.0  # a series whose every hour is distinct
    b = np.full(hours, 0.5)
    c = np.full(hours, 0.9)
    fleet = _fleet([a, b, c], ["site-1", "site-1", "site-2"])
    origin = 4 * WEEK_H + 10
    x, y = feature_rows(fleet, [origin])
    assert x.shape == (3 * HORIZON_H, len(FEATURES)) and y.shape == (3 * HORIZON_H,)
    col = {name: x[:, i] for i, name in enumerate(FEATURES)}
    row = 4  # charger a, horizon 5: target hour origin + 4
    target = origin + 4
    assert y[row] == a[target]
    assert col["horizon_h"][row] == 5
    assert col["hour_of_week"][row] == target % WEEK_H
    assert col["hour_of_day"][row] == target % 24 and col["day_of_week"][row] == (target % WEEK_H) // 24
    assert col["lag_1w"][row] == a[target - WEEK_H]
    assert col["lag_4w"][row] == a[target - 4 * WEEK_H]
    assert col["seasonal_mean"][row] == pytest.approx(np.mean([a[target - w * WEEK_H] for w in (1, 2, 3, 4)]))
    assert col["lag_1d"][row] == a[target - 24]
    # level and trend use only hours before the origin, whatever the horizon
    assert col["last_hour"][row] == col["last_hour"][0] == a[origin - 1]
    assert col["mean_24h"][row] == pytest.approx(a[origin - 24 : origin].mean())
    assert col["mean_168h"][row] == pytest.approx(a[origin - WEEK_H : origin].mean())
    trend = a[origin - WEEK_H : origin].mean() - a[origin - 2 * WEEK_H : origin - WEEK_H].mean()
    assert col["trend_168h"][row] == pytest.approx(trend)
    # the site is the mean of its chargers: a and b share one, c is alone
    assert col["site_lag_1w"][row] == pytest.approx((a[target - WEEK_H] + 0.5) / 2)
    assert col["site_lag_1w"][2 * HORIZON_H + 4] == pytest.approx(0.9)
    assert col["connectors"][row] == 2


def test_lags_before_the_series_are_unknown_and_unknown_targets_are_nan() -> None:
    hours = WEEK_H + 48
    fleet = _fleet([np.full(hours, 0.2)], ["s"])
    x, y = feature_rows(fleet, [30, hours - 10])
    col = {name: x[:, i] for i, name in enumerate(FEATURES)}
    assert np.isnan(col["lag_1w"][:HORIZON_H]).all()  # origin 30: a week back is before the start
    assert col["lag_1w"][HORIZON_H] == pytest.approx(0.2)
    assert np.isnan(y[HORIZON_H + 10 :]).all() and not np.isnan(y[:HORIZON_H]).any()


def test_seasonal_naive_is_the_same_hour_last_week() -> None:
    hours = 3 * WEEK_H
    a = np.arange(hours) / hours
    fleet = _fleet([a], ["s"])
    origin = 2 * WEEK_H + 5
    assert seasonal_naive(fleet, origin)[0].tolist() == a[origin - WEEK_H : origin - WEEK_H + HORIZON_H].tolist()


def test_fleet_of_marks_hours_before_a_chargers_first_session_unknown() -> None:
    early = ChargerHistory("CP-A", "s", 1, (s(10, 70),))
    late = ChargerHistory("CP-B", "s", 1, (s(5 * 60 + 10, 5 * 60 + 40),))
    never = ChargerHistory("CP-C", "s", 1, ())
    fleet = fleet_of([early, late, never], T0, 8, known_from_first_session=True)
    assert fleet.utilization[0, 0] == pytest.approx(50 / 60)
    assert np.isnan(fleet.utilization[1, :5]).all() and fleet.utilization[1, 5] == pytest.approx(0.5)
    assert np.isnan(fleet.utilization[2]).all()
    site = fleet.site_utilization()
    assert site[1, 0] == pytest.approx(50 / 60)  # the site's mean skips chargers not known yet
    assert fleet.index_of("CP-B") == 1
    with pytest.raises(InvalidInput):
        fleet.index_of("CP-Z")


def test_simulated_history_is_seeded_and_follows_its_site_profiles() -> None:
    one = simulate_fleet(7, sites=4, chargers_per_site=2, weeks=3)
    again = simulate_fleet(7, sites=4, chargers_per_site=2, weeks=3)
    other = simulate_fleet(8, sites=4, chargers_per_site=2, weeks=3)
    assert one == again and one != other
    assert [c.kind for c in one.chargers[::2]] == ["commuter", "retail", "residential", "highway"]
    commuter = site_profile("commuter")
    assert commuter[9] > 5 * commuter[5 * 24 + 9]  # Monday 09:00 against Saturday 09:00
    residential = site_profile("residential")
    assert residential[20] > residential[10]
    for c in one.chargers:
        starts = [x.started_at_ms for x in c.history.sessions]
        assert starts == sorted(starts) and all(one.start_ms <= t < one.end_ms for t in starts)
        if c.failure is not None:
            f = c.failure
            assert f.degrade_from_ms < f.failed_at_ms < f.repaired_at_ms
            assert not any(f.failed_at_ms <= t < f.repaired_at_ms for t in starts)  # nobody charges
    with pytest.raises(InvalidInput):
        site_profile("moon-base")
    with pytest.raises(InvalidInput):
        simulate_fleet(1, sites=0)


def test_model_beats_the_seasonal_naive_baseline_on_a_small_fleet() -> None:
    history = simulate_fleet(11, sites=4, chargers_per_site=3, weeks=6)
    fleet = fleet_of(history.histories(), history.start_ms, history.hours, known_from_first_session=False)
    result = backtest(fleet, eval_days=7)
    assert result.origins == 7 and result.rows == 7 * 12 * HORIZON_H
    assert result.mae_model.shape == (HORIZON_H,)
    assert result.model < result.naive
    assert result.improvement > 0.05


def test_forecaster_refuses_too_little_history_and_an_untrained_predict() -> None:
    history = simulate_fleet(3, sites=1, chargers_per_site=1, weeks=1)
    fleet = fleet_of(history.histories(), history.start_ms, history.hours, known_from_first_session=False)
    with pytest.raises(InvalidInput, match="too little history"):
        UtilizationForecaster().fit(fleet)
    with pytest.raises(InvalidInput, match="not trained"):
        UtilizationForecaster().predict(fleet, 10)
    with pytest.raises(InvalidInput):
        backtest(fleet, eval_days=7)


def test_site_key_groups_chargers_within_about_a_hundred_metres() -> None:
    assert site_key(52_520_008, 13_404_954) == site_key(52_520_900, 13_404_100)
    assert site_key(52_520_008, 13_404_954) != site_key(52_521_008, 13_404_954)
