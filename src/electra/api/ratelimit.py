"""Rate limits: one token bucket per API key, per signed-in address, and per IP for anonymous calls.

A bucket holds up to ``burst`` requests and refills at ``per_minute / 60`` a second; an empty
bucket answers 429 with ``Retry-After`` (whole seconds until one request is allowed again).

Two homes for the buckets, one interface (:class:`Limiter`):

- :class:`RateLimiter` keeps them in the process's memory: no cost, but N API processes allow N
  times the rate. Idle buckets are dropped, so memory stays bounded by recent callers.
- :class:`DatabaseRateLimiter` keeps them in the platform's database (table ``api_rate_buckets``):
  every API process on one PostgreSQL draws from the same bucket. One request is one atomic
  upsert (``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``), so concurrent takes never both get
  the last token. While the database cannot answer, it falls back to an in-memory limiter of its
  own (each process then limits on its own) rather than refusing or letting everything through.

``electra up`` picks by ``ELECTRA_API_RATE_LIMITS`` (auto: the database on PostgreSQL, memory on
SQLite, where there is one process anyway and every write would contend with the central system's).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import BigInteger, Engine, bindparam, case, create_engine, delete, func
from sqlalchemy.exc import SQLAlchemyError

from electra.errors import InvalidInput
from electra.store.models import RateBucketRecord

log = logging.getLogger("electra.api")


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


class Limiter(Protocol):
    limits: RateLimits
    refused: int

    def take(self, kind: str, who: str) -> float:
        """Takes one request from the caller's bucket: 0.0 if allowed, else the seconds to wait."""
        ...

    def close(self) -> None:
        """Lets go of what it holds (a database limiter's connections)."""
        ...


def _rate_of(limits: RateLimits, kind: str) -> Rate:
    return {"key": limits.key, "address": limits.address}.get(kind, limits.anonymous)


class RateLimiter:
    """The buckets in this process's memory."""

    MAX_BUCKETS = 100_000

    def __init__(self, limits: RateLimits | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits or RateLimits()
        self.clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()
        self.refused = 0

    def rate_of(self, kind: str) -> Rate:
        return _rate_of(self.limits, kind)

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

    def close(self) -> None:
        """Nothing to let go of: the buckets go with the process."""

    def _sweep(self, now: float) -> None:
        """Drops buckets that have refilled to the full (nothing to remember of them)."""
        full = [
            k
            for k, b in self._buckets.items()
            if b.tokens + (now - b.at) * self.rate_of(k[0]).per_minute / 60 >= self.rate_of(k[0]).burst
        ]
        for k in full:
            del self._buckets[k]


class DatabaseRateLimiter:
    """The buckets in the database, shared by every API process on it. Counted in milli-requests
    and milliseconds, so the arithmetic is integer and the same on PostgreSQL and SQLite."""

    SWEEP_EVERY_S = 60.0

    def __init__(
        self, engine: Engine, limits: RateLimits | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.engine = engine
        self.limits = limits or RateLimits()
        self.clock = clock  # wall time: the processes sharing the table must agree on it
        self.fallback = RateLimiter(self.limits)
        self.refused = 0
        self.fallbacks = 0  # takes answered by the in-memory fallback while the database failed
        self._swept_at = 0.0
        self._warned_at = -math.inf
        postgres = engine.dialect.name == "postgresql"
        if postgres:
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        self._insert = insert
        self._least, self._greatest = (func.least, func.greatest) if postgres else (func.min, func.max)
        self._stmt = self._upsert()
        # PostgreSQL: connections of its own that stay in autocommit, so a take is one round trip
        # (the upsert is atomic by itself); SQLite: the platform's engine, one write transaction.
        self._own = create_engine(engine.url, isolation_level="AUTOCOMMIT") if postgres else None
        # A bucket idle this long has refilled to the full whatever the rates: nothing to remember.
        self._forget_after_ms = 60_000 + max(
            r.burst * 60_000 // r.per_minute for r in (self.limits.key, self.limits.address, self.limits.anonymous)
        )

    def take(self, kind: str, who: str) -> float:
        rate = _rate_of(self.limits, kind)
        now_s = self.clock()
        try:
            tokens, allowed = self._take(kind, who[:128], rate, int(now_s * 1000))
            if now_s - self._swept_at >= self.SWEEP_EVERY_S:
                self._sweep(int(now_s * 1000))
        except SQLAlchemyError as exc:
            self.fallbacks += 1
            if now_s - self._warned_at >= 60.0:  # one line a minute while it lasts, not one per request
                self._warned_at = now_s
                log.warning(
                    "rate limits fall back to this process's memory: the database failed",
                    extra={"error": type(exc).__name__},
                )
            wait = self.fallback.take(kind, who)
            if wait:
                self.refused += 1
            return wait
        if allowed:
            return 0.0
        self.refused += 1
        return (1000 - tokens) / 1000 / (rate.per_minute / 60.0)

    def _upsert(self) -> Any:
        """The one statement a take runs, built once (its values are bound parameters)."""
        t = RateBucketRecord.__table__
        now, full, per_minute = (bindparam(n, type_=BigInteger) for n in ("now_ms", "full", "per_minute"))
        elapsed = self._greatest(0, now - t.c.at_ms)
        refilled = self._least(full, t.c.tokens + elapsed * per_minute // 60)
        return (
            self._insert(t)
            .values(kind=bindparam("kind"), who=bindparam("who"), tokens=full - 1000, at_ms=now, allowed=True)
            .on_conflict_do_update(
                index_elements=[t.c.kind, t.c.who],
                set_={
                    "tokens": case((refilled >= 1000, refilled - 1000), else_=refilled),
                    "at_ms": self._greatest(t.c.at_ms, now),
                    "allowed": refilled >= 1000,
                },
            )
            .returning(t.c.tokens, t.c.allowed)
        )

    def _take(self, kind: str, who: str, rate: Rate, now_ms: int) -> tuple[int, bool]:
        values = {"kind": kind, "who": who, "now_ms": now_ms, "full": rate.burst * 1000, "per_minute": rate.per_minute}
        if self._own is not None:
            with self._own.connect() as c:
                tokens, allowed = c.execute(self._stmt, values).one()
        else:
            with self.engine.begin() as c:
                tokens, allowed = c.execute(self._stmt, values).one()
        return int(tokens), bool(allowed)

    def close(self) -> None:
        if self._own is not None:
            self._own.dispose()

    def _sweep(self, now_ms: int) -> None:
        self._swept_at = now_ms / 1000
        with self.engine.begin() as c:
            c.execute(delete(RateBucketRecord).where(RateBucketRecord.at_ms < now_ms - self._forget_after_ms))


def limiter_for(engine: Engine | None, store: str, limits: RateLimits | None = None) -> Limiter:
    """``store``: memory, database, or auto (the database on PostgreSQL, else memory)."""
    if store not in ("auto", "memory", "database"):
        raise InvalidInput(f"rate-limit store {store!r}", "use auto, memory or database")
    shared = store == "database" or (store == "auto" and engine is not None and engine.dialect.name == "postgresql")
    if shared:
        if engine is None:
            raise InvalidInput("rate limits in the database, but the API has no database", "use memory")
        return DatabaseRateLimiter(engine, limits)
    return RateLimiter(limits)


def retry_after(wait_s: float) -> int:
    return max(1, math.ceil(wait_s))
