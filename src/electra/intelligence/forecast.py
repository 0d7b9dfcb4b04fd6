"""Each charger's hourly utilization over the next 24 hours, from its session history.

Utilization of an hour is the share of the charger's connector-time that sessions occupied in it
(0..1). Hours before a charger's history begins are unknown (NaN), not idle.

The model is one scikit-learn ``HistGradientBoostingRegressor`` for all chargers and horizons
(direct multi-horizon: the horizon is a feature, so no forecast feeds on another). For a target
hour ``t`` forecast at origin ``o`` (hours before ``o`` are known, ``t = o + h - 1``, h = 1..24) it
sees:

* the calendar of ``t``: hour of week, hour of day, day of week (UTC);
* the charger's own seasonal lags: the same hour 1, 2, 3 and 4 weeks before, their mean, and the
  same hour the day before;
* its recent level and trend: the last hour, the means of the last 24 h and 168 h, the change of
  the last week's mean from the week before, and the last 24 h against the same 24 h a week ago;
* its site (the chargers that share a location): the same seasonal lag, seasonal mean and recent
  shift of the site's mean utilization;
* its number of connectors and the horizon.

The seasonal naive baseline forecasts the same hour one week before. :func:`backtest` compares
the two over rolling origins (docs/intelligence.md). No I/O here: series come in as arrays.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from electra.errors import InvalidInput
from electra.intelligence.signals import HOUR_MS, WEEK_H, ChargerHistory, SessionOutcome

HORIZON_H = 24
SEASONAL_LAGS = (1, 2, 3, 4)  # weeks
MIN_TRAIN_H = 2 * WEEK_H + HORIZON_H  # a training origin needs a week of lags and a day of targets
FEATURES = (
    "hour_of_week",
    "hour_of_day",
    "day_of_week",
    "horizon_h",
    "connectors",
    "lag_1w",
    "lag_2w",
    "lag_3w",
    "lag_4w",
    "seasonal_mean",
    "lag_1d",
    "last_hour",
    "mean_24h",
    "mean_168h",
    "trend_168h",
    "shift_24h_vs_1w",
    "site_lag_1w",
    "site_seasonal_mean",
    "site_shift_24h_vs_1w",
)


def hour_floor_ms(at_ms: int) -> int:
    return at_ms - at_ms % HOUR_MS


def hour_of_week(at_ms: int) -> int:
    """0 = Monday 00:00-01:00 UTC."""
    t = dt.datetime.fromtimestamp(at_ms / 1000, dt.UTC)
    return t.weekday() * 24 + t.hour


def hourly_utilization(
    sessions: Iterable[SessionOutcome], connectors: int, start_ms: int, hours: int, known_from_ms: int | None = None
) -> np.ndarray:
    """Share of connector-time occupied in each hour ``[start_ms + k h, start_ms + (k+1) h)``.

    Overlapping sessions on one connector count once per connector at most (the sum is capped at
    the charger's capacity). Hours that end before ``known_from_ms`` are NaN (no history yet).
    """
    if connectors < 1 or hours < 0:
        raise InvalidInput(f"{connectors} connectors, {hours} hours", "a charger has at least one connector")
    if start_ms % HOUR_MS:
        raise InvalidInput(f"series start {start_ms} is not on an hour", "floor it with hour_floor_ms")
    busy_ms = np.zeros(hours, dtype=np.int64)
    end_ms = start_ms + hours * HOUR_MS
    for s in sessions:
        a, b = max(s.started_at_ms, start_ms), min(s.stopped_at_ms, end_ms)
        if b <= a:
            continue
        first, last = (a - start_ms) // HOUR_MS, (b - 1 - start_ms) // HOUR_MS
        for k in range(first, last + 1):
            lo, hi = start_ms + k * HOUR_MS, start_ms + (k + 1) * HOUR_MS
            busy_ms[k] += min(b, hi) - max(a, lo)
    u = np.minimum(busy_ms / (HOUR_MS * connectors), 1.0)
    if known_from_ms is not None and known_from_ms > start_ms:
        unknown = min(hours, (known_from_ms - start_ms) // HOUR_MS)
        u[:unknown] = np.nan
    return u


@dataclass(frozen=True)
class Fleet:
    """Aligned hourly utilization of chargers: ``utilization[i, k]`` is charger i's hour
    ``start_ms + k h``."""

    charger_ids: tuple[str, ...]
    sites: tuple[str, ...]
    connectors: np.ndarray  # (n,)
    start_ms: int
    utilization: np.ndarray  # (n, hours)

    @property
    def hours(self) -> int:
        return int(self.utilization.shape[1])

    def index_of(self, charger_id: str) -> int:
        try:
            return self.charger_ids.index(charger_id)
        except ValueError as exc:
            raise InvalidInput(f"no history of charger {charger_id}", "it has no sessions in the store yet") from exc

    def site_utilization(self) -> np.ndarray:
        """Each charger's site's mean utilization per hour (n, hours), over the chargers known then."""
        out = np.empty_like(self.utilization)
        for site in set(self.sites):
            rows = [i for i, s in enumerate(self.sites) if s == site]
            block = self.utilization[rows]
            known = ~np.isnan(block)
            counts = known.sum(axis=0)
            mean = np.where(counts > 0, np.nansum(block, axis=0) / np.maximum(counts, 1), np.nan)
            out[rows] = mean
        return out


def fleet_of(histories: Sequence[ChargerHistory], start_ms: int, hours: int, known_from_first_session: bool) -> Fleet:
    """The hourly utilization of these chargers over ``hours`` hours from ``start_ms`` (floored to
    the hour). With ``known_from_first_session``, hours before a charger's first session are NaN
    (a store's charger that joined later); a simulated fleet is known from its start."""
    start_ms = hour_floor_ms(start_ms)
    rows = []
    for h in histories:
        first = min((s.started_at_ms for s in h.sessions), default=None)
        known = hour_floor_ms(first) if known_from_first_session and first is not None else None
        if known_from_first_session and first is None:
            known = start_ms + hours * HOUR_MS
        rows.append(hourly_utilization(h.sessions, h.connectors, start_ms, hours, known))
    return Fleet(
        tuple(h.charger_id for h in histories),
        tuple(h.site for h in histories),
        np.array([h.connectors for h in histories], dtype=np.float64),
        start_ms,
        np.vstack(rows) if rows else np.zeros((0, hours)),
    )


def _at(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``a[..., idx]`` with NaN where idx falls outside the series."""
    ok = (idx >= 0) & (idx < a.shape[-1])
    out = np.full(np.broadcast_shapes((*a.shape[:-1], 1), idx.shape), np.nan)
    safe = np.where(ok, idx, 0)
    vals = np.take_along_axis(a, np.broadcast_to(safe, out.shape), axis=-1)
    return np.where(ok, vals, np.nan)


def _window_mean(cum: np.ndarray, cnt: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Mean of known values in ``[lo, hi)`` per row, from prefix sums (index 0 = before the series)."""
    lo_c, hi_c = np.clip(lo, 0, cum.shape[-1] - 1), np.clip(hi, 0, cum.shape[-1] - 1)
    shape = np.broadcast_shapes((*cum.shape[:-1], 1), lo.shape)
    s = np.take_along_axis(cum, np.broadcast_to(hi_c, shape), -1) - np.take_along_axis(
        cum, np.broadcast_to(lo_c, shape), -1
    )
    n = np.take_along_axis(cnt, np.broadcast_to(hi_c, shape), -1) - np.take_along_axis(
        cnt, np.broadcast_to(lo_c, shape), -1
    )
    return np.where(n > 0, s / np.maximum(n, 1), np.nan)


def _prefix(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    known = ~np.isnan(a)
    zeros = np.zeros((*a.shape[:-1], 1))
    cum = np.concatenate([zeros, np.cumsum(np.where(known, a, 0.0), axis=-1)], axis=-1)
    cnt = np.concatenate([zeros, np.cumsum(known, axis=-1)], axis=-1)
    return cum, cnt


def feature_rows(fleet: Fleet, origins: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Features (rows = charger x origin x horizon, columns = :data:`FEATURES`) and targets (NaN
    where the target hour is unknown or beyond the series) for forecasts made at ``origins``
    (hour indexes: hours before each are known)."""
    n = len(fleet.charger_ids)
    o = np.asarray(origins, dtype=np.int64)
    if n == 0 or o.size == 0:
        return np.zeros((0, len(FEATURES))), np.zeros(0)
    y, site = fleet.utilization, fleet.site_utilization()
    h = np.arange(1, HORIZON_H + 1)
    # shapes: (n, len(o), HORIZON_H) flattened at the end; index arrays broadcast as (1, O, H)
    oo = np.broadcast_to(o[:, None], (o.size, HORIZON_H))[None]
    t = oo + h[None, None, :] - 1
    flat_t = t.reshape(1, -1)
    flat_o = oo.reshape(1, -1)

    def lag(a: np.ndarray, back: int) -> np.ndarray:
        return _at(a, flat_t - back)

    lags = [lag(y, WEEK_H * w) for w in SEASONAL_LAGS]
    with np.errstate(all="ignore"):
        seasonal = _nanmean(np.stack(lags))
        site_lags = [lag(site, WEEK_H * w) for w in SEASONAL_LAGS]
        site_seasonal = _nanmean(np.stack(site_lags))
    cum, cnt = _prefix(y)
    scum, scnt = _prefix(site)
    mean_24 = _window_mean(cum, cnt, flat_o - 24, flat_o)
    mean_168 = _window_mean(cum, cnt, flat_o - WEEK_H, flat_o)
    mean_prev = _window_mean(cum, cnt, flat_o - 2 * WEEK_H, flat_o - WEEK_H)
    mean_24_1w = _window_mean(cum, cnt, flat_o - 24 - WEEK_H, flat_o - WEEK_H)
    site_24 = _window_mean(scum, scnt, flat_o - 24, flat_o)
    site_24_1w = _window_mean(scum, scnt, flat_o - 24 - WEEK_H, flat_o - WEEK_H)

    how0 = hour_of_week(fleet.start_ms)
    how = np.broadcast_to((how0 + flat_t) % WEEK_H, (n, flat_t.shape[1])).astype(np.float64)
    cols = {
        "hour_of_week": how,
        "hour_of_day": how % 24,
        "day_of_week": how // 24,
        "horizon_h": np.broadcast_to(np.tile(h, o.size)[None], how.shape).astype(np.float64),
        "connectors": np.broadcast_to(fleet.connectors[:, None], how.shape),
        "lag_1w": lags[0],
        "lag_2w": lags[1],
        "lag_3w": lags[2],
        "lag_4w": lags[3],
        "seasonal_mean": seasonal,
        "lag_1d": lag(y, 24),
        "last_hour": _at(y, flat_o - 1),
        "mean_24h": mean_24,
        "mean_168h": mean_168,
        "trend_168h": mean_168 - mean_prev,
        "shift_24h_vs_1w": mean_24 - mean_24_1w,
        "site_lag_1w": site_lags[0],
        "site_seasonal_mean": site_seasonal,
        "site_shift_24h_vs_1w": site_24 - site_24_1w,
    }
    x = np.stack([np.broadcast_to(cols[f], how.shape).reshape(-1) for f in FEATURES], axis=1)
    target = _at(y, flat_t).reshape(-1)
    return x, target


def _nanmean(stack: np.ndarray) -> np.ndarray:
    known = ~np.isnan(stack)
    counts = known.sum(axis=0)
    return np.where(counts > 0, np.where(known, stack, 0.0).sum(axis=0) / np.maximum(counts, 1), np.nan)


def seasonal_naive(fleet: Fleet, origin: int) -> np.ndarray:
    """(n, 24): the same hour one week before each target hour."""
    t = origin + np.arange(HORIZON_H)[None, :]
    return _at(fleet.utilization, t - WEEK_H)


def training_origins(until: int, stride_h: int, first: int = WEEK_H) -> list[int]:
    """Origins whose whole 24-hour target lies before hour ``until``, newest first, every ``stride_h``."""
    last = until - HORIZON_H
    return list(range(last, first - 1, -stride_h))


@dataclass
class UtilizationForecaster:
    """The gradient-boosted utilization model. ``fit`` on a fleet's known hours, then ``predict``.

    It forecasts the mean (squared error). Absolute error would aim at the median, and most hours
    of most chargers are idle: on the simulated fleet it learned to forecast 0 everywhere, which
    says nothing a price could follow.
    """

    stride_h: int = 12
    max_iter: int = 200
    learning_rate: float = 0.06
    loss: str = "squared_error"
    seed: int = 0
    model: Any = None  # sklearn's HistGradientBoostingRegressor once fitted
    trained_rows: int = 0
    blank: np.ndarray | None = None  # features with no value at all in training (e.g. lag_4w on 3 weeks)

    def fit(self, fleet: Fleet, until: int | None = None) -> UtilizationForecaster:
        """Trains on the targets before hour ``until`` (default: the whole series)."""
        from sklearn.ensemble import HistGradientBoostingRegressor  # imported when needed: it takes a while

        until = fleet.hours if until is None else until
        x, y = feature_rows(fleet, training_origins(until, self.stride_h))
        keep = ~np.isnan(y) & ~np.isnan(x[:, FEATURES.index("lag_1w")])
        if keep.sum() < 100:
            raise InvalidInput(
                f"too little history to train the forecast ({int(keep.sum())} rows)",
                f"the model needs at least {MIN_TRAIN_H} hours of sessions; use the seasonal naive forecast",
            )
        x = x[keep]
        # sklearn cannot bin a column that is all NaN: such a feature carries nothing, so it is 0
        # in training and in every prediction of this model.
        self.blank = np.isnan(x).all(axis=0)
        x[:, self.blank] = 0.0
        self.model = HistGradientBoostingRegressor(
            loss=self.loss,
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=31,
            min_samples_leaf=40,
            l2_regularization=1.0,
            random_state=self.seed,
        ).fit(x, y[keep])
        self.trained_rows = int(keep.sum())
        return self

    def predict(self, fleet: Fleet, origin: int) -> np.ndarray:
        """(n, 24) utilization forecasts for the hours ``origin .. origin + 23``, within 0..1."""
        if self.model is None:
            raise InvalidInput("the forecast model is not trained", "call fit first")
        x, _ = feature_rows(fleet, [origin])
        if self.blank is not None:
            x[:, self.blank] = 0.0
        return np.asarray(np.clip(self.model.predict(x), 0.0, 1.0)).reshape(len(fleet.charger_ids), HORIZON_H)


@dataclass(frozen=True)
class Backtest:
    """MAE per horizon (1..24) of the model, the seasonal naive baseline, a 4-week seasonal mean
    and the all-idle forecast (0 everywhere: what most hours are)."""

    origins: int
    rows: int
    mae_model: np.ndarray
    mae_naive: np.ndarray
    mae_seasonal_mean: np.ndarray
    mae_zero: np.ndarray

    @property
    def model(self) -> float:
        return float(self.mae_model.mean())

    @property
    def naive(self) -> float:
        return float(self.mae_naive.mean())

    @property
    def improvement(self) -> float:
        """Share of the baseline's MAE the model removes (0.2 = 20 % lower)."""
        return 1.0 - self.model / self.naive


def backtest(
    fleet: Fleet,
    eval_days: int,
    retrain_every_days: int = 7,
    stride_h: int = 12,
    seed: int = 0,
    loss: str = "squared_error",
) -> Backtest:
    """Rolling-origin backtest: a day-ahead forecast at every midnight of the last ``eval_days`` days,
    each from a model trained only on targets before its origin (retrained every
    ``retrain_every_days``)."""
    last_origin = fleet.hours - HORIZON_H
    first_origin = last_origin - (eval_days - 1) * 24
    if first_origin < MIN_TRAIN_H:
        raise InvalidInput(
            f"{fleet.hours} hours of history leave no room for {eval_days} evaluation days",
            "simulate more weeks or evaluate fewer days",
        )
    errs_m: list[np.ndarray] = []
    errs_n: list[np.ndarray] = []
    errs_s: list[np.ndarray] = []
    errs_z: list[np.ndarray] = []
    model: UtilizationForecaster | None = None
    for k, origin in enumerate(range(first_origin, last_origin + 1, 24)):
        if model is None or k % retrain_every_days == 0:
            model = UtilizationForecaster(stride_h=stride_h, seed=seed, loss=loss).fit(fleet, until=origin)
        pred = model.predict(fleet, origin)
        truth = fleet.utilization[:, origin : origin + HORIZON_H]
        naive = seasonal_naive(fleet, origin)
        x, _ = feature_rows(fleet, [origin])
        smean = x[:, FEATURES.index("seasonal_mean")].reshape(pred.shape)
        ok = ~np.isnan(truth) & ~np.isnan(naive)
        errs_m.append(np.where(ok, np.abs(pred - truth), np.nan))
        errs_n.append(np.where(ok, np.abs(naive - truth), np.nan))
        errs_s.append(np.where(ok, np.abs(np.nan_to_num(smean) - truth), np.nan))
        errs_z.append(np.where(ok, np.abs(truth), np.nan))
    em, en, es, ez = (np.concatenate(e, axis=0) for e in (errs_m, errs_n, errs_s, errs_z))
    return Backtest(
        origins=len(errs_m),
        rows=int((~np.isnan(em)).sum()),
        mae_model=np.nanmean(em, axis=0),
        mae_naive=np.nanmean(en, axis=0),
        mae_seasonal_mean=np.nanmean(es, axis=0),
        mae_zero=np.nanmean(ez, axis=0),
    )


SITE_GRID_E6 = 1_000  # 0.001 degree: about 110 m north-south


def site_key(latitude_e6: int, longitude_e6: int) -> str:
    """The site of a charger at this position: chargers in the same cell of a 0.001-degree grid
    share one (a parking lot, a forecourt). Integer microdegrees, as StationRegistry keeps them."""
    return f"site:{latitude_e6 // SITE_GRID_E6}:{longitude_e6 // SITE_GRID_E6}"
