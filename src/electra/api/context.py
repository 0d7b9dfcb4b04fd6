"""What the API's routes stand on: the store, the chain, the central system, the event bus, the
payment providers, and the books of nonces, sessions and keys. One per app (``app.state.ctx``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from electra.api.auth import ApiKeyBook, NonceBook, Roles, SessionBook
from electra.api.observability import ApiMetrics
from electra.api.ratelimit import Limiter, RateLimiter
from electra.chain.bindings import Electra
from electra.discovery.index import StationIndex
from electra.errors import ElectraError
from electra.payments.events import EventBus
from electra.payments.providers import PaymentProvider


class ApiProblem(ElectraError):
    """An answer other than success, as a problem document: HTTP status and a stable code."""

    def __init__(
        self, status: int, code: str, cause: str, fix: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(cause, fix)
        self.status = status
        self.code = code
        self.headers = headers or {}


def store_off() -> ApiProblem:
    return ApiProblem(503, "store-off", "this process has no database")


def chain_off(cause: str = "no Electra deployment is known", fix: str | None = "deploy first") -> ApiProblem:
    return ApiProblem(503, "chain-unavailable", cause, fix)


@dataclass
class ApiContext:
    engine: Engine | None
    electra: Callable[[], Electra | None]
    rpc_url: str | None = None
    stations: Callable[[], StationIndex] | None = None
    pricing: Callable[[], Any] | None = None
    commands: Any = None  # electra.ocpp.commands.Commands over the running central system
    system: Callable[[], Any] | None = None  # the CentralSystem, for live status and metrics
    csms_address: tuple[str, int] | None = None  # where readiness looks for the central system
    csms_loop: Any = None  # the central system's event loop, when it is not the API's own
    bus: EventBus = field(default_factory=EventBus)
    providers: Sequence[PaymentProvider] = ()
    siwe_domain: str | None = None
    limiter: Limiter = field(default_factory=RateLimiter)
    metrics: ApiMetrics = field(default_factory=ApiMetrics)
    clock: Callable[[], float] = time.time
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _cache: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.roles = Roles(self.electra)

    def store(self) -> Engine:
        if self.engine is None:
            raise store_off()
        return self.engine

    def chain(self) -> Electra:
        e = self.electra()
        if e is None:
            raise chain_off()
        return e

    def _once(self, name: str, make: Callable[[], Any]) -> Any:
        with self._lock:
            hit = self._cache.get(name)
        if hit is not None and hit[0] is self.electra():
            return hit[1]
        value = make()
        with self._lock:
            self._cache[name] = (self.electra(), value)
        return value

    @property
    def nonces(self) -> NonceBook:
        return NonceBook(self.store(), clock=self.clock)

    @property
    def sessions(self) -> SessionBook:
        return SessionBook(self.store(), clock=self.clock)

    @property
    def keys(self) -> ApiKeyBook:
        return ApiKeyBook(self.store(), clock=self.clock)

    def wallet(self) -> Any:
        """The wallet service over this store and deployment (asset decimals read once)."""
        from electra.payments.wallet import WalletService

        engine, e = self.store(), self.chain()
        return self._once("wallet", lambda: WalletService(engine, e, bus=self.bus, clock=self.clock))

    def topups(self) -> Any:
        from electra.payments.topup import TopUpService

        wallet = self.wallet()
        return self._once(
            "topups", lambda: TopUpService(wallet.engine, wallet.electra, wallet=wallet, clock=self.clock)
        )

    def tariffs(self) -> Any:
        """The tariff book, bounded by what governance published (defaults without a deployment)."""
        from electra.payments.tariffs import TariffBook, governed_bounds

        engine = self.store()
        e = self.electra()
        if e is None:
            return TariffBook(engine, clock=self.clock)
        assets = {"EUSD": e.stablecoin.address, "ELC": e.token.address}
        return TariffBook(engine, governed_bounds(e.payments.tariff_bounds, assets), clock=self.clock)

    def provider(self, name: str) -> PaymentProvider:
        for p in self.providers:
            if p.name == name:
                return p
        raise ApiProblem(
            404,
            "provider-unknown",
            f"no payment provider {name!r} in this process",
            f"one of {', '.join(p.name for p in self.providers) or '(none configured)'}",
        )

    def live_system(self) -> Any:
        return self.system() if self.system is not None else None
