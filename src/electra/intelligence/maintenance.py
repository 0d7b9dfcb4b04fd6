"""Predictive maintenance: each charger's risk of failing in the coming days, and its tickets.

Features (:func:`maintenance_features`, at one moment, from the charger's own history only):

* faults: StatusNotifications that report Faulted or an error code, over the last 1, 3 and 7 days,
  split by what the code says (hardware, meter, soft; see ``electra.intelligence.signals``), how
  many distinct codes, minutes spent Faulted, days since the last fault, and the last 3 days' rate
  against the rate of the 21 days before (a charger that was always noisy is not degrading);
* sessions: how many, how many failed (ended by the charger, a flagged meter, or no energy), the
  failed share against the charger's own earlier share, and meter anomalies.

The model is a scikit-learn ``HistGradientBoostingClassifier`` (balanced class weights: failures
are rare), trained on simulated chargers whose degradation before failure is known
(:mod:`electra.intelligence.history`); :data:`RISK_THRESHOLD_PERMILLE` is chosen on a validation
fleet and scored on another (docs/intelligence.md). A charger at or above it gets a ticket.

Tickets go open -> scheduled -> closed (or open -> closed: a false alarm, or fixed at once); a
closed ticket stays closed, and a charger has at most one ticket that is not closed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

import numpy as np

from electra.errors import InvalidInput
from electra.intelligence.history import FleetHistory, SimCharger
from electra.intelligence.signals import DAY_MS, HARDWARE_ERRORS, METER_ERRORS, ChargerHistory

HORIZON_DAYS = 3  # "fails in the coming days": within 3 days of the score
RISK_THRESHOLD_PERMILLE = 750  # best F1 on the validation fleet (bench/maintenance_eval.py)
FEATURES = (
    "faults_1d",
    "faults_3d",
    "faults_7d",
    "hardware_faults_3d",
    "hardware_faults_7d",
    "meter_faults_7d",
    "soft_faults_7d",
    "error_codes_7d",
    "faulted_minutes_7d",
    "days_since_fault",
    "fault_rate_3d_vs_21d",
    "sessions_7d",
    "failed_sessions_3d",
    "failed_sessions_7d",
    "failed_share_7d",
    "failed_share_7d_vs_21d",
    "meter_anomalies_7d",
)
DOWN = ("Faulted", "Unavailable")


class ChargerSignals:
    """A charger's history as sorted arrays, so features at many moments are cheap."""

    def __init__(self, history: ChargerHistory) -> None:
        self.history = history
        faults = [e for e in history.statuses if e.fault]
        self.fault_ms = np.array([e.at_ms for e in faults], dtype=np.int64)
        self.fault_kind = np.array(
            [2 if e.error_code in METER_ERRORS else 1 if e.error_code in HARDWARE_ERRORS else 0 for e in faults],
            dtype=np.int8,
        )
        self.fault_code = [e.error_code for e in faults]
        sessions = sorted(history.sessions, key=lambda s: s.started_at_ms)
        self.session_ms = np.array([s.started_at_ms for s in sessions], dtype=np.int64)
        self.session_failed = np.array([s.failed for s in sessions], dtype=bool)
        self.session_anomaly = np.array([s.meter_anomaly for s in sessions], dtype=bool)
        # Faulted intervals per connector: from a Faulted notification to the connector's next one.
        spans: list[tuple[int, int]] = []
        open_at: dict[int, int] = {}
        for e in sorted(history.statuses, key=lambda e: e.at_ms):
            started = open_at.pop(e.connector_id, None)
            if started is not None:
                spans.append((started, e.at_ms))
            if e.status == "Faulted":
                open_at[e.connector_id] = e.at_ms
        spans.extend((a, 2**62) for a in open_at.values())
        self.faulted_spans = sorted(spans)

    def _count(self, times: np.ndarray, lo: int, hi: int, mask: np.ndarray | None = None) -> int:
        a, b = np.searchsorted(times, lo, "left"), np.searchsorted(times, hi, "left")
        return int(b - a) if mask is None else int(mask[a:b].sum())

    def features_at(self, at_ms: int) -> np.ndarray:
        """:data:`FEATURES` from what was known before ``at_ms``."""
        d1, d3, d7, d28 = (at_ms - k * DAY_MS for k in (1, 3, 7, 28))
        f = self.fault_ms
        hw, meter, soft = self.fault_kind == 1, self.fault_kind == 2, self.fault_kind == 0
        faults_3d, faults_7d = self._count(f, d3, at_ms), self._count(f, d7, at_ms)
        faults_earlier = self._count(f, d28, d7)
        lo7, hi = int(np.searchsorted(f, d7, "left")), int(np.searchsorted(f, at_ms, "left"))
        last = int(f[hi - 1]) if hi > 0 else None
        s = self.session_ms
        sessions_7d = self._count(s, d7, at_ms)
        failed_7d = self._count(s, d7, at_ms, self.session_failed)
        sessions_earlier = self._count(s, d28, d7)
        failed_earlier = self._count(s, d28, d7, self.session_failed)
        share_7d = failed_7d / sessions_7d if sessions_7d else 0.0
        share_earlier = failed_earlier / sessions_earlier if sessions_earlier else 0.0
        row = {
            "faults_1d": self._count(f, d1, at_ms),
            "faults_3d": faults_3d,
            "faults_7d": faults_7d,
            "hardware_faults_3d": self._count(f, d3, at_ms, hw),
            "hardware_faults_7d": self._count(f, d7, at_ms, hw),
            "meter_faults_7d": self._count(f, d7, at_ms, meter),
            "soft_faults_7d": self._count(f, d7, at_ms, soft),
            "error_codes_7d": len(set(self.fault_code[lo7:hi])),
            "faulted_minutes_7d": self._faulted_ms(d7, at_ms) / 60_000,
            "days_since_fault": 28.0 if last is None else min(28.0, (at_ms - last) / DAY_MS),
            # rates per day; +0.1 so a charger quiet until now does not divide by zero
            "fault_rate_3d_vs_21d": (faults_3d / 3 + 0.1) / (faults_earlier / 21 + 0.1),
            "sessions_7d": sessions_7d,
            "failed_sessions_3d": self._count(s, d3, at_ms, self.session_failed),
            "failed_sessions_7d": failed_7d,
            "failed_share_7d": share_7d,
            "failed_share_7d_vs_21d": share_7d - share_earlier,
            "meter_anomalies_7d": self._count(s, d7, at_ms, self.session_anomaly),
        }
        return np.array([float(row[k]) for k in FEATURES])

    def _faulted_ms(self, lo: int, hi: int) -> int:
        total = 0
        for a, b in self.faulted_spans:
            if a >= hi:
                break
            total += max(0, min(b, hi) - max(a, lo))
        return total


