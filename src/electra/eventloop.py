"""The event loop that Electra's long-running processes (`electra csms`, `electra up`) run on.

uvloop (libuv under asyncio's interface) by default: the central system spends much of its CPU in
the event loop's scheduling and socket I/O, which uvloop does in C (docs/benchmarks.md has the A/B).
``ELECTRA_EVENT_LOOP=asyncio`` runs the standard library's loop instead, for comparison or where
uvloop is not installed (it has no Windows build).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

EventLoopName = Literal["uvloop", "asyncio"]
EVENT_LOOPS: tuple[EventLoopName, ...] = ("uvloop", "asyncio")
LOG = logging.getLogger("electra")
T = TypeVar("T")


def loop_factory(name: EventLoopName) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """A factory for the named loop; None for asyncio's default loop."""
    if name == "asyncio":
        return None
    if name == "uvloop":
        try:
            import uvloop
        except ImportError:
            LOG.warning("uvloop is not installed; running on asyncio's event loop")
            return None
        return uvloop.new_event_loop
    from electra.errors import ConfigError

    raise ConfigError(f"unknown event loop {name!r}", "set ELECTRA_EVENT_LOOP to uvloop or asyncio")


def loop_in_use(name: EventLoopName) -> str:
    """What :func:`run` with ``name`` actually runs on: "uvloop" or "asyncio"."""
    return "asyncio" if loop_factory(name) is None else "uvloop"


def run(main: Coroutine[Any, Any, T], name: EventLoopName = "uvloop") -> T:
    """``asyncio.run(main)`` on the named event loop."""
    with asyncio.Runner(loop_factory=loop_factory(name)) as runner:
        return runner.run(main)
