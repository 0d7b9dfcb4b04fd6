"""A central system killed with SIGKILL in the middle of sessions loses nothing and double-counts
nothing: what it answered is durable, and what it did not answer the charger sends again."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from eth_account import Account
from sqlalchemy import create_engine, text
from websockets.asyncio.client import connect

from electra.chain.bindings import Electra
from electra.chain.keys import dev_account
from electra.config import Settings
from electra.domain.station import StationSpec
from tests.conftest import free_port

T = "2026-11-22T10:{:02d}:00Z"


def start_csms(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "electra.cli.main", "csms", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "OCPP central system on" in line, line
    return proc


async def call(ws: Any, message_id: str, action: str, payload: dict[str, Any]) -> Any:
    await ws.send(json.dumps([2, message_id, action, payload]))
    answer = json.loads(await ws.recv())
    assert answer[0] == 3, answer
    assert answer[1] == message_id
    return answer[2]


def test_sigkill_mid_session_then_retransmit(electra: Electra, chain_settings: Settings, tmp_path: Path) -> None:
    spec = StationSpec("CP-CRASH", 52_000_000, 13_000_000, 22_000, 2, 1, b"DEELC")
    electra.stations.register(spec, Account.create(), owner=dev_account(1))
    db = tmp_path / "crash.db"
    env = {
        **os.environ,
        "ELECTRA_DATA_DIR": str(tmp_path / "data"),
        "ELECTRA_DB_URL": f"sqlite:///{db}",
        "ELECTRA_DEV_CHAIN_PORT": str(chain_settings.dev_chain_port),
        "ELECTRA_OCPP_SECURITY_PROFILE": "0",
        "ELECTRA_METER_SIGNING": "optional",  # the raw frames below carry no signed meter data
    }
    # The deployment manifest lives in the chain's data dir: share it.
    (tmp_path / "data").mkdir()
    os.symlink(chain_settings.data_dir / "deployments", tmp_path / "data" / "deployments")
    port = free_port()
    url = f"ws://127.0.0.1:{port}/ocpp/CP-CRASH"
    stop_payload = {"transactionId": 0, "meterStop": 0, "timestamp": T.format(30), "reason": "EVDisconnected"}

    proc = start_csms(env, port)
    try:

        async def first_life() -> int:
            async with connect(url, subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
                await call(ws, "b1", "BootNotification", {"chargePointVendor": "A", "chargePointModel": "B"})
                started = await call(
                    ws,
                    "s1",
                    "StartTransaction",
                    {"connectorId": 1, "idTag": "T1", "meterStart": 1000, "timestamp": T.format(0)},
                )
                tx = int(started["transactionId"])
                mv = [{"timestamp": T.format(m), "sampledValue": [{"value": str(1000 + m * 100)}]} for m in (10, 20)]
                await call(ws, "m1", "MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": mv})
                stop_payload.update(transactionId=tx, meterStop=4000)
                # The stop goes out; the central system dies before the charger reads any answer.
                await ws.send(json.dumps([2, "x1", "StopTransaction", stop_payload]))
                os.kill(proc.pid, signal.SIGKILL)
                return tx

        tx = asyncio.run(first_life())
    finally:
        proc.wait(timeout=30)
        assert proc.stdout is not None
        proc.stdout.close()

    proc = start_csms(env, port)
    try:

        async def second_life() -> tuple[Any, Any]:
            async with connect(url, subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
                await call(ws, "b2", "BootNotification", {"chargePointVendor": "A", "chargePointModel": "B"})
                # Unanswered, so the charger sends it again (OCPP: transaction messages are retried).
                again = await call(ws, "x1", "StopTransaction", stop_payload)
                # And a retransmitted start of the same transaction stays the same transaction.
                restart = await call(
                    ws,
                    "s1",
                    "StartTransaction",
                    {"connectorId": 1, "idTag": "T1", "meterStart": 1000, "timestamp": T.format(0)},
                )
                return again, restart

        again, restart = asyncio.run(second_life())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert again == {}
    assert restart["transactionId"] == tx
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as c:
        sessions = c.execute(text("select id, status, energy_wh, billable_wh from sessions")).all()
        readings = c.execute(text("select register_wh from meter_values order by timestamp_ms")).scalars().all()
    engine.dispose()
    assert [tuple(s) for s in sessions] == [(tx, "completed", 3000, 3000)]
    assert readings == [1000, 2000, 3000, 4000]
