"""The embedded dev chain and platform: state survives a restart, a running chain is reused."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from eth_account import Account

from electra.chain.bindings import Electra
from electra.chain.client import connect
from electra.chain.deploy import deploy
from electra.chain.devchain import DevChain
from electra.chain.keys import dev_account
from electra.config import load_settings
from electra.domain.station import StationSpec
from electra.domain.vehicle import vin_hash
from electra.platform import Platform
from tests.conftest import free_port


def test_chain_state_survives_a_restart(data_dir: Path) -> None:
    settings = load_settings(data_dir=data_dir, dev_chain_port=free_port())
    dev = DevChain(settings)
    _, started = dev.start()
    assert started
    try:
        client = connect(settings)
        deployment, fresh = deploy(client, settings)
        assert fresh
        e = Electra.of(client, deployment)
        spec = StationSpec("CP-PERSIST-1", 48_137_154, 11_576_124, 22_000, 2, 1, b"DEELC")
        token_id, _ = e.stations.register(spec, Account.create(), owner=dev_account(1))
        vid, _ = e.vehicles.register(vin_hash("WVWZZZE1ZPP000009"), Account.create().address, owner=dev_account(2))
        block_before = int(client.w3.eth.block_number)
    finally:
        assert dev.stop()
    assert dev.health() is None
    assert (data_dir / "chain" / "state.json").stat().st_size > 0

    dev2 = DevChain(settings)
    health, started = dev2.start()
    try:
        assert started
        assert health.block_number == block_before
        client = connect(settings)
        again, fresh = deploy(client, settings)
        assert not fresh
        assert again.addresses == deployment.addresses
        e = Electra.of(client, again)
        assert e.stations.station(token_id).charger_id == "CP-PERSIST-1"
        assert e.stations.station(token_id).owner == dev_account(1).address
        assert e.vehicles.vehicle(vid).owner == dev_account(2).address
    finally:
        dev2.stop()


def test_running_chain_is_reused_not_started_twice(data_dir: Path) -> None:
    settings = load_settings(data_dir=data_dir, dev_chain_port=free_port())
    first = DevChain(settings)
    first.start()
    try:
        _, started = DevChain(settings).start()
        assert not started
    finally:
        first.stop()
    assert not DevChain(settings).stop()


def test_platform_restart_keeps_chain_and_database(data_dir: Path) -> None:
    settings = load_settings(data_dir=data_dir, dev_chain_port=free_port())
    p1 = Platform(settings)
    info1 = p1.start()
    p1.stop()
    p2 = Platform(settings)
    info2 = p2.start()
    p2.stop()
    assert info1["contracts"]["deployed_now"] is True
    assert info2["contracts"]["deployed_now"] is False
    assert info2["chain"]["dev_chain"] == "started"
    assert {k: v for k, v in info1["contracts"].items() if k != "deployed_now"} == {
        k: v for k, v in info2["contracts"].items() if k != "deployed_now"
    }
    assert (info1["platform_runs"], info2["platform_runs"]) == (1, 2)
    assert info2["chain"]["block_number"] >= info1["chain"]["block_number"]


def _start_up(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "electra.cli.main", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "Ctrl-C stops" in line:
            return proc, "".join(lines)
    raise AssertionError("electra up did not come up:\n" + "".join(lines))


def test_ctrl_c_stops_everything_and_the_next_start_keeps_state(data_dir: Path) -> None:
    """What a user does with `make run`: Ctrl-C (SIGINT to the whole group, forwarded twice), then again."""
    port = free_port()
    env = {
        **os.environ,
        "ELECTRA_DATA_DIR": str(data_dir),
        "ELECTRA_DEV_CHAIN_PORT": str(port),
        "ELECTRA_CSMS_PORT": str(free_port()),
        "ELECTRA_API_PORT": str(api_port := free_port()),
    }
    settings = load_settings(data_dir=data_dir, dev_chain_port=port)
    proc, _ = _start_up(env)
    api = httpx.get(f"http://127.0.0.1:{api_port}/api/v1/openapi.json", timeout=10)
    assert api.status_code == 200 and "/api/v1/sessions/{session_id}/proof" in api.json()["paths"]
    missing = httpx.get(f"http://127.0.0.1:{api_port}/api/v1/sessions/999999/proof", timeout=10)
    assert missing.status_code == 404 and missing.json()["code"] == "session-not-recorded"
    assert missing.headers["content-type"].startswith("application/problem+json")
    client = connect(settings)
    e = Electra.of(client, deploy(client, settings)[0])
    spec = StationSpec("CP-CTRL-C", 1, 2, 7_400, 2, 1, b"DEELC")
    token_id, _ = e.stations.register(spec, Account.create(), owner=dev_account(1))
    os.killpg(proc.pid, signal.SIGINT)
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "stopped" in out
    assert DevChain(settings).health() is None, "anvil must not outlive electra up"

    proc, banner = _start_up(env)
    assert re.search(r"platform_runs\s+│ 2 ", banner), banner
    assert re.search(r"dev_chain\s+│ started ", banner), banner
    try:
        client = connect(settings)
        again, fresh = deploy(client, settings)
        assert not fresh
        assert Electra.of(client, again).stations.station(token_id).charger_id == "CP-CTRL-C"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