def maintenance_features(history: ChargerHistory, at_ms: int) -> dict[str, float]:
    """The features of one charger at one moment, by name."""
    return dict(zip(FEATURES, ChargerSignals(history).features_at(at_ms).tolist(), strict=True))


def evidence(features: dict[str, float]) -> list[str]:
    """What a person should look at, in words, from the features that stand out."""
    out = []
    if features["hardware_faults_7d"] or features["meter_faults_7d"]:
        out.append(
            f"{int(features['hardware_faults_7d'])} hardware and {int(features['meter_faults_7d'])} meter "
            f"fault(s) in 7 days ({int(features['hardware_faults_3d'])} in the last 3)"
        )
    if features["faults_7d"]:
        out.append(
            f"{int(features['faults_7d'])} fault notification(s) in 7 days with {int(features['error_codes_7d'])} "
            f"error code(s), {features['faulted_minutes_7d']:.0f} min Faulted; fault rate "
            f"{features['fault_rate_3d_vs_21d']:.1f}x the charger's usual"
        )
    if features["failed_sessions_7d"]:
        out.append(
            f"{int(features['failed_sessions_7d'])} of {int(features['sessions_7d'])} sessions failed in 7 days "
            f"({round(features['failed_share_7d_vs_21d'] * 100):+d} points against the 3 weeks before)"
        )
    if features["meter_anomalies_7d"]:
        out.append(f"{int(features['meter_anomalies_7d'])} session(s) with meter anomalies in 7 days")
    return out or ["no faults, failed sessions or meter anomalies in 7 days"]


# -- training and evaluation on simulated fleets --------------------------------------------------


def fails_within(charger: SimCharger, at_ms: int, horizon_days: int = HORIZON_DAYS) -> bool:
    f = charger.failure
    return f is not None and at_ms < f.failed_at_ms <= at_ms + horizon_days * DAY_MS


