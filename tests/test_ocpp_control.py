"""`electra ocpp ...` commands reach connected chargers through a running central system's control
channel: a bearer token, JSON over a websocket on the OCPP port."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from electra.cli.main import app
from electra.ocpp.directory import ChargerAdmission, StaticChargerDirectory
from electra.ocpp.gateway import CentralSystem, CsmsStore
from electra.sim import ChargerIdentity, SimClock, make_charger

TOKEN = "operator-token-for-the-test-0123456789"
runner = CliRunner()


class Running:
    def __init__(self, tmp_path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.store = CsmsStore.open(f"sqlite:///{tmp_path}/csms.db")
        chargers = {cid: ChargerAdmission(cid, i + 1, True) for i, cid in enumerate(("CTL-16", "CTL-201"))}
        self.system = CentralSystem(
            StaticChargerDirectory(chargers), self.store, port=0, security_profile=0, control_token=TOKEN
        )
        self.do(self.system.start())
        clock = SimClock(1.0)
        self.sims = [
            make_charger("1.6", ChargerIdentity("CTL-16", b"\x01" * 32), self.system.url, clock),
            make_charger("2.0.1", ChargerIdentity("CTL-201", b"\x02" * 32), self.system.url, clock),
        ]
        for s in self.sims:
            self.loop.call_soon_threadsafe(self._spawn, s)
        for s in self.sims:
            self.do(s.wait_booted(10))

    def _spawn(self, sim: Any) -> None:
        self.loop.create_task(sim.run())

    def do(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def close(self) -> None:
        for s in self.sims:
            self.do(s.stop(end_sessions=False, flush_timeout_s=1))
        self.do(self.system.stop())
        self.do(_cancel_the_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


async def _cancel_the_rest() -> None:
    rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for t in rest:
        t.cancel()
    await asyncio.gather(*rest, return_exceptions=True)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    r = Running(tmp_path)
    yield r
    r.close()


def cli(running: Running, *args: str) -> Any:
    env = {
        "ELECTRA_DATA_DIR": str(running.store.engine.url.database).rsplit("/", 1)[0],
        "ELECTRA_CSMS_PORT": str(running.system.port),
        "ELECTRA_CONTROL_TOKEN": TOKEN,
    }
    return runner.invoke(app, ["ocpp", *args], env=env, catch_exceptions=False)


def ok(result: Any) -> Any:
    assert result.exit_code == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


def test_cli_commands_reach_both_versions(running: Running) -> None:
    listed = ok(cli(running, "chargers", "--json"))
    assert [(c["charger_id"], c["ocpp"], c["booted"]) for c in listed] == [
        ("CTL-16", "1.6", True),
        ("CTL-201", "2.0.1", True),
    ]
    for cid in ("CTL-16", "CTL-201"):
        assert ok(cli(running, "trigger", cid, "Heartbeat", "--json"))["status"] == "Accepted"
        assert (
            ok(cli(running, "set-profile", cid, "--limit-w", "7000", "--connector", "1", "--json"))["status"]
            == "Accepted"
        )
        started = ok(cli(running, "remote-start", cid, "--id-token", "RFID-CTL", "--connector", "1", "--json"))
        assert started["status"] == "Accepted"
    config16 = ok(cli(running, "get-config", "CTL-16", "HeartbeatInterval"))
    assert config16["configuration_key"][0]["key"] == "HeartbeatInterval"
    changed = ok(cli(running, "set-config", "CTL-16", "HeartbeatInterval", "120"))
    assert changed["status"] == "Accepted"
    variables = ok(cli(running, "get-config", "CTL-201", "OCPPCommCtrlr.HeartbeatInterval"))
    assert variables["get_variable_result"][0]["attribute_status"] == "Accepted"
    assert ok(cli(running, "reset", "CTL-16", "--json"))["status"] == "Accepted"


def test_cli_errors_are_one_line(running: Running) -> None:
    gone = cli(running, "reset", "NOT-CONNECTED")
    assert gone.exit_code == 1 and "not connected" in gone.stderr and "\n" not in gone.stderr.strip()
    bad = cli(running, "trigger", "CTL-16", "MakeCoffee")
    assert bad.exit_code == 1 and "cannot trigger" in bad.stderr
    bad_var = cli(running, "get-config", "CTL-201", "NoDot")
    assert bad_var.exit_code == 1 and "Component.Variable" in bad_var.stderr


def test_the_control_channel_needs_the_token(running: Running) -> None:
    async def knock(token: str | None) -> int:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            async with connect(
                f"ws://127.0.0.1:{running.system.port}/control",
                subprotocols=["electra.control.v1"],  # type: ignore[list-item]
                additional_headers=headers,
            ) as ws:
                await ws.send(json.dumps({"id": 1, "op": "chargers"}))
                return 200 if json.loads(await ws.recv())["ok"] else 500
        except InvalidStatus as e:
            return e.response.status_code

    assert asyncio.run(knock(None)) == 401
    assert asyncio.run(knock("wrong")) == 401
    assert asyncio.run(knock(TOKEN)) == 200
