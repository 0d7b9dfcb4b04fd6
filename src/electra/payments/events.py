"""An in-process publish/subscribe stream of wallet events (low balance, top-ups, deposits).

Publishers are plain functions that may run on any thread (the wallet service runs in CLI
commands, in FastAPI's thread pool, in workers). A subscriber reads with ``await sub.get()`` or
``async for event in sub`` inside an event loop, or with ``sub.get_nowait()`` / ``sub.drain()``
anywhere. The API layer turns a subscription into Server-Sent Events (:meth:`BusEvent.sse`).

A slow subscriber never blocks a publisher: each subscription keeps at most ``maxsize`` events,
drops the oldest beyond that and counts what it dropped.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from electra.errors import InvalidInput

# Topics the wallet side publishes.
BALANCE_LOW = "balance.low"
BALANCE_RECOVERED = "balance.recovered"
TOPUP_CREDITED = "wallet.topup"
DEPOSITED = "wallet.deposit"
WITHDRAWN = "wallet.withdrawal"


@dataclass(frozen=True)
class BusEvent:
    seq: int  # per bus, from 1: the SSE id a reconnecting client reports back
    topic: str
    data: Mapping[str, Any]

    def sse(self) -> str:
        """The event as one Server-Sent Events message."""
        return f"id: {self.seq}\nevent: {self.topic}\ndata: {json.dumps(dict(self.data), sort_keys=True)}\n\n"


class Subscription:
    """One subscriber's queue. Close it (or use it as a context manager) when done."""

    def __init__(self, bus: EventBus, topics: frozenset[str] | None, maxsize: int) -> None:
        self._bus = bus
        self._topics = topics
        self._items: deque[BusEvent] = deque()
        self._maxsize = maxsize
        self._lock = threading.Lock()
        self.dropped = 0
        self.closed = False
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None  # a synchronous subscriber; it polls with get_nowait()
        self._ready = asyncio.Event() if self._loop is not None else None

    def wants(self, topic: str) -> bool:
        return self._topics is None or topic in self._topics

    def _deliver(self, event: BusEvent) -> None:
        with self._lock:
            if len(self._items) >= self._maxsize:
                self._items.popleft()
                self.dropped += 1
            self._items.append(event)
        self._wake()

    def _wake(self) -> None:
        loop, ready = self._loop, self._ready
        if loop is None or ready is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            ready.set()
            return
        try:
            loop.call_soon_threadsafe(ready.set)
        except RuntimeError:
            self._loop = None  # the reader's loop closed meanwhile: nobody is left to wake

    def get_nowait(self) -> BusEvent | None:
        with self._lock:
            return self._items.popleft() if self._items else None

    def drain(self) -> list[BusEvent]:
        with self._lock:
            items = list(self._items)
            self._items.clear()
            return items

    async def get(self) -> BusEvent | None:
        """The next event, waiting for one; None once the subscription is closed and empty.
        Only inside the event loop the subscription was made in."""
        ready = self._ready
        if ready is None:
            raise InvalidInput(
                "this subscription was made outside an event loop", "subscribe inside the loop that awaits it"
            )
        while True:
            ready.clear()
            event = self.get_nowait()
            if event is not None or self.closed:
                return event
            await ready.wait()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> BusEvent:
        event = await self.get()
        if event is None:
            raise StopAsyncIteration
        return event

    def close(self) -> None:
        """Stops deliveries; a reader waiting in get() wakes up and gets None."""
        self.closed = True
        self._bus._unsubscribe(self)
        self._wake()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    """Fan-out of events to every subscription whose topics match."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()
        self._seq = 0

    def subscribe(self, topics: Iterable[str] | None = None, maxsize: int = 1000) -> Subscription:
        """A new subscription to ``topics`` (all topics when None)."""
        sub = Subscription(self, frozenset(topics) if topics is not None else None, max(1, maxsize))
        with self._lock:
            self._subs.append(sub)
        return sub

    def publish(self, topic: str, data: Mapping[str, Any]) -> BusEvent:
        with self._lock:
            self._seq += 1
            event = BusEvent(self._seq, topic, dict(data))
            subs = [s for s in self._subs if s.wants(topic)]
        for sub in subs:
            sub._deliver(event)
        return event

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subs)

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)
