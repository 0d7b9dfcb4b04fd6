"""The event loop of the long-running commands: uvloop by default, asyncio's own on request."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import uvloop

from electra import eventloop
from electra.config import load_settings
from electra.errors import ConfigError


async def _loop_type() -> type[asyncio.AbstractEventLoop]:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop())


def test_runs_on_uvloop_by_default() -> None:
    assert eventloop.run(_loop_type()) is uvloop.Loop
    assert eventloop.loop_in_use("uvloop") == "uvloop"


def test_asyncio_on_request() -> None:
    loop_type = eventloop.run(_loop_type(), "asyncio")
    assert not issubclass(loop_type, uvloop.Loop)
    assert eventloop.loop_in_use("asyncio") == "asyncio"


def test_unknown_loop_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown event loop"):
        eventloop.loop_factory("trio")  # type: ignore[arg-type]


def test_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(data_dir=tmp_path).event_loop == "uvloop"
    monkeypatch.setenv("ELECTRA_EVENT_LOOP", "asyncio")
    assert load_settings(data_dir=tmp_path).event_loop == "asyncio"
    monkeypatch.setenv("ELECTRA_EVENT_LOOP", "gevent")
    with pytest.raises(ConfigError, match="event_loop"):
        load_settings(data_dir=tmp_path)