@dataclass(frozen=True)
class Samples:
    x: np.ndarray
    y: np.ndarray
    charger: np.ndarray  # index into the fleet's chargers
    at_ms: np.ndarray


def samples(fleet: FleetHistory, first_day: int = 7, every_h: int = 24, horizon_days: int = HORIZON_DAYS) -> Samples:
    """One sample per charger per ``every_h`` from ``first_day`` on (a charger that is down is
    not scored: it has failed already), labelled with whether it fails within ``horizon_days``."""
    xs, ys, who, when = [], [], [], []
    step = every_h * 3_600_000
    for i, c in enumerate(fleet.chargers):
        signals = ChargerSignals(c.history)
        for at in range(fleet.start_ms + first_day * DAY_MS, fleet.end_ms - horizon_days * DAY_MS + 1, step):
            if c.down_at(at):
                continue
            xs.append(signals.features_at(at))
            ys.append(fails_within(c, at, horizon_days))
            who.append(i)
            when.append(at)
    return Samples(
        np.array(xs).reshape(-1, len(FEATURES)),
        np.array(ys, dtype=bool),
        np.array(who, dtype=np.int64),
        np.array(when, dtype=np.int64),
    )


@dataclass
class RiskModel:
    """Probability of failure within :data:`HORIZON_DAYS`, as permille."""

    seed: int = 0
    model: Any = None  # sklearn's HistGradientBoostingClassifier once fitted

    def fit(self, data: Samples) -> RiskModel:
        from sklearn.ensemble import HistGradientBoostingClassifier  # imported when needed: it takes a while

        if data.y.sum() < 5 or (~data.y).sum() < 5:
            raise InvalidInput(
                f"{int(data.y.sum())} failures in {len(data.y)} samples: too few to learn from",
                "simulate a larger fleet or more weeks",
            )
        self.model = HistGradientBoostingClassifier(
            max_iter=200,
            learning_rate=0.05,
            max_leaf_nodes=15,
            min_samples_leaf=20,
            l2_regularization=1.0,
            class_weight="balanced",
            random_state=self.seed,
        ).fit(data.x, data.y)
        return self

    def risk_permille(self, x: np.ndarray) -> np.ndarray:
        if self.model is None:
            raise InvalidInput("the risk model is not trained", "call fit first")
        p = self.model.predict_proba(np.atleast_2d(x))[:, 1]
        return np.rint(p * 1000).astype(np.int64)


_DEFAULT_MODEL: RiskModel | None = None
DEFAULT_TRAINING_SEED = 101


def default_risk_model() -> RiskModel:
    """The model trained on the standard simulated fleet (seed 101, 12 sites x 6 chargers, 10
    weeks), trained once per process: until an operator has failures of their own on record, this
    is what scores their chargers."""
    global _DEFAULT_MODEL
    if _DEFAULT_MODEL is None:
        from electra.intelligence.history import simulate_fleet

        fleet = simulate_fleet(DEFAULT_TRAINING_SEED, sites=12, chargers_per_site=6, weeks=10, prefix="TRAIN")
        _DEFAULT_MODEL = RiskModel().fit(samples(fleet))
    return _DEFAULT_MODEL


@dataclass(frozen=True)
class Confusion:
    threshold_permille: int
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def confusion(risk: np.ndarray, y: np.ndarray, threshold_permille: int) -> Confusion:
    alarm = risk >= threshold_permille
    return Confusion(
        threshold_permille,
        int((alarm & y).sum()),
        int((alarm & ~y).sum()),
        int((~alarm & y).sum()),
        int((~alarm & ~y).sum()),
    )


def best_threshold(risk: np.ndarray, y: np.ndarray, candidates: Sequence[int] = range(50, 1000, 25)) -> Confusion:
    """The threshold with the best F1 (ties: the higher threshold, fewer tickets)."""
    return max((confusion(risk, y, t) for t in candidates), key=lambda c: (round(c.f1, 6), c.threshold_permille))


def failures_caught(
    fleet: FleetHistory, data: Samples, risk: np.ndarray, threshold_permille: int
) -> tuple[int, int, list[float]]:
    """(failures, failures with an alarm in the days before them, lead time in days of the first
    such alarm): what a ticket queue would have caught."""
    failures = caught = 0
    leads: list[float] = []
    for i, c in enumerate(fleet.chargers):
        f = c.failure
        if f is None or f.failed_at_ms >= fleet.end_ms or f.failed_at_ms - DAY_MS * 7 < fleet.start_ms:
            continue
        failures += 1
        before = (data.at_ms < f.failed_at_ms) & (data.at_ms >= f.failed_at_ms - HORIZON_DAYS * DAY_MS)
        sel = (data.charger == i) & before
        alarms = data.at_ms[sel & (risk >= threshold_permille)]
        if alarms.size:
            caught += 1
            leads.append((f.failed_at_ms - int(alarms.min())) / DAY_MS)
    return failures, caught, leads


