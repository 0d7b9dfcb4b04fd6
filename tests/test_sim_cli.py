"""`electra sim` end to end: it provisions its fleet on a real anvil and in the central system's
store, runs it against the real central system, and stops cleanly on Ctrl-C with a summary."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from electra.chain.bindings import Electra
from electra.config import Settings
from electra.ocpp.directory import ChainChargerDirectory
from electra.ocpp.gateway import CentralSystem, CsmsStore
from electra.sim.scenario import build_scenario, charger_account
from tests.conftest import free_port

SPEED = 300


@contextmanager
def csms_in_thread(electra: Electra, settings: Settings) -> Iterator[CentralSystem]:
    """The central system on its own event loop, on the store the CLI provisions into."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    system = CentralSystem(
        ChainChargerDirectory(electra.stations, ttl_s=0),
        CsmsStore.open(settings.effective_db_url),
        port=free_port(),
        security_profile=1,
    )
    asyncio.run_coroutine_threadsafe(system.start(), loop).result(10)
    try:
        yield system
    finally:
        asyncio.run_coroutine_threadsafe(system.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_electra_sim_provisions_runs_and_stops_on_ctrl_c(electra: Electra, chain_settings: Settings) -> None:
    args = ["--chargers", "3", "--speed", str(SPEED), "--duration", "20", "--seed", "910", "--prefix", "SIMCLI"]
    scenario = build_scenario(910, 3, mix=0.5, duration_s=20 * SPEED, prefix="SIMCLI")
    # Interrupt once the first vehicle has had a few simulated minutes at its charger.
    interrupt_after_s = (scenario.arrivals[0].at_ms / 1000 + 300) / SPEED
    assert interrupt_after_s < 8
    env = {
        **os.environ,
        "ELECTRA_DATA_DIR": str(chain_settings.data_dir),
        "ELECTRA_DEV_CHAIN_PORT": str(chain_settings.dev_chain_port),
    }
    with csms_in_thread(electra, chain_settings) as system:
        url = f"ws://127.0.0.1:{system.port}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "electra.cli.main", "sim", *args, "--url", url, "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stderr is not None
            seen = ""
            while "simulating" not in seen:
                line = proc.stderr.readline()
                assert line, f"electra sim ended early: {seen}"
                seen += line
            time.sleep(interrupt_after_s)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        live_after = dict(system.live)
    assert proc.returncode == 0, seen + err
    assert "provisioned: 3 charger NFTs and 6 vehicles registered" in " ".join(seen.split())
    summary: dict[str, Any] = json.loads(out)
    assert summary["interrupted"] is True
    assert (summary["chargers"], summary["vehicles"]) == (3, 6)
    assert summary["versions"] == scenario.versions
    assert summary["errors"] == []
    assert summary["sessions_started"] >= 1
    assert summary["sessions_completed"] == summary["sessions_started"]  # ended and delivered on Ctrl-C
    assert all(s["stop_reason"] for s in summary["sessions"])
    assert summary["messages_by_action"]["BootNotification"] == 3
    assert 0 < summary["sim_s"] < 20 * SPEED
    assert live_after == {}, "every simulated charger hung up"
    for plan in scenario.chargers:
        token_id = electra.stations.token_id_of(plan.charger_id)
        assert electra.stations.station(token_id).device == charger_account(910, plan.index).address
