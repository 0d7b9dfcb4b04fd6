"""Simulated multi-week history of a fleet, for evaluating the forecast and maintenance models.

A pure function of its parameters and a seed (numpy's PCG64), no I/O. It makes:

* **Sites** of four kinds, each with its own weekly demand profile (hour of week, UTC): commuter
  (weekday working hours), retail (shopping hours, busy Saturdays), residential (evenings and
  nights) and highway (daytime, Friday and Sunday afternoon peaks). A site's demand also moves
  with a persistent daily shock (weather, events: AR(1) in log space), shared by its chargers.
* **Chargers** at each site, with their own popularity and a weekly growth or decline, AC (two
  connectors, sessions of about two hours) or DC (one connector, about forty minutes).
* **Sessions** from Poisson arrivals at that demand; a session that finds every connector busy
  goes elsewhere. Utilization is what these sessions occupy, as in a real store.
* **Faults**: every charger has transient faults now and then (mostly soft error codes, cleared
  within minutes); some are noisy all along without ever failing. A share of chargers *fail*:
  for some days before the failure their fault rate, failed-session rate and meter anomalies climb
  (faster as the failure nears, in the failure mode's error codes); then the connector goes
  Faulted and stays down until it is repaired one to four days later. Some failures come with
  hardly any warning, as real ones do.

The ground truth (which charger fails when) is kept with each charger, so the maintenance model can
be scored against it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from electra.errors import InvalidInput
from electra.intelligence.signals import DAY_MS, HOUR_MS, WEEK_H, ChargerHistory, SessionOutcome, StatusEvent

# Monday 5 January 2026, 00:00 UTC: histories start on a week boundary.
DEFAULT_START_MS = int(dt.datetime(2026, 1, 5, tzinfo=dt.UTC).timestamp() * 1000)
SITE_KINDS = ("commuter", "retail", "residential", "highway")
FAILURE_MODES = {
    # mode: (error codes while degrading, the code it fails with, meter anomalies per failing session)
    "ground": (("GroundFailure", "OverCurrentFailure"), "GroundFailure", 0.02),
    "thermal": (("HighTemperature", "PowerSwitchFailure"), "HighTemperature", 0.02),
    "meter": (("PowerMeterFailure", "InternalError"), "PowerMeterFailure", 0.35),
    "contactor": (("PowerSwitchFailure", "OverVoltage", "UnderVoltage"), "PowerSwitchFailure", 0.05),
}
SOFT_CODES = ("EVCommunicationError", "ConnectorLockFailure", "ReaderFailure", "OtherError", "WeakSignal")
STOP_OK = ("EVDisconnected", "Local", "Remote")
STOP_FAILED = ("PowerLoss", "EmergencyStop", "Other")


@dataclass(frozen=True)
class FailurePlan:
    """When a charger fails, how long it degrades before, and when it is repaired."""

    mode: str
    degrade_from_ms: int
    failed_at_ms: int
    repaired_at_ms: int
    error_code: str
    sudden: bool


@dataclass(frozen=True)
class SimCharger:
    history: ChargerHistory
    kind: str  # the site's kind
    max_power_w: int
    noisy: bool
    failure: FailurePlan | None

    @property
    def charger_id(self) -> str:
        return self.history.charger_id

    def down_at(self, at_ms: int) -> bool:
        """Whether the charger is out of order (failed, not yet repaired) at ``at_ms``."""
        f = self.failure
        return f is not None and f.failed_at_ms <= at_ms < f.repaired_at_ms


@dataclass(frozen=True)
class FleetHistory:
    start_ms: int
    hours: int
    chargers: tuple[SimCharger, ...]

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.hours * HOUR_MS

    def histories(self) -> list[ChargerHistory]:
        return [c.history for c in self.chargers]


def site_profile(kind: str) -> np.ndarray:
    """Demand of a site kind per hour of the week (0 = Monday 00:00 UTC), as the share of its
    connectors it would keep busy."""
    hours = np.arange(WEEK_H)
    hod, dow = hours % 24, hours // 24
    weekend = dow >= 5

    def bump(centre: float, width: float) -> np.ndarray:
        return np.asarray(np.exp(-0.5 * ((hod - centre) / width) ** 2))

    if kind == "commuter":
        p = 0.05 + np.where(weekend, 0.08 * bump(13, 3), 0.55 * bump(9, 1.5) + 0.45 * bump(14, 2.5))
    elif kind == "retail":
        day = 0.30 * bump(12, 1.5) + 0.40 * bump(17.5, 1.8)
        p = 0.03 + np.where(dow == 5, 1.4 * day, np.where(dow == 6, 0.35 * day, day))
    elif kind == "residential":
        p = 0.08 + 0.55 * bump(20, 2.0) + 0.35 * bump(23.5, 2.5) + 0.30 * bump(1, 2.0) + np.where(weekend, 0.1, 0.0)
    elif kind == "highway":
        peak = np.where((dow == 4) | (dow == 6), 0.35 * bump(16, 2.0), 0.0)
        p = 0.04 + 0.25 * bump(12, 4.0) + peak
    else:
        raise InvalidInput(f"unknown site kind {kind!r}", f"one of {', '.join(SITE_KINDS)}")
    return np.asarray(np.clip(p, 0.0, 0.95))


def simulate_fleet(
    seed: int,
    sites: int = 8,
    chargers_per_site: int = 5,
    weeks: int = 8,
    start_ms: int = DEFAULT_START_MS,
    failure_share: float = 0.35,
    noisy_share: float = 0.15,
    prefix: str = "SIM",
) -> FleetHistory:
    """A fleet's history of ``weeks`` weeks. Charger ids are ``{prefix}-S{site}-C{n}``."""
    if sites < 1 or chargers_per_site < 1 or weeks < 1:
        raise InvalidInput("a fleet needs at least one site, one charger and one week", "raise the counts")
    if not (0.0 <= failure_share <= 1.0 and 0.0 <= noisy_share <= 1.0):
        raise InvalidInput("shares must be within 0..1", "e.g. failure_share=0.35")
    rng = np.random.default_rng(seed)
    hours = weeks * WEEK_H
    days = hours // 24
    chargers: list[SimCharger] = []
    for s in range(sites):
        kind = SITE_KINDS[s % len(SITE_KINDS)] if s < len(SITE_KINDS) else SITE_KINDS[int(rng.integers(4))]
        profile = site_profile(kind)
        site_scale = float(rng.uniform(0.9, 1.7))
        shock = np.zeros(days)
        for d in range(1, days):
            shock[d] = 0.75 * shock[d - 1] + rng.normal(0.0, 0.18)
        for n in range(chargers_per_site):
            charger_id = f"{prefix}-S{s:02d}-C{n:02d}"
            chargers.append(
                _simulate_charger(
                    rng,
                    charger_id,
                    f"{prefix}-S{s:02d}",
                    kind,
                    profile * site_scale,
                    shock,
                    hours,
                    start_ms,
                    failure_share,
                    noisy_share,
                )
            )
    return FleetHistory(start_ms, hours, tuple(chargers))


