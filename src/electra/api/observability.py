"""What the API tells its operator: one JSON log line per request, and Prometheus metrics.

Each request gets a request id (the caller's ``X-Request-ID`` if it is a sane one, else a new one),
sent back in ``X-Request-ID`` and written in its log line with the route template, the method, the
status, the latency and who called (principal kind, address or API key id: never a token, a key
or a query string). Logs go to the ``electra.api`` logger; :func:`json_log_handler` makes the
handler that writes them one JSON object per line.

Metrics (:class:`ApiMetrics`) live in a registry of their own per app. Request counts and
latencies are counted as requests pass; the platform's state is read when Prometheus scrapes:
sessions by status, the settlement backlog and its age, the anchoring lag, OCPP connections and
messages (a counter: ``rate(electra_ocpp_messages_received_total[1m])`` is the message rate).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import IO, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from pythonjsonlogger.json import JsonFormatter
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from electra.store.models import AnchorBatchRecord, SessionLogRecord, SessionRecord, SettlementRecord

LOG = logging.getLogger("electra.api")
ACCESS = logging.getLogger("electra.api.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9\-_.]{8,64}$")


def json_log_handler(stream: IO[str] | None = None) -> logging.Handler:
    """A handler writing one JSON object per line: ts, level, logger, message and the extras."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
            datefmt="%Y-%m-%dT%H:%M:%S%z",
        )
    )
    return handler


def install_json_logs(stream: IO[str] | None = None, level: int = logging.INFO) -> logging.Handler:
    """Sends the ``electra.api`` loggers to one JSON handler (and not on to the root logger)."""
    handler = json_log_handler(stream)
    LOG.addHandler(handler)
    LOG.setLevel(level)
    LOG.propagate = False
    return handler


class ApiMetrics:
    LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "electra_http_requests",
            "HTTP requests answered, by route template, method and status",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "electra_http_request_duration_seconds",
            "Time to answer an HTTP request (an event stream: until it closes)",
            ("route", "method"),
            buckets=self.LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "electra_http_rate_limited",
            "Requests refused with 429, by bucket kind",
            ("bucket",),
            registry=self.registry,
        )
        self.sse_streams = Gauge("electra_sse_streams", "Event streams open now", registry=self.registry)
        self.sse_replayed = Counter(
            "electra_sse_replayed_events", "Events replayed on reconnection", registry=self.registry
        )
        self.sse_dropped = Counter(
            "electra_sse_dropped_events", "Events dropped for slow event-stream readers", registry=self.registry
        )

    def watch(self, engine: Engine | None, system: Callable[[], Any] | None) -> None:
        self.registry.register(PlatformCollector(engine, system))


class PlatformCollector(Collector):
    """The platform's state, read at scrape time from the store and the in-process central system."""

    def __init__(
        self, engine: Engine | None, system: Callable[[], Any] | None, clock: Callable[[], float] = time.time
    ) -> None:
        self.engine = engine
        self.system = system
        self.clock = clock

    def describe(self) -> list[Any]:
        return []  # names only known at scrape time; nothing to check at registration

    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily("electra_store_up", "1 if the store answered this scrape")
        if self.engine is not None:
            try:
                yield from self._store(self.engine)
                up.add_metric([], 1)
            except SQLAlchemyError as exc:
                LOG.warning("metrics: the store did not answer", extra={"error": type(exc).__name__})
                up.add_metric([], 0)
        else:
            up.add_metric([], 0)
        yield up
        system = self.system() if self.system is not None else None
        connections = GaugeMetricFamily("electra_ocpp_connections", "Chargers connected to this central system")
        received = CounterMetricFamily("electra_ocpp_messages_received", "OCPP CALLs received from chargers")
        persisted = CounterMetricFamily("electra_ocpp_messages_persisted", "OCPP CALLs committed to the message log")
        if system is not None:
            connections.add_metric([], len(system.live))
            received.add_metric([], system.messages_received)
            persisted.add_metric([], system.messages_persisted)
        yield connections
        yield received
        yield persisted

    def _store(self, engine: Engine) -> Iterator[Any]:
        now_ms = int(self.clock() * 1000)
        with engine.connect() as conn:
            by_status = dict(
                conn.execute(select(SessionRecord.status, func.count()).group_by(SessionRecord.status)).all()
            )
            backlog = dict(
                conn.execute(
                    select(SettlementRecord.status, func.count())
                    .where(SettlementRecord.status.in_(("pending", "batched", "manual")))
                    .group_by(SettlementRecord.status)
                ).all()
            )
            oldest = conn.execute(
                select(func.min(SettlementRecord.created_at_ms)).where(
                    SettlementRecord.status.in_(("pending", "batched"))
                )
            ).scalar()
            anchored_seq = conn.execute(
                select(func.max(AnchorBatchRecord.last_seq)).where(AnchorBatchRecord.status == "anchored")
            ).scalar()
            last_seq = conn.execute(select(func.max(SessionLogRecord.seq))).scalar()
            unanchored_since = conn.execute(
                select(func.min(SessionLogRecord.created_at_ms)).where(SessionLogRecord.seq > (anchored_seq or 0))
            ).scalar()
        sessions = GaugeMetricFamily("electra_sessions", "Charging sessions in the store, by status", labels=["status"])
        for status in ("active", "completed"):
            sessions.add_metric([status], int(by_status.get(status, 0)))
        yield sessions
        queue = GaugeMetricFamily(
            "electra_settlement_backlog", "Billed sessions not settled on-chain yet, by status", labels=["status"]
        )
        for status in ("pending", "batched", "manual"):
            queue.add_metric([status], int(backlog.get(status, 0)))
        yield queue
        yield GaugeMetricFamily(
            "electra_settlement_backlog_age_seconds",
            "Age of the oldest session waiting for settlement (0: none waits)",
            value=max(0, now_ms - int(oldest)) / 1000 if oldest is not None else 0,
        )
        yield GaugeMetricFamily(
            "electra_anchor_lag_records",
            "Session records logged but not yet in an anchored batch",
            value=max(0, int(last_seq or 0) - int(anchored_seq or 0)),
        )
        yield GaugeMetricFamily(
            "electra_anchor_lag_seconds",
            "Age of the oldest session record not yet anchored (0: all are)",
            value=max(0, now_ms - int(unanchored_since)) / 1000 if unanchored_since is not None else 0,
        )


class Observed:
    """ASGI middleware: request id, one JSON log line and the request metrics per HTTP request."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics, paths: dict[int, str] | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.paths = paths or {}  # a route (by id) to its full path template, prefixes included

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = _header(scope, b"x-request-id")
        request_id = given if given and _REQUEST_ID.match(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            elapsed = time.perf_counter() - started
            matched = scope.get("route")
            route = (
                self.paths.get(id(matched))
                or self.paths.get(id(scope.get("endpoint")))
                or getattr(matched, "path", None)
                or "unmatched"
            )
            method = scope.get("method", "")
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route, method).observe(elapsed)
            principal = state.get("principal")
            who = principal.describe() if principal is not None else {"principal": "anonymous"}
            ACCESS.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": method,
                    "route": route,
                    "path": scope.get("path", ""),
                    "status": status,
                    "latency_ms": round(elapsed * 1000, 2),
                    "client": (scope.get("client") or ("", 0))[0],
                    **who,
                },
            )


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers", []):
        if k == name:
            return str(v.decode("latin-1"))
    return None