# -- tickets --------------------------------------------------------------------------------------


class TicketStatus(Enum):
    OPEN = "open"
    SCHEDULED = "scheduled"
    CLOSED = "closed"


@dataclass(frozen=True)
class Ticket:
    id: int
    charger_id: str
    status: TicketStatus
    risk_permille: int
    reasons: tuple[str, ...]
    opened_at_ms: int
    updated_at_ms: int
    scheduled_for_ms: int | None = None
    closed_at_ms: int | None = None
    resolution: str | None = None

    def schedule(self, for_ms: int, now_ms: int) -> Ticket:
        """Books a visit (again, if one was booked): open or scheduled -> scheduled."""
        if self.status is TicketStatus.CLOSED:
            raise InvalidInput(f"ticket {self.id} is closed", "open a new one if the charger needs a visit")
        if for_ms < now_ms - 3_600_000:
            raise InvalidInput(f"ticket {self.id}: the visit would be in the past", "give a time from now on")
        return replace(self, status=TicketStatus.SCHEDULED, scheduled_for_ms=for_ms, updated_at_ms=now_ms)

    def close(self, resolution: str, now_ms: int) -> Ticket:
        """Closes it with what was done: open or scheduled -> closed."""
        if self.status is TicketStatus.CLOSED:
            raise InvalidInput(f"ticket {self.id} is already closed", "nothing to do")
        if not resolution.strip():
            raise InvalidInput(f"ticket {self.id}: no resolution", "say what was done, e.g. 'replaced contactor'")
        return replace(
            self, status=TicketStatus.CLOSED, closed_at_ms=now_ms, resolution=resolution.strip(), updated_at_ms=now_ms
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "charger_id": self.charger_id,
            "status": self.status.value,
            "risk_permille": self.risk_permille,
            "reasons": list(self.reasons),
            "opened_at_ms": self.opened_at_ms,
            "scheduled_for_ms": self.scheduled_for_ms,
            "closed_at_ms": self.closed_at_ms,
            "resolution": self.resolution,
            "updated_at_ms": self.updated_at_ms,
        }


# -- reliability for discovery --------------------------------------------------------------------

RELIABILITY_WINDOW_MS = 30 * DAY_MS


def reliability_of(history: ChargerHistory, now_ms: int, risk_permille: int | None = None) -> int:
    """Reliability in permille: the share of the last 30 days' sessions that did not fail (1000
    with none), times the share of connectors not down now (1000 if unknown), times one minus the
    failure risk when a risk is given."""
    recent = [s for s in history.sessions if now_ms - RELIABILITY_WINDOW_MS <= s.started_at_ms <= now_ms]
    ok = 1000 if not recent else 1000 * sum(not s.failed for s in recent) // len(recent)
    states = history.current_status
    up = 1000 if not states else 1000 * sum(s not in DOWN for s in states) // len(states)
    score = up * ok // 1000
    if risk_permille is not None:
        score = score * (1000 - min(1000, max(0, risk_permille))) // 1000
    return score


def reliability_permille(
    engine: Any,
    charger_ids: Sequence[str],
    clock: Callable[[], float] = time.time,
    model: RiskModel | None = None,
) -> dict[str, int]:
    """Discovery's reliability score of each charger, from the store: sessions (flags, stop
    reasons, energy), connector states and, with a ``model``, the failure risk from the OCPP
    message log's StatusNotifications too."""
    from electra.intelligence.store import load_histories

    now_ms = int(clock() * 1000)
    histories = load_histories(engine, now_ms - RELIABILITY_WINDOW_MS, now_ms, charger_ids)
    out = {}
    for cid in charger_ids:
        h = histories.get(cid) or ChargerHistory(cid, cid, 1)
        risk = None
        if model is not None:
            risk = int(model.risk_permille(ChargerSignals(h).features_at(now_ms))[0])
        out[cid] = reliability_of(h, now_ms, risk)
    return out
