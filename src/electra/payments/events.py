"""An in-process publish/subscribe stream of wallet events (low balance, top-ups, deposits).

Publishers are plain functions that may run on any thread (the wallet service runs in CLI
commands, in FastAPI's thread pool, in workers). A subscriber reads with ``await sub.get()`` or
``async for event in sub`` inside an event loop, or with ``sub.get_nowait()`` / ``sub.drain()``
anywhere. The API layer turns a subscription into Server-Sent Events (:meth:`BusEvent.sse`).

A slow subscriber never blocks a publisher: each subscription keeps at most ``maxsize`` events,
drops the oldest beyond that and counts what it dropped.

The bus also keeps its last ``retain`` events, so a client that reconnects can ask for what it
missed (:meth:`EventBus.subscribe_after`, SSE's ``Last-Event-ID``). Event ids are
``<bus epoch>-<seq>``: the epoch is new in every process, so an id from before a restart is
recognised as such and the client is told to re-read its state instead of silently missing events.
"""

from __future__ import annotations

import asyncio
import json
import secrets
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
    seq: int  # per bus, from 1
    topic: str
    data: Mapping[str, Any]
    epoch: str = ""  # the bus's, new per process

    @property
    def event_id(self) -> str:
        """The SSE id a reconnecting client reports back (``Last-Event-ID``)."""
        return f"{self.epoch}-{self.seq}"

    def sse(self) -> str:
        """The event as one Server-Sent Events message."""
        body = json.dumps(dict(self.data), sort_keys=True)
        return f"id: {self.event_id}\nevent: {self.topic}\ndata: {body}\n\n"


@dataclass(frozen=True)
class Replay:
    """What a reconnecting subscriber missed: the retained events after its id, and whether that is
    all of them (False: the id is from another process, or older than what the bus retains)."""

    events: list[BusEvent]
    complete: bool
    position: str  # the id of the bus's last event when the subscription began
    reason: str = ""


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

    def __init__(self, retain: int = 10_000) -> None:
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()
        self._seq = 0
        self.epoch = secrets.token_hex(4)
        self._recent: deque[BusEvent] = deque(maxlen=max(0, retain))

    def subscribe(self, topics: Iterable[str] | None = None, maxsize: int = 1000) -> Subscription:
        """A new subscription to ``topics`` (all topics when None)."""
        sub = Subscription(self, frozenset(topics) if topics is not None else None, max(1, maxsize))
        with self._lock:
            self._subs.append(sub)
        return sub

    def subscribe_after(
        self, last_event_id: str | None, topics: Iterable[str] | None = None, maxsize: int = 1000
    ) -> tuple[Subscription, Replay]:
        """A new subscription, and the retained events after ``last_event_id`` on its topics (None:
        from now on), taken under one lock so that no event falls between the replay and the live
        stream."""
        sub = Subscription(self, frozenset(topics) if topics is not None else None, max(1, maxsize))
        with self._lock:
            self._subs.append(sub)
            position = f"{self.epoch}-{self._seq}"
            if last_event_id is None:
                return sub, Replay([], True, position)
            epoch, _, seq_text = last_event_id.strip().partition("-")
            if epoch != self.epoch or not seq_text.isdecimal() or int(seq_text) > self._seq:
                return sub, Replay([], False, position, "the event id is not from this server's current run")
            after = int(seq_text)
            oldest = self._recent[0].seq if self._recent else self._seq + 1
            missed = [e for e in self._recent if e.seq > after and sub.wants(e.topic)]
        if after + 1 < oldest:
            return sub, Replay(missed, False, position, f"events before {self.epoch}-{oldest} are no longer kept")
        return sub, Replay(missed, True, position)

    def publish(self, topic: str, data: Mapping[str, Any]) -> BusEvent:
        with self._lock:
            self._seq += 1
            event = BusEvent(self._seq, topic, dict(data), self.epoch)
            self._recent.append(event)
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
