"""The central system over real websockets on 127.0.0.1, with chargers admitted by their NFT on a
real anvil, for OCPP 1.6J and 2.0.1."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from ocpp.v16 import ChargePoint as Cp16
from ocpp.v16 import call as call16
from ocpp.v201 import ChargePoint as Cp201
from ocpp.v201 import call as call201
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from electra.chain.bindings import Electra
from electra.chain.keys import dev_account
from electra.domain.station import StationSpec
from electra.ocpp.auth import basic_auth_header
from electra.ocpp.directory import ChainChargerDirectory
from electra.ocpp.gateway import CentralSystem, CsmsStore


def register(electra: Electra, charger_id: str) -> int:
    spec = StationSpec(charger_id, 52_000_000, 13_000_000, 22_000, 2, 3, b"DEELC")
    return electra.stations.register(spec, Account.create(), owner=dev_account(1))[0]


async def with_system(electra: Electra, body: Any, tmp_path: Path) -> Any:
    store = CsmsStore.open(f"sqlite:///{tmp_path}/csms.db")
    system = CentralSystem(ChainChargerDirectory(electra.stations, ttl_s=0), store, port=0, security_profile=0)
    await system.start()
    try:
        return await body(system, f"ws://127.0.0.1:{system.port}/ocpp/")
    finally:
        await system.stop()


async def boot16(url: str, charger_id: str) -> Any:
    async with connect(url + charger_id, subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "ocpp1.6"
        cp = Cp16(charger_id, ws)
        task = asyncio.create_task(cp.start())
        try:
            boot = await cp.call(call16.BootNotification(charge_point_model="Wallbox", charge_point_vendor="Acme"))
            hb = await cp.call(call16.Heartbeat())
            await cp.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
            return boot, hb
        finally:
            task.cancel()


async def boot201(url: str, charger_id: str, password: str | None = None) -> Any:
    headers = {"Authorization": basic_auth_header(charger_id, password)} if password else None
    async with connect(
        url + charger_id,
        subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
        additional_headers=headers,
    ) as ws:
        assert ws.subprotocol == "ocpp2.0.1"
        cp = Cp201(charger_id, ws)
        task = asyncio.create_task(cp.start())
        try:
            boot = await cp.call(
                call201.BootNotification(charging_station={"model": "DC150", "vendor_name": "Acme"}, reason="PowerUp")
            )
            hb = await cp.call(call201.Heartbeat())
            return boot, hb
        finally:
            task.cancel()


@pytest.mark.parametrize("boot", [boot16, boot201], ids=["ocpp1.6", "ocpp2.0.1"])
def test_registered_charger_is_accepted(electra: Electra, boot: Any, tmp_path: Path) -> None:
    register(electra, "CP-OCPP-1")

    async def body(system: CentralSystem, url: str) -> Any:
        result = await boot(url, "CP-OCPP-1")
        await asyncio.sleep(0.05)  # let the server notice the close
        return result, dict(system.live)

    (boot_result, hb), live_after = asyncio.run(with_system(electra, body, tmp_path))
    assert live_after == {}, "a closed connection leaves no live entry behind"
    assert boot_result.status == "Accepted"
    assert boot_result.interval == 300
    assert hb.current_time.endswith("Z")


@pytest.mark.parametrize("version", ["ocpp1.6", "ocpp2.0.1"])
def test_unknown_charger_is_refused_at_the_handshake(electra: Electra, version: str, tmp_path: Path) -> None:
    async def body(system: CentralSystem, url: str) -> int:
        with pytest.raises(InvalidStatus) as e:
            async with connect(url + "CP-NOBODY", subprotocols=[version]):  # type: ignore[list-item]
                pass
        return e.value.response.status_code

    assert asyncio.run(with_system(electra, body, tmp_path)) == 404


def test_deactivated_charger_is_refused_and_rejected(electra: Electra, tmp_path: Path) -> None:
    token_id = register(electra, "CP-OCPP-OFF")

    async def body(system: CentralSystem, url: str) -> tuple[int, str]:
        # Connected while active; deactivated before it boots: BootNotification is Rejected.
        async with connect(url + "CP-OCPP-OFF", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
            cp = Cp16("CP-OCPP-OFF", ws)
            task = asyncio.create_task(cp.start())
            await asyncio.to_thread(electra.stations.deactivate, token_id, dev_account(1))
            boot = await cp.call(call16.BootNotification(charge_point_model="W", charge_point_vendor="A"))
            task.cancel()
        with pytest.raises(InvalidStatus) as e:
            async with connect(url + "CP-OCPP-OFF", subprotocols=["ocpp1.6"]):  # type: ignore[list-item]
                pass
        return e.value.response.status_code, boot.status

    status_code, boot_status = asyncio.run(with_system(electra, body, tmp_path))
    assert boot_status == "Rejected"
    assert status_code == 403


def test_bad_paths_and_missing_subprotocol(electra: Electra, tmp_path: Path) -> None:
    register(electra, "CP-OCPP-2")

    async def body(system: CentralSystem, url: str) -> list[int]:
        codes = []
        for target, protos in [
            (url + "CP-OCPP-2", ["ocpp1.5"]),
            (url.replace("/ocpp/", "/other/") + "CP-OCPP-2", ["ocpp1.6"]),
            (url + "bad%20id", ["ocpp1.6"]),
        ]:
            with pytest.raises(InvalidStatus) as e:
                async with connect(target, subprotocols=protos):  # type: ignore[arg-type]
                    pass
            codes.append(e.value.response.status_code)
        return codes

    assert asyncio.run(with_system(electra, body, tmp_path)) == [400, 404, 400]


def test_electra_csms_command_serves_registered_chargers(electra: Electra, chain_settings: Any) -> None:
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import free_port

    register(electra, "CP-OCPP-CLI")
    port = free_port()
    env = {
        **os.environ,
        "ELECTRA_DATA_DIR": str(chain_settings.data_dir),
        "ELECTRA_DEV_CHAIN_PORT": str(chain_settings.dev_chain_port),
    }
    made = subprocess.run(
        [sys.executable, "-m", "electra.cli.main", "ocpp", "password", "CP-OCPP-CLI", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    password = json.loads(made.stdout)["password"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "electra.cli.main", "csms", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert "OCPP central system on ws://127.0.0.1:" in proc.stdout.readline()
        url = f"ws://127.0.0.1:{port}/ocpp/"
        with pytest.raises(InvalidStatus) as e:
            asyncio.run(boot201(url, "CP-OCPP-CLI"))  # security profile 1 by default: no password, no entry
        assert e.value.response.status_code == 401
        boot, _ = asyncio.run(boot201(url, "CP-OCPP-CLI", password))
        assert boot.status == "Accepted"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
