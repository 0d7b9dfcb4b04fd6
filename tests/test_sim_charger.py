"""Simulated chargers (OCPP 1.6J and 2.0.1) against the real central system over websockets on
127.0.0.1, admitted by their charger NFT on a real anvil, with Basic auth, on a compressed clock."""

from __future__ import annotations

import asyncio
import itertools
import json
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from sqlalchemy import select
from sqlalchemy.orm import Session

from electra.chain.bindings import Electra
from electra.chain.keys import dev_account
from electra.domain.station import StationSpec
from electra.metering import verify_ocmf
from electra.ocpp.commands import Commands
from electra.ocpp.directory import ChainChargerDirectory
from electra.ocpp.gateway import CentralSystem, CsmsStore
from electra.sim import ChargerIdentity, SimCharger, SimClock, make_charger
from electra.store.models import MeterValueRecord, OcppMessage, SessionRecord
from tests.certs import cert_files

VERSIONS = ["1.6", "2.0.1"]
OWNER = dev_account(1)
RFID = "1A2B3C4D"


def device_for(name: str) -> LocalAccount:
    return Account.from_key(keccak(b"electra-test-sim-device:" + name.encode()))


def register(electra: Electra, charger_id: str, device: LocalAccount, power_w: int = 22_000) -> int:
    spec = StationSpec(charger_id, 52_000_000, 13_000_000, power_w, 2, 3, b"DEELC")
    return electra.stations.register(spec, device, owner=OWNER)[0]


@asynccontextmanager
async def csms(
    electra: Electra, tmp_path: Path, clock: SimClock, heartbeat_s: int = 60, profile: int = 1
) -> AsyncIterator[CentralSystem]:
    store = CsmsStore.open(f"sqlite:///{tmp_path}/csms.db", clock=clock.now)
    system = CentralSystem(
        ChainChargerDirectory(electra.stations, ttl_s=0),
        store,
        port=0,
        security_profile=profile,
        heartbeat_interval_s=heartbeat_s,
        clock=clock.now,
    )
    await system.start()
    try:
        yield system
    finally:
        await system.stop()


@asynccontextmanager
async def running(charger: SimCharger, boot: bool = True) -> AsyncIterator[SimCharger]:
    task = asyncio.create_task(charger.run())
    try:
        if boot:
            await charger.wait_booted(5)
        yield charger
    finally:
        await charger.stop(flush_timeout_s=2)
        await asyncio.wait_for(task, 5)


async def until(check: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """Waits for check() to hold; the timeout is generous (a busy 2-core machine), not a speed test."""

    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout_s)


def sim_for(
    electra: Electra,
    system: CentralSystem,
    clock: SimClock,
    version: str,
    charger_id: str,
    *,
    connectors: int = 1,
    config: dict[str, str] | None = None,
    password: str | None = "",
) -> SimCharger:
    device = device_for(charger_id)
    register(electra, charger_id, device)
    if password == "":
        password = system.store.credentials.rotate(charger_id)
    identity = ChargerIdentity(charger_id, bytes(device.key), connectors=connectors)
    url = f"ws://127.0.0.1:{system.port}"
    return make_charger(version, identity, url, clock, password=password, config=config, response_timeout_s=3)


def logged(system: CentralSystem, charger_id: str) -> list[tuple[str, dict[str, Any]]]:
    with Session(system.store.engine) as s:
        rows = s.scalars(select(OcppMessage).where(OcppMessage.charger_id == charger_id).order_by(OcppMessage.id))
        return [(r.action, json.loads(r.payload)[3]) for r in rows]  # the raw CALL frame