def _simulate_charger(
    rng: np.random.Generator,
    charger_id: str,
    site: str,
    kind: str,
    profile: np.ndarray,
    site_shock: np.ndarray,
    hours: int,
    start_ms: int,
    failure_share: float,
    noisy_share: float,
) -> SimCharger:
    dc = bool(rng.random() < (0.6 if kind == "highway" else 0.2))
    connectors = 1 if dc else 2
    max_power_w = int(rng.choice([50_000, 150_000])) if dc else int(rng.choice([11_000, 22_000]))
    mean_h = 0.7 if dc else (4.0 if kind == "residential" else 2.0)
    popularity = float(rng.uniform(0.7, 1.4))
    growth = float(rng.uniform(-0.03, 0.06))  # per week
    noisy = bool(rng.random() < noisy_share)
    failure = _failure_plan(rng, start_ms, hours) if rng.random() < failure_share else None

    t = np.arange(hours)
    level = popularity * (1.0 + growth * t / WEEK_H) * np.exp(site_shock[t // 24])
    demand = np.clip(profile[t % WEEK_H] * np.maximum(level, 0.05), 0.0, 1.5)
    arrivals = rng.poisson(demand * connectors / mean_h)

    base_fault_per_day = 1.2 if noisy else 0.12
    base_failed = 0.08 if noisy else 0.02
    busy_until = [start_ms] * connectors
    sessions: list[SessionOutcome] = []
    for h in np.flatnonzero(arrivals):
        hour_ms = start_ms + int(h) * HOUR_MS
        for offset in np.sort(rng.integers(0, HOUR_MS, size=int(arrivals[h]))):
            at = hour_ms + int(offset)
            if failure is not None and failure.failed_at_ms <= at < failure.repaired_at_ms:
                continue  # out of order: nobody charges
            free = [c for c in range(connectors) if busy_until[c] <= at]
            if not free:
                continue
            conn = free[0]
            duration_ms = int(rng.lognormal(np.log(mean_h), 0.5) * HOUR_MS)
            p = _progress(failure, at)
            fails = rng.random() < base_failed + 0.45 * p
            meter_share = FAILURE_MODES[failure.mode][2] if failure is not None else 0.0
            anomaly = rng.random() < 0.003 + meter_share * p
            if fails:
                duration_ms = max(60_000, int(duration_ms * rng.uniform(0.02, 0.4)))
            stop = at + duration_ms
            if failure is not None and at < failure.failed_at_ms < stop:
                stop, fails = failure.failed_at_ms, True  # the failure ends it
            busy_until[conn] = stop
            power = max_power_w * rng.uniform(0.35, 0.8) if dc else min(max_power_w, 11_000) * rng.uniform(0.6, 1.0)
            energy = 0 if fails and rng.random() < 0.3 else int(power * (stop - at) / HOUR_MS)
            sessions.append(
                SessionOutcome(
                    connector_id=conn + 1,
                    started_at_ms=at,
                    stopped_at_ms=stop,
                    energy_wh=energy,
                    stop_reason=str(rng.choice(STOP_FAILED)) if fails else str(rng.choice(STOP_OK)),
                    flags=frozenset({"meter_backwards"}) if anomaly else frozenset(),
                )
            )
    statuses = _fault_events(rng, failure, start_ms, hours, connectors, base_fault_per_day, noisy)
    current = _status_at(statuses, connectors, start_ms + hours * HOUR_MS)
    history = ChargerHistory(charger_id, site, connectors, tuple(sessions), tuple(statuses), current)
    return SimCharger(history, kind, max_power_w, noisy, failure)


def _failure_plan(rng: np.random.Generator, start_ms: int, hours: int) -> FailurePlan:
    days = hours // 24
    mode = str(rng.choice(sorted(FAILURE_MODES)))
    first = min(14, max(1, days // 3))  # the first weeks are healthy, so features have history
    failed_at = start_ms + int(rng.integers(first * 24, max(first * 24 + 1, hours - 24))) * HOUR_MS
    sudden = bool(rng.random() < 0.2)
    degrade_days = float(rng.uniform(0.3, 1.0)) if sudden else float(rng.uniform(2.0, 10.0))
    repaired = failed_at + int(rng.uniform(1.0, 4.0) * DAY_MS)
    return FailurePlan(
        mode=mode,
        degrade_from_ms=failed_at - int(degrade_days * DAY_MS),
        failed_at_ms=failed_at,
        repaired_at_ms=repaired,
        error_code=FAILURE_MODES[mode][1],
        sudden=sudden,
    )


def _progress(failure: FailurePlan | None, at_ms: int) -> float:
    """How far a failing charger has degraded at ``at_ms``: 0 before degradation, rising to 1 at
    the failure (quadratically: the worst comes last), 0 again once repaired."""
    if failure is None or not failure.degrade_from_ms <= at_ms < failure.failed_at_ms:
        return 0.0
    x = (at_ms - failure.degrade_from_ms) / (failure.failed_at_ms - failure.degrade_from_ms)
    return float(x * x) * (0.35 if failure.sudden else 1.0)


def _fault_events(
    rng: np.random.Generator,
    failure: FailurePlan | None,
    start_ms: int,
    hours: int,
    connectors: int,
    base_per_day: float,
    noisy: bool,
) -> list[StatusEvent]:
    events: list[StatusEvent] = []
    end = start_ms + hours * HOUR_MS
    for h in range(hours):
        at0 = start_ms + h * HOUR_MS
        p = _progress(failure, at0 + HOUR_MS // 2)
        rate = base_per_day / 24 + (5.0 * p / 24 if failure is not None else 0.0)
        for _ in range(int(rng.poisson(rate))):
            at = at0 + int(rng.integers(0, HOUR_MS))
            if failure is not None and failure.failed_at_ms <= at < failure.repaired_at_ms:
                continue
            degrading = failure is not None and p > 0 and rng.random() < 0.8
            if degrading and failure is not None:
                code = str(rng.choice(FAILURE_MODES[failure.mode][0]))
            elif noisy and rng.random() < 0.25:
                code = str(rng.choice(("HighTemperature", "GroundFailure", "OverVoltage")))
            else:
                code = str(rng.choice(SOFT_CODES))
            conn = int(rng.integers(1, connectors + 1))
            events.append(StatusEvent(at, conn, "Faulted", code))
            events.append(StatusEvent(at + int(rng.integers(30_000, 20 * 60_000)), conn, "Available", "NoError"))
    if failure is not None and failure.failed_at_ms < end:
        for conn in range(1, connectors + 1):
            events.append(StatusEvent(failure.failed_at_ms, conn, "Faulted", failure.error_code))
            if failure.repaired_at_ms < end:
                events.append(StatusEvent(failure.repaired_at_ms, conn, "Available", "NoError"))
    events.sort(key=lambda e: (e.at_ms, e.connector_id))
    if failure is not None:  # transient recoveries do not end a failure early
        events = [
            e
            for e in events
            if not (e.status == "Available" and failure.failed_at_ms <= e.at_ms < failure.repaired_at_ms)
        ]
    return events


def _status_at(events: list[StatusEvent], connectors: int, at_ms: int) -> tuple[str, ...]:
    status = ["Available"] * connectors
    for e in events:
        if e.at_ms >= at_ms:
            break
        status[e.connector_id - 1] = e.status
    return tuple(status)
