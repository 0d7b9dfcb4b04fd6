"""Wire compatibility: the central system against an OCPP-J client it shares no code with.

The client is ocpp-rpc (JavaScript; its own RPC framing and its own strict JSON schemas for
ocpp1.6 and ocpp2.0.1), run by node from tests/wire/ocpp_client.js against a live central system
with security profile 1 (HTTP Basic auth). It runs a whole charging session, then answers the
central system's own calls, made here through :class:`electra.ocpp.commands.Commands`. Strict mode
means every answer and every CSMS call was also checked against ocpp-rpc's schemas.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from electra.ocpp.commands import Commands
from electra.ocpp.directory import ChargerAdmission, StaticChargerDirectory
from electra.ocpp.gateway import CentralSystem, CsmsStore
from electra.store.models import MeterValueRecord, OcppMessage, SessionRecord, TransactionEventSeen

REPO = Path(__file__).resolve().parents[1]
CLIENT = REPO / "tests" / "wire" / "ocpp_client.js"
CHARGER = "CP-WIRE"
TOKEN = "TAG-WIRE"
VEHICLE = 7
VERSIONS = ["ocpp1.6", "ocpp2.0.1"]


def node() -> str:
    """The node executable, with ocpp-rpc installed next to the repository."""
    exe = shutil.which("node")
    if exe is None:
        pytest.fail("node is not on PATH; run make deps", pytrace=False)
    if not (REPO / "node_modules" / "ocpp-rpc" / "package.json").is_file():
        pytest.fail("node_modules/ocpp-rpc is missing; run make deps", pytrace=False)
    return exe


def open_system(tmp: Path) -> tuple[CentralSystem, str]:
    store = CsmsStore.open(f"sqlite:///{tmp}/csms.db")
    store.tokens.issue(TOKEN, vehicle_id=VEHICLE)
    password = store.credentials.rotate(CHARGER)
    directory = StaticChargerDirectory({CHARGER: ChargerAdmission(CHARGER, 1, True)})
    return CentralSystem(directory, store, port=0, security_profile=1), password


def client_config(system: CentralSystem, mode: str, version: str, password: str | None) -> str:
    endpoint = system.url.rstrip("/")  # ocpp-rpc appends "/" + identity
    return json.dumps(
        {
            "mode": mode,
            "endpoint": endpoint,
            "identity": CHARGER,
            "password": password,
            "protocol": version,
            "token": TOKEN,
        }
    )


def lines(out: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


@dataclass
class WireRun:
    version: str
    summary: dict[str, Any]
    commands: dict[str, dict[str, Any]]
    live_before: dict[str, Any]
    live_after: list[str]
    sessions: list[dict[str, Any]]
    meter_values: list[dict[str, Any]]
    tx_events: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    failed_batches: int


async def _until_gone(system: CentralSystem, charger_id: str) -> None:
    for _ in range(100):
        if charger_id not in system.live:
            return
        await asyncio.sleep(0.05)


async def _commands(system: CentralSystem, version: str) -> dict[str, dict[str, Any]]:
    commands = Commands(system)
    keys = ["HeartbeatInterval", "NoSuchKey"] if version == "ocpp1.6" else ["OCPPCommCtrlr.HeartbeatInterval"]
    return {
        "get_config": await commands.get_config(CHARGER, keys),
        "trigger": await commands.trigger(CHARGER, "Heartbeat"),
        "remote_start": await commands.remote_start(CHARGER, TOKEN, 1),
        "set_charging_profile": await commands.set_charging_profile(CHARGER, 11_000, connector_id=1),
        "reset": await commands.reset(CHARGER),  # last: the client hangs up once it answered Reset
    }


async def _run_session(version: str, tmp: Path) -> WireRun:
    exe = node()
    system, password = open_system(tmp)
    await system.start()
    try:
        proc = await asyncio.create_subprocess_exec(
            exe,
            str(CLIENT),
            client_config(system, "session", version, password),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        try:
            first = await asyncio.wait_for(proc.stdout.readline(), 60)
            if not first or json.loads(first) != {"ready": True}:
                out, err = await asyncio.wait_for(proc.communicate(), 30)
                pytest.fail(f"the client did not finish its session: {first!r} {out!r}\n{err.decode()}")
            live = system.live[CHARGER]
            live_before = {
                "version": live.version,
                "booted": live.booted,
                "vendor": live.vendor,
                "model": live.model,
                "firmware": live.firmware,
                "connectors": dict(live.connectors),
            }
            commands = await _commands(system, version)
            out, err = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.communicate()
        assert proc.returncode == 0, f"{out.decode()}\n{err.decode()}"
        await _until_gone(system, CHARGER)
        live_after = sorted(system.live)
    finally:
        await system.stop()
    store = system.store
    with store.engine.connect() as conn:
        sessions = [dict(r) for r in conn.execute(select(SessionRecord.__table__)).mappings()]
        meter_values = [
            dict(r)
            for r in conn.execute(
                select(MeterValueRecord.__table__).order_by(MeterValueRecord.timestamp_ms, MeterValueRecord.id)
            ).mappings()
        ]
        tx_events = [
            dict(r)
            for r in conn.execute(
                select(TransactionEventSeen.__table__).order_by(TransactionEventSeen.seq_no)
            ).mappings()
        ]
        messages = [dict(r) for r in conn.execute(select(OcppMessage.__table__).order_by(OcppMessage.id)).mappings()]
    store.engine.dispose()
    return WireRun(
        version=version,
        summary=lines(out)[-1],
        commands=commands,
        live_before=live_before,
        live_after=live_after,
        sessions=sessions,
        meter_values=meter_values,
        tx_events=tx_events,
        messages=messages,
        failed_batches=store.writer.failed_batches,
    )


@pytest.fixture(scope="module", params=VERSIONS)
def wire(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> WireRun:
    """One whole ocpp-rpc session per OCPP version, shared by the tests below."""
    version: str = request.param
    return asyncio.run(_run_session(version, tmp_path_factory.mktemp(version)))


def test_the_client_saw_a_conforming_central_system(wire: WireRun) -> None:
    s = wire.summary
    assert s["protocol"] == wire.version
    assert s["strictFailures"] == [], "ocpp-rpc's own schemas refused something the central system sent"
    assert s["boot"]["status"] == "Accepted"
    assert s["boot"]["interval"] == 300
    assert s["heartbeat"]["currentTime"].endswith("Z")
    assert s["status"] == {}
    info = "idTagInfo" if wire.version == "ocpp1.6" else "idTokenInfo"
    assert s["authorizeKnown"] == {info: {"status": "Accepted"}}
    assert s["authorizeUnknown"] == {info: {"status": "Invalid"}}
    if wire.version == "ocpp1.6":
        assert isinstance(s["start"]["transactionId"], int)
        assert s["start"]["idTagInfo"] == {"status": "Accepted"}
        assert s["meterWh"] == {}
        assert s["meterKWh"] == {}
        assert s["stop"] == {"idTagInfo": {"status": "Accepted"}}
    else:
        for step in ("started", "updatedKWh", "updatedMultiplier", "ended"):
            assert s[step] == {"idTokenInfo": {"status": "Accepted"}}, step
    assert s["pingTransfer"] == {"status": "Accepted", "data": "hello"}
    assert s["otherTransfer"] == {"status": "UnknownVendorId"}


def test_calls_the_schema_refuses_get_the_version_s_callerror(wire: WireRun) -> None:
    # Sent with ocpp-rpc's strict mode off for the one call, so the server's check answers.
    extra = "FormationViolation" if wire.version == "ocpp1.6" else "FormatViolation"
    missing = "OccurenceConstraintViolation" if wire.version == "ocpp1.6" else "OccurrenceConstraintViolation"
    codes = [(r["method"], r.get("errorCode")) for r in wire.summary["refused"]]
    assert codes == [
        ("Authorize", "TypeConstraintViolation"),  # an id token of type number
        ("StatusNotification", missing),  # the status field missing
        ("Heartbeat", extra),  # a property the schema does not have
        ("MakeCoffee", "NotImplemented"),
    ]
    assert all("result" not in r for r in wire.summary["refused"])


def test_csms_commands_reach_the_client_and_come_back(wire: WireRun) -> None:
    received = [(r["method"], r["params"]) for r in wire.summary["received"]]
    if wire.version == "ocpp1.6":
        assert [m for m, _ in received] == [
            "GetConfiguration",
            "TriggerMessage",
            "RemoteStartTransaction",
            "SetChargingProfile",
            "Reset",
        ]
        assert received[0][1] == {"key": ["HeartbeatInterval", "NoSuchKey"]}
        assert received[2][1] == {"idTag": TOKEN, "connectorId": 1}
        assert received[3][1]["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"] == [
            {"startPeriod": 0, "limit": 11_000}
        ]
        assert received[4][1] == {"type": "Soft"}
        assert wire.commands["get_config"] == {
            "configuration_key": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}],
            "unknown_key": ["NoSuchKey"],
        }
    else:
        assert [m for m, _ in received] == [
            "GetVariables",
            "TriggerMessage",
            "RequestStartTransaction",
            "SetChargingProfile",
            "Reset",
        ]
        assert received[2][1]["idToken"] == {"idToken": TOKEN, "type": "Central"}
        assert received[2][1]["evseId"] == 1
        assert received[3][1]["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"] == [
            {"startPeriod": 0, "limit": 11_000}
        ]
        assert received[4][1] == {"type": "OnIdle"}
        assert wire.commands["get_config"] == {
            "get_variable_result": [
                {
                    "attribute_status": "Accepted",
                    "attribute_value": "300",
                    "component": {"name": "OCPPCommCtrlr"},
                    "variable": {"name": "HeartbeatInterval"},
                }
            ]
        }
    assert received[1][1]["requestedMessage"] == "Heartbeat"
    for name in ("trigger", "remote_start", "set_charging_profile", "reset"):
        assert wire.commands[name] == {"status": "Accepted"}, name
    # The Heartbeat the client sent because TriggerMessage asked for it was answered too.
    assert len(wire.summary["triggered"]) == 1
    assert wire.summary["triggered"][0]["currentTime"].endswith("Z")
    assert wire.summary["close"] == {"code": 1000, "reason": "wire test done"}


def test_the_central_system_tracked_the_connection(wire: WireRun) -> None:
    assert wire.live_before == {
        "version": wire.version,
        "booted": True,
        "vendor": "WireTest",
        "model": "ocpp-rpc",
        "firmware": "1.0.0",
        "connectors": {1: "Available"},
    }
    assert wire.live_after == [], "the charger hung up: no live entry is left behind"


def test_the_store_holds_the_session_and_its_meter_values(wire: WireRun) -> None:
    assert len(wire.sessions) == 1
    session = wire.sessions[0]
    if wire.version == "ocpp1.6":
        tx = wire.summary["start"]["transactionId"]
        assert session["id"] == tx
        assert session["transaction_uid"] == str(tx)
        assert session["ocpp_version"] == "1.6"
    else:
        assert session["transaction_uid"] == wire.summary["transactionId"]
        assert session["ocpp_version"] == "2.0.1"
    assert session["charger_id"] == CHARGER
    assert session["connector_id"] == 1
    assert session["id_token"] == TOKEN
    assert session["token_status"] == "Accepted"
    assert session["vehicle_id"] == VEHICLE
    assert session["status"] == "completed"
    assert session["stop_reason"] == "Local"
    assert session["offline"] is False
    assert (session["meter_start_wh"], session["meter_stop_wh"]) == (1000, 3000)
    assert session["energy_wh"] == session["meter_stop_wh"] - session["meter_start_wh"] == 2000
    assert session["stopped_at_ms"] - session["started_at_ms"] == 3000

    readings = [(m["register_wh"], m["context"]) for m in wire.meter_values]
    # 1.5 kWh (2.0.1) and "2.25" kWh (1.6) / 2.25 Wh x 10^3 (2.0.1) land as exact Wh.
    middle = [(1500, "Sample.Periodic"), (2250, "Sample.Periodic")]
    assert readings == [(1000, "Transaction.Begin"), *middle, (3000, "Transaction.End")]
    assert {m["session_id"] for m in wire.meter_values} == {session["id"]}
    stamps = [m["timestamp_ms"] for m in wire.meter_values]
    assert stamps == [session["started_at_ms"] + 1000 * i for i in range(4)]
    assert stamps[-1] == session["stopped_at_ms"]
    if wire.version == "ocpp2.0.1":
        assert [(e["seq_no"], e["event_type"]) for e in wire.tx_events] == [
            (0, "Started"),
            (1, "Updated"),
            (2, "Updated"),
            (3, "Ended"),
        ]
    else:
        assert wire.tx_events == []


def test_every_call_the_schema_passed_is_in_the_message_log(wire: WireRun) -> None:
    refused = {r["messageId"] for r in wire.summary["refused"]}
    sent = {(c["messageId"], c["method"]) for c in wire.summary["sent"]}
    logged = [(m["message_id"], m["action"]) for m in wire.messages]
    assert len(logged) == len(set(logged)), "a CALL was logged twice"
    assert set(logged) == {c for c in sent if c[0] not in refused}
    assert {m["charger_id"] for m in wire.messages} == {CHARGER}
    actions = sorted(a for _, a in logged)
    if wire.version == "ocpp1.6":
        per_session = ["MeterValues"] * 2 + ["StartTransaction", "StopTransaction"]
    else:
        per_session = ["TransactionEvent"] * 4
    expected = ["Authorize"] * 2 + ["BootNotification"] + ["DataTransfer"] * 2 + ["Heartbeat"] * 2
    assert actions == sorted([*expected, "StatusNotification", *per_session])
    for m in wire.messages:
        frame = json.loads(m["payload"])
        assert frame[:3] == [2, m["message_id"], m["action"]]
        assert isinstance(frame[3], dict)


def test_the_session_commits_without_a_failed_batch(wire: WireRun) -> None:
    assert wire.failed_batches == 0


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        ("right", {"connected": True, "protocol": "ocpp1.6"}),
        ("wrong", {"connected": False, "status": 401}),
        (None, {"connected": False, "status": 401}),
    ],
    ids=["right-password", "wrong-password", "no-password"],
)
def test_the_handshake_needs_the_charger_s_password(tmp_path: Path, password: str | None, expected: Any) -> None:
    exe = node()

    async def body() -> tuple[dict[str, Any], list[str], int]:
        system, right = open_system(tmp_path)
        given = {"right": right, "wrong": right[::-1] + "x", None: None}[password]
        await system.start()
        try:
            proc = await asyncio.create_subprocess_exec(
                exe,
                str(CLIENT),
                client_config(system, "connect", "ocpp1.6", given),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == 0, err.decode()
            await _until_gone(system, CHARGER)
            return lines(out)[-1], sorted(system.live), system.messages_received
        finally:
            await system.stop()
            system.store.engine.dispose()

    seen, live, received = asyncio.run(body())
    assert {k: seen[k] for k in expected} == expected
    assert live == []
    assert received == 0
