"""A charging session as a pure state machine: energy from meter registers, in integer Wh.

Events arrive from chargers over an unreliable link: retransmitted, out of order, replayed after an
offline period with their original timestamps. The rules:

- Applying the same event twice changes nothing (the second time reports ``DUPLICATE``).
- Meter readings are kept in timestamp order, whatever order they arrive in.
- Two different register values for the same instant are a conflict: the session is flagged.
- A register that goes down between two readings in time order is a meter running backwards: the
  session is flagged and not billed automatically (``billable_energy_wh`` is None).
- Energy is the stop register minus the start register, never a sum of floats.
- Signed meter data that fails verification (a bad signature, an unregistered key, a broken OCMF
  rule across the session: :mod:`electra.domain.meter_data`) flags the session
  ``METER_DATA_UNVERIFIED``; the session service decides that and sets the flag (:meth:`flagged`).

No I/O, no clocks: every timestamp comes in with its event (milliseconds since the epoch, UTC).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from enum import Enum

from electra.errors import InvalidInput


class SessionStatus(Enum):
    ACTIVE = "active"
    COMPLETED = "completed"


class Flag(Enum):
    METER_BACKWARDS = "meter_backwards"
    CONFLICTING_READING = "conflicting_reading"
    CONFLICTING_STOP = "conflicting_stop"
    METER_DATA_UNVERIFIED = "meter_data_unverified"


class Outcome(Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass(frozen=True)
class MeterReading:
    timestamp_ms: int
    register_wh: int

    def __post_init__(self) -> None:
        if self.register_wh < 0:
            raise InvalidInput(f"negative meter register {self.register_wh} Wh", "meter registers count up from 0")


@dataclass(frozen=True)
class Started:
    timestamp_ms: int
    meter_start_wh: int
    id_token: str


@dataclass(frozen=True)
class Sampled:
    reading: MeterReading


@dataclass(frozen=True)
class Stopped:
    timestamp_ms: int
    meter_stop_wh: int
    reason: str = "Local"


Event = Sampled | Stopped


@dataclass(frozen=True)
class Applied:
    session: ChargingSession
    outcome: Outcome
    detail: str = ""


@dataclass(frozen=True)
class ChargingSession:
    """One transaction at one connector of one charger.

    Built with :meth:`start` and :meth:`apply`, its ``readings`` are sorted by (time, register), and
    ``METER_BACKWARDS`` is among its flags whenever they are not monotone (readings are only ever
    added, so an inversion never goes away)."""

    session_id: str
    charger_id: str
    connector_id: int
    id_token: str
    started_at_ms: int
    meter_start_wh: int
    status: SessionStatus = SessionStatus.ACTIVE
    readings: tuple[MeterReading, ...] = ()
    stopped_at_ms: int | None = None
    meter_stop_wh: int | None = None
    stop_reason: str | None = None
    flags: frozenset[Flag] = field(default_factory=frozenset)

    @classmethod
    def start(cls, session_id: str, charger_id: str, connector_id: int, event: Started) -> ChargingSession:
        if not session_id:
            raise InvalidInput("empty session id", "the charger must name its transaction")
        if event.meter_start_wh < 0:
            raise InvalidInput(f"negative meter start {event.meter_start_wh} Wh", "meter registers count up from 0")
        first = MeterReading(event.timestamp_ms, event.meter_start_wh)
        return cls(
            session_id=session_id,
            charger_id=charger_id,
            connector_id=connector_id,
            id_token=event.id_token,
            started_at_ms=event.timestamp_ms,
            meter_start_wh=event.meter_start_wh,
            readings=(first,),
        )

    def apply(self, event: Event) -> Applied:
        if isinstance(event, Sampled):
            return self._sample(event.reading)
        return self._stop(event)

    def _sample(self, r: MeterReading) -> Applied:
        if r.timestamp_ms < self.started_at_ms:
            return Applied(self, Outcome.REJECTED, "reading before the session started")
        if self.stopped_at_ms is not None and r.timestamp_ms > self.stopped_at_ms:
            return Applied(self, Outcome.REJECTED, "reading after the session stopped")
        last = self.readings[-1] if self.readings else None
        if last is not None and r.timestamp_ms > last.timestamp_ms:
            # The usual case, a reading after all others: with the class's invariant it goes last,
            # shares no instant, and is an inversion only if it is below the last one.
            kept = self.flags
            if r.register_wh < last.register_wh and Flag.METER_BACKWARDS not in kept:
                kept = kept | {Flag.METER_BACKWARDS}
            return Applied(replace(self, readings=(*self.readings, r), flags=kept), Outcome.APPLIED)
        same_instant = [x for x in self.readings if x.timestamp_ms == r.timestamp_ms]
        if r in same_instant:
            return Applied(self, Outcome.DUPLICATE)
        readings = tuple(sorted((*self.readings, r), key=lambda x: (x.timestamp_ms, x.register_wh)))
        flags = set(self.flags)
        if same_instant:
            flags.add(Flag.CONFLICTING_READING)
        if not _monotone(readings):
            flags.add(Flag.METER_BACKWARDS)
        return Applied(replace(self, readings=readings, flags=frozenset(flags)), Outcome.APPLIED)

    def _stop(self, e: Stopped) -> Applied:
        if self.status is SessionStatus.COMPLETED:
            if (e.timestamp_ms, e.meter_stop_wh) == (self.stopped_at_ms, self.meter_stop_wh):
                return Applied(self, Outcome.DUPLICATE)
            flagged = replace(self, flags=self.flags | {Flag.CONFLICTING_STOP})
            return Applied(flagged, Outcome.REJECTED, "the session already stopped with other values")
        if e.timestamp_ms < self.started_at_ms:
            return Applied(self, Outcome.REJECTED, "stop before the session started")
        if e.meter_stop_wh < 0:
            return Applied(self, Outcome.REJECTED, "negative meter stop")
        later = [x for x in self.readings if x.timestamp_ms > e.timestamp_ms]
        if later:
            return Applied(self, Outcome.REJECTED, "readings exist after the stop time")
        stopped = replace(
            self,
            status=SessionStatus.COMPLETED,
            stopped_at_ms=e.timestamp_ms,
            meter_stop_wh=e.meter_stop_wh,
            stop_reason=e.reason,
        )
        # The stop register is a reading like any other: it takes part in the order and the checks.
        return Applied(stopped._sample(MeterReading(e.timestamp_ms, e.meter_stop_wh)).session, Outcome.APPLIED)

    def flagged(self, flag: Flag) -> ChargingSession:
        """This session with ``flag`` set (flags are never cleared)."""
        return self if flag in self.flags else replace(self, flags=self.flags | {flag})

    @property
    def energy_wh(self) -> int:
        """Register at the last reading minus the start register (what the meter says, flagged or not)."""
        end = self.meter_stop_wh if self.meter_stop_wh is not None else self.readings[-1].register_wh
        return end - self.meter_start_wh

    @property
    def billable_energy_wh(self) -> int | None:
        """Energy to bill automatically, or None when the session needs a human look first."""
        if self.status is not SessionStatus.COMPLETED or self.flags:
            return None
        return self.energy_wh


def _monotone(readings: tuple[MeterReading, ...]) -> bool:
    return all(a.register_wh <= b.register_wh for a, b in itertools.pairwise(readings))