def signed_texts(messages: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Every OCMF record in the transaction messages, in the order the CSMS received them."""
    out = []
    for _action, payload in messages:
        for mv in payload.get("meterValue", []) + payload.get("transactionData", []):
            for sv in mv["sampledValue"]:
                if sv.get("format") == "SignedData":
                    out.append(sv["value"])
                if "signedMeterValue" in sv:
                    out.append(sv["signedMeterValue"]["signedMeterData"])
    return out


def db_session(system: CentralSystem, charger_id: str) -> SessionRecord:
    with Session(system.store.engine) as s:
        rows = list(s.scalars(select(SessionRecord).where(SessionRecord.charger_id == charger_id)))
        assert len(rows) == 1, rows
        s.expunge_all()
        return rows[0]


def meter_rows(system: CentralSystem, session_id: int) -> list[MeterValueRecord]:
    with Session(system.store.engine) as s:
        rows = list(
            s.scalars(
                select(MeterValueRecord)
                .where(MeterValueRecord.session_id == session_id)
                .order_by(MeterValueRecord.timestamp_ms)
            )
        )
        s.expunge_all()
        return rows


@pytest.mark.parametrize("version", VERSIONS)
def test_boot_heartbeat_and_status(electra: Electra, tmp_path: Path, version: str) -> None:
    clock = SimClock(speed=300)
    cid = f"SIM-BOOT-{version}"

    async def body() -> None:
        async with csms(electra, tmp_path, clock, heartbeat_s=30) as system:
            sim = sim_for(electra, system, clock, version, cid, connectors=2)
            async with running(sim):
                assert sim.registration == "Accepted"
                assert sim.heartbeat_interval_s == 30  # taken from the BootNotification answer
                await until(lambda: sim.answered["Heartbeat"] >= 3)  # 30 sim s = 0.1 real s each
                await until(lambda: system.live[cid].connectors == {1: "Available", 2: "Available"})
                assert system.live[cid].booted
                assert sim.answered["StatusNotification"] == 2
                actions = [a for a, _ in logged(system, cid)]
                assert actions[0] == "BootNotification"
                assert actions.count("Heartbeat") >= 3
            assert sim.errors == []

    asyncio.run(body())


def test_wrong_password_is_refused(electra: Electra, tmp_path: Path) -> None:
    clock = SimClock(speed=60)

    async def body() -> None:
        async with csms(electra, tmp_path, clock) as system:
            sim = sim_for(electra, system, clock, "2.0.1", "SIM-BADPW", password="x" * 20)
            async with running(sim, boot=False):
                await until(lambda: sim.connect_failures >= 2)
                assert not sim.booted.is_set()
                assert "401" in sim.errors[0]

    asyncio.run(body())


@pytest.mark.parametrize("version", VERSIONS)
def test_full_session_with_signed_readings(electra: Electra, tmp_path: Path, version: str) -> None:
    clock = SimClock(speed=600)
    cid = f"SIM-SESSION-{version}"

    async def body() -> None:
        async with csms(electra, tmp_path, clock) as system:
            system.store.tokens.issue(RFID, owner=dev_account(2).address)
            sim = sim_for(electra, system, clock, version, cid)
            async with running(sim):
                # 3000 Wh at 22 kW: 491 sim s, under a real second; a reading every 60 sim s.
                tx = await sim.start_session(1, RFID, demand_wh=3_000)
                assert tx is not None
                await until(lambda: tx.completed)
                await sim.wait_flushed(15)
                rejected = await sim.start_session(1, "DEADBEEF")  # never issued
                assert rejected is None and sim.sessions_rejected == 1
                assert sim.connectors[1].status == "Available"
            record = db_session(system, cid)
            rows = meter_rows(system, record.id)
            begin_records = [
                verify_ocmf(text, sim.signer.public_key_der).readings[0]
                for text in signed_texts(logged(system, cid))
                if '"TX":"B"' in text
            ]
        assert sim.errors == []
        assert tx.delivered_wh == 3_000 and tx.energy_wh == 3_000 and tx.stop_reason == "EVDisconnected"
        assert (record.status, record.energy_wh, record.id_token) == ("completed", 3_000, RFID)
        assert (record.meter_start_wh, record.meter_stop_wh) == (tx.meter_start_wh, tx.meter_stop_wh)
        assert record.started_at_ms == tx.started_ms and record.stopped_at_ms == tx.stopped_ms
        if version == "2.0.1":
            assert record.transaction_uid == tx.local_id
        else:
            assert record.id == tx.csms_id
        assert len(rows) >= 8  # begin, ~8 periodic readings, end
        assert [r.register_wh for r in rows] == sorted(r.register_wh for r in rows)
        device = electra.stations.station(electra.stations.token_id_of(cid)).device
        signed = [r for r in rows if r.signed_data]
        assert len(signed) >= 8
        for r in signed:
            ocmf = verify_ocmf(r.signed_data or "", sim.signer.public_key_der, expected_address=device)
            assert ocmf.readings[0].energy_wh == r.register_wh
            assert ocmf.readings[0].time_ms == r.timestamp_ms
            assert ocmf.identification == RFID
            if version == "2.0.1":
                assert r.public_key == sim.signer.public_key_hex
        reasons = [verify_ocmf(r.signed_data or "", sim.signer.public_key_der).readings[0].reason for r in signed]
        assert set(reasons[:-1]) <= {"B", "C"} and reasons[-1] == "E"
        # The begin reading went out signed (the CSMS may keep its own unsigned start row instead).
        assert begin_records  # in MeterValues / TransactionEvent Started, and 1.6's transactionData
        assert all(r.energy_wh == tx.meter_start_wh and r.time_ms == tx.started_ms for r in begin_records)

    asyncio.run(body())


@pytest.mark.parametrize("version", VERSIONS)
def test_answers_the_central_systems_commands(electra: Electra, tmp_path: Path, version: str) -> None:
    clock = SimClock(speed=600)
    cid = f"SIM-CMD-{version}"
    v16 = version == "1.6"

    async def body() -> None:
        async with csms(electra, tmp_path, clock) as system:
            system.store.tokens.issue(RFID, owner=dev_account(2).address)
            sim = sim_for(electra, system, clock, version, cid, connectors=2)
            cmd = Commands(system)
            async with running(sim):
                await until(lambda: system.live[cid].booted)
                # Remote start on the connector where a vehicle waits.
                sim.plug_in(2)
                assert (await cmd.remote_start(cid, RFID))["status"] == "Accepted"
                await until(lambda: bool(sim.sessions) and sim.sessions[0].start_acked)
                tx = sim.sessions[0]
                assert (tx.connector_id, tx.remote, tx.id_tag) == (2, True, RFID)
                assert (await cmd.remote_start(cid, RFID, connector_id=2))["status"] == "Rejected"  # busy

                # A power cap: the register then grows at 7 kW (within 1 Wh per reading, carried exactly).
                assert (await cmd.set_charging_profile(cid, 7_000, connector_id=2))["status"] == "Accepted"
                assert sim.power_w(sim.connectors[2]) == 7_000 and sim.power_w(sim.connectors[1]) == 22_000
                capped_from = len(tx.signed)
                await until(lambda: len(tx.signed) >= capped_from + 3)
                for (t1, wh1, _, _), (t2, wh2, _, _) in itertools.pairwise(tx.signed[capped_from:]):
                    assert abs((wh2 - wh1) - 7_000 * (t2 - t1) / 3_600_000) <= 1

                # Configuration: known, unknown and read-only keys.
                if v16:
                    got = await cmd.get_config(cid, ["HeartbeatInterval", "NoSuchKey"])
                    assert got["configuration_key"] == [{"key": "HeartbeatInterval", "readonly": False, "value": "60"}]
                    assert got["unknown_key"] == ["NoSuchKey"]
                    assert (await cmd.set_config(cid, "MeterValueSampleInterval", "30"))["status"] == "Accepted"
                    assert (await cmd.set_config(cid, "NumberOfConnectors", "5"))["status"] == "Rejected"
                    assert (await cmd.set_config(cid, "NoSuchKey", "1"))["status"] == "NotSupported"
                else:
                    got = await cmd.get_config(cid, ["OCPPCommCtrlr.HeartbeatInterval", "OCPPCommCtrlr.Nope", "X.Y"])
                    statuses = [(r["attribute_status"], r.get("attribute_value")) for r in got["get_variable_result"]]
                    assert statuses == [("Accepted", "60"), ("UnknownVariable", None), ("UnknownComponent", None)]
                    ok = await cmd.set_config(cid, "SampledDataCtrlr.TxUpdatedInterval", "30")
                    bad = await cmd.set_config(cid, "SampledDataCtrlr.TxUpdatedInterval", "soon")
                    assert ok["set_variable_result"][0]["attribute_status"] == "Accepted"
                    assert bad["set_variable_result"][0]["attribute_status"] == "Rejected"
                assert sim.config["MeterValueSampleInterval"] == "30"

                # TriggerMessage: answered first, then the message follows.
                before = sim.answered["StatusNotification"]
                assert (await cmd.trigger(cid, "StatusNotification", connector_id=1))["status"] == "Accepted"
                await until(lambda: sim.answered["StatusNotification"] == before + 1)
                other = "DiagnosticsStatusNotification" if v16 else "LogStatusNotification"
                assert (await cmd.trigger(cid, other))["status"] == "NotImplemented"
                boot = (await cmd.trigger(cid, "BootNotification"))["status"]
                assert boot == ("Accepted" if v16 else "Rejected")  # 2.0.1 F06.FR.17: already accepted

                # DataTransfer both ways.
                pong = await cmd.data_transfer(cid, "org.electra.sim", "ping", "hello")
                assert (pong["status"], pong["data"]) == ("Accepted", "hello")
                assert (await cmd.data_transfer(cid, "com.other", None, None))["status"] == "UnknownVendorId"
                assert await sim.data_transfer("org.electra", "ping", "hi") == ("Accepted", "hi")

                # Remote stop, then a hard reset: the charger reconnects and boots again.
                tx_ref = str(tx.csms_id) if v16 else tx.local_id
                assert (await cmd.remote_stop(cid, tx_ref))["status"] == "Accepted"
                await until(lambda: tx.completed)
                boots, connects = sim.boots, sim.connects
                assert (await cmd.reset(cid, hard=True))["status"] == "Accepted"
                await until(lambda: sim.connects == connects + 1 and sim.booted.is_set())
                assert sim.boots > boots
                await sim.wait_flushed(15)
            record = db_session(system, cid)
            boots_logged = [p for a, p in logged(system, cid) if a == "BootNotification"]
        assert sim.errors == []
        assert (record.status, record.stop_reason, record.energy_wh) == ("completed", "Remote", tx.energy_wh)
        assert tx.energy_wh > 0
        if not v16:
            assert [p["reason"] for p in boots_logged] == ["PowerUp", "RemoteReset"]
        else:
            assert len(boots_logged) == 3  # power-up, triggered, after the reset

    asyncio.run(body())


TX_ACTIONS = {"StartTransaction", "MeterValues", "StopTransaction", "TransactionEvent"}


def event_time(action: str, payload: dict[str, Any]) -> str:
    return payload["meterValue"][0]["timestamp"] if action == "MeterValues" else payload["timestamp"]


@pytest.mark.parametrize("version", VERSIONS)
def test_offline_queue_replays_in_order_with_original_timestamps(
    electra: Electra, tmp_path: Path, version: str
) -> None:
    clock = SimClock(speed=600)
    cid = f"SIM-OFFLINE-{version}"

    async def body() -> None:
        async with csms(electra, tmp_path, clock) as system:
            system.store.tokens.issue(RFID, owner=dev_account(2).address)
            sim = sim_for(electra, system, clock, version, cid)
            async with running(sim):
                first = await sim.start_session(1, RFID)
                assert first is not None
                await until(lambda: len(first.signed) >= 3)
                await sim.wait_flushed(15)
                online_sent = sum(sim.sent.values())

                sim.go_offline()
                await until(lambda: not sim.connected)
                await until(lambda: len(first.signed) >= 6)  # readings taken while offline
                sim.stop_session(1, "Local")
                second = await sim.start_session(1, RFID)  # authorized offline (LocalAuthorizeOffline)
                assert second is not None and not second.start_acked
                await until(lambda: len(second.signed) >= 3)
                sim.stop_session(1, "Local")
                await clock.sleep(120)  # offline long enough for the CSMS to see the start as old
                queued = [(m.action, m.created_ms, m.offline) for m in sim.queued]
                assert sum(sim.sent.values()) == online_sent  # nothing went out while offline

                sim.go_online()
                await sim.wait_flushed(5)
                received = [(a, p) for a, p in logged(system, cid) if a in TX_ACTIONS]
            with Session(system.store.engine) as s:
                records = list(s.scalars(select(SessionRecord).where(SessionRecord.charger_id == cid)))
                s.expunge_all()
        assert sim.errors == []
        assert len(queued) >= 8 and all(offline for _, _, offline in queued)
        assert [t for _, t, _ in queued] == sorted(t for _, t, _ in queued)
        # The replayed tail is the queue, in order, each with the time it happened (not the replay time).
        tail = received[-len(queued) :]
        assert [a for a, _ in tail] == [a for a, _, _ in queued]
        assert [event_time(a, p) for a, p in tail] == [clock.iso(t) for _, t, _ in queued]
        times = [event_time(a, p) for a, p in received]
        assert times == sorted(times)
        if version == "2.0.1":
            assert all(p.get("offline") is True for _, p in tail)
            for tx in (first, second):
                seqs = [p["seqNo"] for _, p in received if p["transactionInfo"]["transactionId"] == tx.local_id]
                assert seqs == list(range(len(seqs)))
        else:
            # MeterValues/StopTransaction of the offline session carry the id the replayed start got back.
            ids = {p.get("transactionId") for a, p in tail if a != "StartTransaction"}
            assert ids == {first.csms_id, second.csms_id}
        assert first.completed and second.completed
        by_start = {r.started_at_ms: r for r in records}
        for tx in (first, second):
            r = by_start[tx.started_ms]
            assert (r.status, r.energy_wh, r.meter_stop_wh) == ("completed", tx.energy_wh, tx.meter_stop_wh)
            assert tx.energy_wh > 0
        assert by_start[second.started_ms].offline and not by_start[first.started_ms].offline

    asyncio.run(body())


@pytest.mark.parametrize("version", VERSIONS)
def test_faults_reach_the_central_system(electra: Electra, tmp_path: Path, version: str) -> None:
    clock = SimClock(speed=600)
    cid = f"SIM-FAULT-{version}"

    async def body() -> None:
        async with csms(electra, tmp_path, clock) as system:
            system.store.tokens.issue(RFID, owner=dev_account(2).address)
            sim = sim_for(electra, system, clock, version, cid, connectors=2)
            async with running(sim):
                # Connector 1: the meter register jumps back mid-session.
                backwards = await sim.start_session(1, RFID)
                assert backwards is not None
                await until(lambda: len(backwards.signed) >= 3)
                n, highest = len(backwards.signed), backwards.signed[-1][1]
                assert sim.meter_jump_back(1, 500) < highest
                await until(lambda: len(backwards.signed) >= n + 2)
                assert backwards.signed[n][1] < highest  # the CSMS sees the register go down
                sim.stop_session(1, "Local")
                # Connector 2: a ground fault ends the session and leaves the connector Faulted.
                faulted = await sim.start_session(2, RFID)
                assert faulted is not None
                await until(lambda: len(faulted.signed) >= 2)
                sim.fault(2, "GroundFailure")
                await sim.wait_flushed(15)
                await until(lambda: system.live[cid].connectors.get(2) == "Faulted")
                assert sim.connectors[2].tx is None and faulted.stop_reason == "Other"
                assert await sim.start_session(2, RFID) is None  # a faulted connector starts nothing
                sim.clear_fault(2)
                await until(lambda: system.live[cid].connectors.get(2) == "Available")
            with Session(system.store.engine) as s:
                records = {r.connector_id: r for r in s.scalars(select(SessionRecord))}
                s.expunge_all()
            statuses = [p for a, p in logged(system, cid) if a == "StatusNotification"]
        assert "meter_backwards" in records[1].flags
        assert records[2].status == "completed" and records[2].energy_wh == faulted.energy_wh
        if version == "1.6":
            assert {"connectorId": 2, "status": "Faulted", "errorCode": "GroundFailure"}.items() <= next(
                p for p in statuses if p["status"] == "Faulted"
            ).items()
            assert records[2].stop_reason == "Other"
        else:
            assert any(p["connectorStatus"] == "Faulted" and p["evseId"] == 2 for p in statuses)

    asyncio.run(body())


def self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A certificate for 127.0.0.1: the server's TLS context and a client context trusting it."""
    cert_file, key_file = cert_files(tmp_path)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    return server, ssl.create_default_context(cafile=str(cert_file))


@pytest.mark.parametrize("version", VERSIONS)
def test_tls_with_basic_auth(electra: Electra, tmp_path: Path, version: str) -> None:
    server_tls, client_tls = self_signed(tmp_path)
    clock = SimClock(speed=600)
    cid = f"SIM-TLS-{version}"

    async def body() -> None:
        store = CsmsStore.open(f"sqlite:///{tmp_path}/csms.db", clock=clock.now)
        system = CentralSystem(
            ChainChargerDirectory(electra.stations, ttl_s=0),
            store,
            port=0,
            security_profile=2,
            ssl_context=server_tls,
            clock=clock.now,
        )
        await system.start()
        try:
            device = device_for(cid)
            register(electra, cid, device)
            password = store.credentials.rotate(cid)
            identity = ChargerIdentity(cid, bytes(device.key))
            url = f"wss://127.0.0.1:{system.port}"
            sim = make_charger(version, identity, url, clock, password=password, ssl=client_tls)
            assert sim.url == f"wss://127.0.0.1:{system.port}/ocpp/{cid}"
            async with running(sim):
                assert system.live[cid].booted
            plain = make_charger(version, identity, url.replace("wss", "ws"), clock, password=password)
            async with running(plain, boot=False):
                await until(lambda: plain.connect_failures >= 1)  # no TLS, no entry
                assert not plain.booted.is_set()
        finally:
            await system.stop()
        assert sim.errors == []

    asyncio.run(body())


@pytest.mark.parametrize("version", VERSIONS)
def test_soft_reset_ends_sessions_and_reboots(electra: Electra, tmp_path: Path, version: str) -> None:
    """1.6 Soft: stop the session (SoftReset) and reboot. 2.0.1 OnIdle: Scheduled until the session ends."""
    clock = SimClock(speed=600)
    cid = f"SIM-RESET-{version}"

    async def body() -> None:
        async with csms(electra, tmp_path, clock) as system:
            system.store.tokens.issue(RFID, owner=dev_account(2).address)
            sim = sim_for(electra, system, clock, version, cid)
            cmd = Commands(system)
            async with running(sim):
                tx = await sim.start_session(1, RFID)
                assert tx is not None
                await until(lambda: tx.start_acked)
                connects = sim.connects
                answer = (await cmd.reset(cid, hard=False))["status"]
                if version == "1.6":
                    assert answer == "Accepted"
                    await until(lambda: tx.completed and sim.connects == connects + 1 and sim.online)
                    assert tx.stop_reason == "SoftReset"
                else:
                    assert answer == "Scheduled"
                    await clock.sleep(300)
                    assert sim.connects == connects and tx.stopped_ms is None  # waits for the session
                    sim.stop_session(1, "Local")
                    await until(lambda: tx.completed and sim.connects == connects + 1 and sim.online)
                await sim.wait_flushed(15)
            record = db_session(system, cid)
        assert sim.errors == []
        assert record.status == "completed"
        assert record.stop_reason == ("SoftReset" if version == "1.6" else "Local")

    asyncio.run(body())
