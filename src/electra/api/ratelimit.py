"""Rate limits: one token bucket per API key, per signed-in address, and per IP for anonymous calls.

In-process: each API process keeps its own buckets, so N processes behind a load balancer allow N
times the rate (route a caller to one process, or divide the rates by N). A bucket holds up to
``burst`` requests and refills at ``per_minute / 60`` a second; an empty bucket answers 429 with
``Retry-After`` (whole seconds until one request is allowed again). Idle buckets are dropped, so
memory stays bounded by the callers of the last few minutes.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from electra.errors import InvalidInput


@dataclass(frozen=True)
class Rate:
    per_minute: int
    burst: int

    def __post_init__(self) -> None:
        if self.per_minute < 1 or self.burst < 1:
            raise InvalidInput(f"a rate of {self.per_minute}/min with a burst of {self.burst}", "both at least 1")


@dataclass(frozen=True)
class RateLimits:
    """Defaults: an integration's key may do 100 requests a second; a driver's app 10; an anonymous IP 2."""

    key: Rate = Rate(6_000, 600)
    address: Rate = Rate(600, 120)
    anonymous: Rate = Rate(120, 60)


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    MAX_BUCKETS = 100_000

    def __init__(self, limits: RateLimits | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits or RateLimits()
        self.clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()
        self.refused = 0

    def rate_of(self, kind: str) -> Rate:
        return {"key": self.limits.key, "address": self.limits.address}.get(kind, self.limits.anonymous)

    def take(self, kind: str, who: str) -> float:
        """Takes one request from the caller's bucket: 0.0 if allowed, else the seconds to wait."""
        rate = self.rate_of(kind)
        per_s = rate.per_minute / 60.0
        now = self.clock()
        with self._lock:
            b = self._buckets.get((kind, who))
            if b is None:
                if len(self._buckets) >= self.MAX_BUCKETS:
                    self._sweep(now)
                b = self._buckets[(kind, who)] = _Bucket(float(rate.burst), now)
            b.tokens = min(float(rate.burst), b.tokens + (now - b.at) * per_s)
            b.at = now
            if b.tokens >= 1.0:
                b.tokens -= 1.0
                return 0.0
            self.refused += 1
            return (1.0 - b.tokens) / per_s

    def _sweep(self, now: float) -> None:
        """Drops buckets that have refilled to the full (nothing to remember of them)."""
        full = [
            k
            for k, b in self._buckets.items()
            if b.tokens + (now - b.at) * self.rate_of(k[0]).per_minute / 60 >= self.rate_of(k[0]).burst
        ]
        for k in full:
            del self._buckets[k]


def retry_after(wait_s: float) -> int:
    return max(1, math.ceil(wait_s))
