"""Utilization by hour of the week: how busy a charger's connectors were in each of the week's 168
hours (UTC, Monday 00:00-01:00 first), over a window of observation.

Each session is an interval of busy time on one connector. An hour of the week that the window
covers three times (three Mondays at 08:00) with two connectors was observable for 6 connector-hours;
if sessions filled 90 minutes of that, the slot is 250 permille busy. Integers only; no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from electra.errors import InvalidInput

HOURS_PER_WEEK = 168
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
# The epoch, 1970-01-01 00:00 UTC, was a Thursday: hour 72 of a week that starts on Monday.
_EPOCH_HOUR_OF_WEEK = 72


def hour_of_week(at_ms: int) -> int:
    """0 for Monday 00:00-01:00 UTC, ..., 167 for Sunday 23:00-24:00."""
    return (at_ms // HOUR_MS + _EPOCH_HOUR_OF_WEEK) % HOURS_PER_WEEK


def _spread(start_ms: int, end_ms: int, into: list[int], weight: int) -> None:
    """Adds ``weight`` times the milliseconds of [start, end) to the slot of each hour they touch."""
    t = start_ms
    while t < end_ms:
        boundary = (t // HOUR_MS + 1) * HOUR_MS
        step_end = min(boundary, end_ms)
        into[hour_of_week(t)] += (step_end - t) * weight
        t = step_end


@dataclass(frozen=True)
class WeeklyOccupancy:
    """Busy and observable connector-milliseconds per hour of the week."""

    busy_ms: tuple[int, ...]
    observed_ms: tuple[int, ...]

    def permille(self) -> list[int]:
        """Busy share of each slot, 0 to 1000 (0 where the window never covered the slot)."""
        return [min(1000, b * 1000 // o) if o else 0 for b, o in zip(self.busy_ms, self.observed_ms, strict=True)]

    def by_day(self) -> list[list[int]]:
        """:meth:`permille` as 7 rows (Monday first) of 24 hours."""
        p = self.permille()
        return [p[d * 24 : (d + 1) * 24] for d in range(7)]


def weekly_occupancy(
    busy: Iterable[tuple[int, int]], window_start_ms: int, window_end_ms: int, connectors: int
) -> WeeklyOccupancy:
    """Occupancy of ``connectors`` connectors over [window_start, window_end) from the busy
    intervals (start, end) in ms; each interval is clipped to the window."""
    if connectors < 1:
        raise InvalidInput(f"a charger with {connectors} connectors", "count at least one connector")
    if window_end_ms < window_start_ms:
        raise InvalidInput("the observation window ends before it starts", "give start <= end")
    observed = [0] * HOURS_PER_WEEK
    _spread(window_start_ms, window_end_ms, observed, connectors)
    taken = [0] * HOURS_PER_WEEK
    for start, end in busy:
        a, b = max(start, window_start_ms), min(end, window_end_ms)
        if a < b:
            _spread(a, b, taken, 1)
    return WeeklyOccupancy(tuple(taken), tuple(observed))
