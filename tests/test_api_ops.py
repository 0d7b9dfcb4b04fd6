"""Operating the API: health and readiness naming each part, Prometheus metrics, JSON log lines
that never hold a secret, rate limits with Retry-After, and a chain that is down answering 503
``chain-unavailable`` (never 500) on a real uvicorn."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from pathlib import Path

import httpx
from web3 import Web3

from electra.api.app import create_app
from electra.api.auth import ApiKeyBook
from electra.api.observability import install_json_logs
from electra.api.ratelimit import Rate, RateLimiter, RateLimits
from electra.chain.bindings import Electra
from electra.chain.client import ChainClient
from electra.chain.keys import dev_account
from electra.store.db import make_engine, migrate
from tests.apiworld import DRIVER_KEY, add_session, bearer, make_world, serve, serve_here, sign_in
from tests.conftest import free_port


def _engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path}/api.db")
    migrate(engine)
    return engine


def dead_chain(e: Electra) -> Electra:
    """The same deployment behind an RPC URL where nothing listens: the chain is down."""
    url = f"http://127.0.0.1:{free_port()}"
    client = ChainClient(
        Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 2})), e.client.chain_id, dev_account(0), url
    )
    return Electra.of(client, e.deployment)


def test_readiness_names_each_part_and_health_is_just_the_process(electra: Electra, tmp_path: Path) -> None:
    engine = _engine(tmp_path)

    async def body() -> None:
        listener = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        app = create_app(engine, lambda: electra, csms_address=("127.0.0.1", port))
        async with serve_here(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
            r = await http.get("/readyz")
            assert r.status_code == 200, r.text
            checks = r.json()["checks"]
            assert set(checks) == {"chain", "database", "csms"} and all(c["ok"] for c in checks.values())
            assert "chain id 31337" in checks["chain"]["detail"]
        listener.close()
        await listener.wait_closed()
        down = create_app(engine, lambda: dead_chain(electra), csms_address=("127.0.0.1", free_port()))
        async with serve_here(down) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
            r = await http.get("/readyz")
            assert r.status_code == 503 and r.json()["status"] == "not-ready"
            checks = r.json()["checks"]
            assert checks["database"]["ok"] and not checks["chain"]["ok"] and not checks["csms"]["ok"]
            assert (await http.get("/healthz")).json() == {"status": "ok"}

    asyncio.run(body())
    bare = create_app()
    with serve(bare) as url:
        r = httpx.get(f"{url}/readyz", timeout=30)
        assert r.status_code == 503
        assert {k: v["ok"] for k, v in r.json()["checks"].items()} == {"chain": False, "database": False, "csms": False}


def test_a_chain_that_is_down_is_503_chain_unavailable_never_500(electra: Electra, tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    w = make_world(electra, engine, "DOWN")
    key = w.operator_key
    with serve(create_app(engine, lambda: electra)) as url:
        token = sign_in(url, DRIVER_KEY)
    routes = [
        ("GET", f"/api/v1/stations/{w.charger_id}", {}),
        ("GET", f"/api/v1/vehicles/{w.vehicle_id}", {"X-API-Key": key}),
        ("GET", f"/api/v1/vehicles/{w.vehicle_id}/wallet", bearer(token)),
        ("GET", f"/api/v1/sessions/{w.session_id}", bearer(token)),
        ("GET", "/api/v1/sessions", bearer(token)),
        ("GET", "/api/v1/dao/proposals", {}),
        ("GET", "/api/v1/dao/parameters", {}),
        ("GET", f"/api/v1/host/chargers/{w.charger_id}/staking", {"X-API-Key": key}),
        ("GET", "/api/v1/host/earnings", bearer(token)),
        ("POST", "/api/v1/auth/siwe", {}),
    ]
    with serve(create_app(engine, lambda: dead_chain(electra))) as url:
        for method, path, headers in routes:
            body = {"message": "x", "signature": "0x00"} if path.endswith("siwe") else None
            r = httpx.request(method, f"{url}{path}", headers=headers, json=body, timeout=30)
            if path.endswith("siwe"):
                assert r.status_code == 400  # a malformed message is refused before the chain is asked
                continue
            assert r.status_code == 503, (path, r.text)
            assert r.headers["content-type"] == "application/problem+json" and r.json()["code"] == "chain-unavailable"
            assert r.headers["retry-after"] == "5"
        # what needs no chain still answers
        assert httpx.get(f"{url}/api/v1/stations/{w.charger_id}/tariff", timeout=30).status_code == 200
        assert (
            httpx.get(
                f"{url}/api/v1/vehicles/{w.vehicle_id}/wallet/history", headers={"X-API-Key": key}, timeout=30
            ).status_code
            == 200
        )


def test_metrics_count_requests_and_read_the_platform(electra: Electra, tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    w = make_world(electra, engine, "METRICS")
    add_session(engine, w.charger_id, w.vehicle_id, status="active", uid="M-ACTIVE")

    class System:
        host, port = "127.0.0.1", 1
        messages_received, messages_persisted = 42, 41

        def __init__(self) -> None:
            self.live = {"A": object(), "B": object()}

    with serve(create_app(engine, lambda: electra, system=lambda: System())) as url:
        httpx.get(f"{url}/healthz", timeout=10)
        assert httpx.get(f"{url}/metrics", timeout=10).status_code == 401
        r = httpx.get(f"{url}/metrics", headers={"X-API-Key": w.operator_key}, timeout=10)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    lines = r.text.splitlines()

    def value(prefix: str) -> float:
        return float(next(line for line in lines if line.startswith(prefix)).rsplit(" ", 1)[1])

    assert value('electra_http_requests_total{method="GET",route="/healthz",status="200"}') == 1
    assert value('electra_sessions{status="active"}') == 1 and value('electra_sessions{status="completed"}') == 1
    assert value('electra_settlement_backlog{status="pending"}') == 0
    assert value("electra_ocpp_connections") == 2 and value("electra_ocpp_messages_received_total") == 42
    assert value("electra_anchor_lag_records") == 0 and value("electra_store_up") == 1
    assert any(line.startswith("electra_http_request_duration_seconds_bucket") for line in lines)


def test_log_lines_are_json_with_request_ids_and_hold_no_token_or_key(electra: Electra, tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    buffer = io.StringIO()
    handler = install_json_logs(buffer)
    key = ApiKeyBook(engine).create("logger", "operator").secret
    try:
        with serve(create_app(engine, lambda: electra)) as url:
            token = sign_in(url, DRIVER_KEY)
            httpx.get(f"{url}/api/v1/auth/me", headers=bearer(token), timeout=30)
            httpx.get(f"{url}/api/v1/auth/me", headers={"X-API-Key": key, "X-Request-ID": "trace-abc-123"}, timeout=30)
            httpx.get(f"{url}/api/v1/events", params={"access_token": token, "topics": "nope"}, timeout=30)
            httpx.get(f"{url}/api/v1/auth/me", headers=bearer(token + "x"), timeout=30)
    finally:
        api_log = logging.getLogger("electra.api")
        api_log.removeHandler(handler)
        api_log.propagate = True  # as it was: later tests' logs reach pytest again
    text = buffer.getvalue()
    records = [json.loads(line) for line in text.splitlines()]
    assert len(records) >= 6 and all(
        {"ts", "level", "request_id", "route", "status", "latency_ms"} <= r.keys() for r in records
    )
    assert token not in text and key not in text and key.rpartition("_")[2] not in text
    assert token.removeprefix("elt_") not in text
    me = [r for r in records if r["route"] == "/api/v1/auth/me"]
    assert [r["status"] for r in me] == [200, 200, 401]
    assert me[0]["principal"] == "address" and me[0]["address"] == DRIVER_KEY.address
    assert me[1]["request_id"] == "trace-abc-123" and me[1]["principal"] == "api-key"


def test_rate_limits_answer_429_with_retry_after_per_caller(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    limits = RateLimits(key=Rate(60, 3), address=Rate(60, 3), anonymous=Rate(60, 2))
    keys = ApiKeyBook(engine)
    a, b = keys.create("a", "operator").secret, keys.create("b", "operator").secret
    with serve(create_app(engine, rate_limits=limits)) as url:
        codes = [httpx.get(f"{url}/healthz", timeout=10).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        r = httpx.get(f"{url}/healthz", timeout=10)
        assert r.headers["content-type"] == "application/problem+json" and r.json()["code"] == "rate-limited"
        assert 1 <= int(r.headers["retry-after"]) <= 2
        first = [httpx.get(f"{url}/api/v1/auth/me", headers={"X-API-Key": a}, timeout=10).status_code for _ in range(4)]
        assert first == [200, 200, 200, 429]
        assert httpx.get(f"{url}/api/v1/auth/me", headers={"X-API-Key": b}, timeout=10).status_code == 200


def test_a_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(RateLimits(anonymous=Rate(60, 2)), clock=lambda: now[0])
    assert [limiter.take("ip", "1.2.3.4") for _ in range(2)] == [0.0, 0.0]
    wait = limiter.take("ip", "1.2.3.4")
    assert 0.9 < wait <= 1.0 and limiter.take("ip", "5.6.7.8") == 0.0
    now[0] += 1.0
    assert limiter.take("ip", "1.2.3.4") == 0.0 and limiter.take("ip", "1.2.3.4") > 0
