"""Compressed time for simulations: a `SimClock(speed)` runs `speed` times faster than real time.

Every timestamp a simulated charger writes and every interval it waits is in simulated time. With
speed 60, a 60-minute session takes one real minute and a 300 s heartbeat interval five real
seconds. Simulated time is kept in integer milliseconds since the Unix epoch.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable

from electra.errors import InvalidInput

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class SimClock:
    """Simulated wall time: ``start`` (epoch seconds, default now) plus ``speed`` x real time elapsed."""

    def __init__(
        self,
        speed: float = 1.0,
        start: float | None = None,
        real: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if not speed > 0:
            raise InvalidInput(f"invalid clock speed {speed}", "give a speed above 0, e.g. 60")
        self.speed = speed
        self._real = real
        self._real0 = real()
        self.start_ms = round((wall() if start is None else start) * 1000)

    # --- reading the clock -------------------------------------------------------------------
    def now_ms(self) -> int:
        return self.start_ms + self.to_sim_ms(self._real() - self._real0)

    def now(self) -> float:
        """Simulated epoch seconds (for libraries that want a `time.time`-like clock)."""
        return self.now_ms() / 1000

    def elapsed_ms(self) -> int:
        """Simulated milliseconds since the clock started."""
        return self.now_ms() - self.start_ms

    def iso(self, ms: int | None = None) -> str:
        """ISO 8601 UTC with milliseconds and Z, as OCPP timestamps are written."""
        t = _EPOCH + dt.timedelta(milliseconds=self.now_ms() if ms is None else ms)
        return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{t.microsecond // 1000:03d}Z"

    # --- converting between real and simulated durations ----------------------------------------
    def to_sim_ms(self, real_s: float) -> int:
        return round(real_s * self.speed * 1000)

    def to_real_s(self, sim_ms: int) -> float:
        return sim_ms / 1000 / self.speed

    # --- waiting ------------------------------------------------------------------------------
    async def sleep(self, sim_s: float) -> None:
        """Waits ``sim_s`` simulated seconds."""
        await asyncio.sleep(max(0.0, sim_s) / self.speed)

    async def sleep_ms(self, sim_ms: int) -> None:
        await asyncio.sleep(self.to_real_s(max(0, sim_ms)))

    async def sleep_until(self, sim_epoch_ms: int) -> None:
        await self.sleep_ms(sim_epoch_ms - self.now_ms())

    async def wait(self, event: asyncio.Event, sim_ms: int) -> bool:
        """Waits for ``event`` at most ``sim_ms`` simulated ms; True if it was set."""
        if event.is_set():
            return True
        try:
            await asyncio.wait_for(event.wait(), self.to_real_s(max(0, sim_ms)))
        except TimeoutError:
            return False
        return True


def parse_iso_ms(text: str) -> int:
    """An OCPP timestamp (ISO 8601, Z or offset) as epoch milliseconds."""
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput(f"invalid timestamp {text!r}", "use ISO 8601, e.g. 2026-11-22T10:00:00Z") from exc
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return (t - _EPOCH) // dt.timedelta(milliseconds=1)
