"""Rate limits shared through the database (electra.api.ratelimit.DatabaseRateLimiter): the same
decisions as the in-memory buckets, one bucket for every API process on a PostgreSQL, atomic under
concurrent takes, and a fallback to memory while the database is down."""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select

from electra.api.app import create_app
from electra.api.ratelimit import DatabaseRateLimiter, Rate, RateLimiter, RateLimits, limiter_for
from electra.store.db import make_engine, migrate
from electra.store.models import RateBucketRecord
from tests.apiworld import serve
from tests.conftest import free_port
from tests.pgserver import PostgresServer


@pytest.fixture
def pg_database(postgres_server: PostgresServer) -> Iterator[str]:
    name = f"electra_rl_{uuid.uuid4().hex[:12]}"
    postgres_server.create_database(name)
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


def test_the_shared_buckets_decide_as_the_in_memory_ones(store_engine: Engine) -> None:
    """A random sequence of callers and clock steps: every answer (allowed, and the wait) is the
    in-memory limiter's. Steps are quarter seconds, exact in binary and in milliseconds."""
    limits = RateLimits(key=Rate(240, 5), address=Rate(60, 3), anonymous=Rate(30, 2))
    now = [1_700_000_000.0]
    shared = DatabaseRateLimiter(store_engine, limits, clock=lambda: now[0])
    memory = RateLimiter(limits, clock=lambda: now[0])
    rng = random.Random(7)
    callers = [("key", "k1"), ("address", "0xabc"), ("ip", "10.0.0.1"), ("ip", "10.0.0.2")]
    refused = 0
    for _ in range(400):
        now[0] += rng.choice([0.0, 0.0, 0.0, 0.25, 0.5, 1.0, 3.0])
        kind, who = rng.choice(callers)
        want, got = memory.take(kind, who), shared.take(kind, who)
        assert got == pytest.approx(want, abs=1e-9), (kind, who, now[0])
        refused += want > 0
    assert 50 < refused < 350  # the sequence exercises both answers
    assert shared.refused == memory.refused == refused and shared.fallbacks == 0
    shared.close()


def test_concurrent_takes_never_share_the_last_token(pg_database: str) -> None:
    """Two "processes" (engines of their own), four threads: exactly the burst gets through."""
    engines = [make_engine(pg_database) for _ in range(2)]
    migrate(engines[0])
    limits = RateLimits(anonymous=Rate(1, 40))  # one a minute: no refill during the test
    limiters = [DatabaseRateLimiter(e, limits) for e in engines]
    allowed: list[int] = []
    lock = threading.Lock()

    def hammer(limiter: DatabaseRateLimiter) -> None:
        ok = sum(limiter.take("ip", "198.51.100.7") == 0.0 for _ in range(25))
        with lock:
            allowed.append(ok)

    threads = [threading.Thread(target=hammer, args=(limiters[i % 2],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(allowed) == 40 and sum(lim.refused for lim in limiters) == 60
    with engines[0].connect() as c:
        assert c.execute(select(func.count()).select_from(RateBucketRecord)).scalar_one() == 1
    for lim, e in zip(limiters, engines, strict=True):
        lim.close()
        e.dispose()


def test_two_api_processes_on_one_postgresql_share_a_callers_budget(pg_database: str) -> None:
    engines = [make_engine(pg_database) for _ in range(2)]
    migrate(engines[0])
    limits = RateLimits(anonymous=Rate(60, 4))
    apps = [create_app(e, limiter=limiter_for(e, "auto", limits)) for e in engines]
    assert all(isinstance(a.state.ctx.limiter, DatabaseRateLimiter) for a in apps)
    with serve(apps[0]) as one, serve(apps[1]) as two:
        codes = [httpx.get(f"{url}/healthz", timeout=10).status_code for url in (one, two) * 3]
    # In memory each process would allow 4: 6 x 200. Shared, the caller has 4 in all.
    assert codes == [200, 200, 200, 200, 429, 429]
    for app, e in zip(apps, engines, strict=True):
        app.state.ctx.limiter.close()
        e.dispose()


def test_limits_fall_back_to_memory_while_the_database_is_down(tmp_path: Path) -> None:
    dead = make_engine(f"postgresql+psycopg://electra@127.0.0.1:{free_port()}/none?connect_timeout=2")
    limiter = DatabaseRateLimiter(dead, RateLimits(anonymous=Rate(60, 2)))
    waits = [limiter.take("ip", "203.0.113.9") for _ in range(3)]
    assert waits[:2] == [0.0, 0.0] and waits[2] > 0  # still limited, by this process alone
    assert limiter.fallbacks == 3 and limiter.refused == 1
    limiter.close()
    assert isinstance(limiter_for(make_engine(f"sqlite:///{tmp_path}/x.db"), "auto"), RateLimiter)
