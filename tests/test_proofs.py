"""Proofs and audit end to end on a real anvil: a simulated fleet (OCPP 1.6 and 2.0.1, OCMF-signed
meter values) charges against the real central system, every completed session is billed and
logged, the log is anchored on SessionAnchor, and each session's proof bundle verifies with nothing
but the RPC URL. Then the tampering: each case is caught by the verifier or the audit, which names
the record."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select, text, update
from typer.testing import CliRunner

from electra.chain.anchoring import AnchorWorker
from electra.chain.bindings import Electra
from electra.chain.keys import dev_account
from electra.cli.main import app
from electra.config import Settings
from electra.domain.session_log import BreakKind
from electra.ocpp.directory import ChainChargerDirectory
from electra.ocpp.gateway import CentralSystem, CsmsStore
from electra.payments.service import payments_for
from electra.proofs.audit import audit
from electra.proofs.builder import build_bundle
from electra.proofs.bundle import ProofBundle
from electra.proofs.verifier import verify_bundle
from electra.sim.clock import SimClock
from electra.sim.fleet import Fleet
from electra.sim.provision import provision
from electra.sim.scenario import build_scenario
from electra.store.db import make_engine
from electra.store.models import MeterValueRecord, SessionLogRecord
from electra.store.session_log import LogTampered, SessionLog
from tests.conftest import free_port


@dataclass(frozen=True)
class Charged:
    db: Path  # the golden database: each test works on a copy
    session_ids: list[int]
    batches: int


@pytest.fixture(scope="module")
def charged(session_electra: Electra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Charged]:
    """One fleet run, billed and anchored in batches of 2, on the session's chain. The chain is
    reverted to where it was once the module is done."""
    e = session_electra
    snap = e.client.rpc("evm_snapshot")
    base = tmp_path_factory.mktemp("proofs")
    scenario = build_scenario(23, 4, 6, mix=0.5, duration_s=1_800, offline_rate=0.0, fault_rate=0.0, prefix="PRF")
    clock = SimClock(speed=900)
    store = CsmsStore.open(f"sqlite:///{base}/golden.db", clock=clock.now)
    done = provision(e, scenario, dev_account(1), store.engine)

    async def body() -> None:
        system = CentralSystem(
            ChainChargerDirectory(e.stations, ttl_s=0), store, port=0, security_profile=1, clock=clock.now
        )
        await system.start()
        try:
            fleet = Fleet(scenario, f"ws://127.0.0.1:{system.port}", clock, passwords=done.passwords)
            summary = await fleet.run(flush_timeout_s=3)
            assert summary.errors == [] and summary.sessions_completed >= 3
        finally:
            await system.stop()

    asyncio.run(body())
    payments = payments_for(e, store.engine, max_batch=50, max_age_s=0)
    assert payments.worker.run_once(force=True).errors == []
    log = SessionLog(store.engine)
    report = AnchorWorker(log, e.anchors, max_batch=2, max_age_s=0).run_once(force=True)
    assert report.errors == [] and report.anchored >= 2
    ids = [r.record.session_id for r in log.records()]
    store.engine.dispose()
    yield Charged(base / "golden.db", ids, report.anchored)
    assert e.client.rpc("evm_revert", snap) is True


@pytest.fixture
def engine(charged: Charged, tmp_path: Path) -> Iterator[Engine]:
    path = tmp_path / "copy.db"
    shutil.copy(charged.db, path)
    eng = make_engine(f"sqlite:///{path}")
    yield eng
    eng.dispose()


def rpc(e: Electra) -> str:
    return e.client.rpc_url


def bundle_of(engine: Engine, e: Electra, session_id: int) -> ProofBundle:
    # Through JSON and back, as an outsider receives it.
    return ProofBundle.loads(build_bundle(engine, e, session_id).dumps())


def test_every_session_verifies_with_only_the_rpc_url(
    engine: Engine, charged: Charged, session_electra: Electra
) -> None:
    assert len(charged.session_ids) >= 3
    for sid in charged.session_ids:
        b = bundle_of(engine, session_electra, sid)
        assert b.anchor is not None and b.anchor.contract == session_electra.anchors.address
        assert len(b.meter_data) >= 2, "the simulated chargers sign their begin and end readings"
        v = verify_bundle(b, rpc(session_electra))
        assert v.ok, v.failed()
        assert [c.name for c in v.checks] == [
            "leaf",
            "proof",
            "chain",
            "anchor",
            "contract",
            "transaction",
            "meter data",
            "energy",
        ]
    report = audit(engine, session_electra.anchors, session_electra.stations)
    assert report.ok, [str(b) for b in report.breaks]
    assert report.records == len(charged.session_ids) and report.anchors_checked == charged.batches
    assert report.signed_readings >= 2 * len(charged.session_ids)


def _edit_record(engine: Engine, seq: int, **values: int) -> None:
    with engine.begin() as conn:
        assert conn.execute(update(SessionLogRecord).where(SessionLogRecord.seq == seq).values(**values)).rowcount == 1


@pytest.mark.parametrize("column", ["energy_wh", "amount", "stopped_at_ms"])
def test_a_record_edited_in_the_database_is_caught_and_named(
    engine: Engine, charged: Charged, session_electra: Electra, column: str
) -> None:
    sid = charged.session_ids[1]
    b = build_bundle(engine, session_electra, sid)
    _edit_record(engine, b.seq, **{column: getattr(b.record, column) + 1000})
    v = verify_bundle(build_bundle(engine, session_electra, sid), rpc(session_electra))
    assert not v.ok and {c.name for c in v.failed()} >= {"leaf", "proof", "contract"}
    report = audit(engine, session_electra.anchors, session_electra.stations)
    assert any(x.kind is BreakKind.LEAF_MISMATCH and x.seq == b.seq and x.session_id == sid for x in report.breaks)


def test_a_record_rewritten_with_its_leaf_is_still_caught_by_the_anchored_root(
    engine: Engine, charged: Charged, session_electra: Electra
) -> None:
    """The operator edits the energy and writes the matching leaf: only the chain can tell."""
    sid = charged.session_ids[0]
    b = build_bundle(engine, session_electra, sid)
    forged = replace(b.record, energy_wh=b.record.energy_wh + 5000)
    _edit_record(engine, b.seq, energy_wh=forged.energy_wh)
    with engine.begin() as conn:
        conn.execute(
            update(SessionLogRecord).where(SessionLogRecord.seq == b.seq).values(leaf="0x" + forged.leaf().hex())
        )
    report = audit(engine, session_electra.anchors, session_electra.stations)
    anchored = [x for x in report.breaks if x.kind is BreakKind.ANCHOR_MISMATCH]
    assert anchored and anchored[0].seq is not None and anchored[0].seq <= b.seq
    assert any(
        x.seq == b.seq for x in report.breaks if x.kind is BreakKind.LEAF_MISMATCH
    )  # its event logged the old leaf
    with pytest.raises(LogTampered, match="no longer give its root"):
        build_bundle(engine, session_electra, sid)


def test_a_deleted_record_is_named(engine: Engine, charged: Charged, session_electra: Electra) -> None:
    sid = charged.session_ids[2]
    seq = build_bundle(engine, session_electra, sid).seq
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM session_log_records WHERE seq = :s"), {"s": seq})
    report = audit(engine, session_electra.anchors, session_electra.stations)
    assert any(x.kind is BreakKind.MISSING_RECORD and x.seq == seq for x in report.breaks)
    result = CliRunner().invoke(app, ["verify", str(sid)], env=_env(engine, session_electra))
    assert result.exit_code == 1 and f"session {sid} has no record" in result.output


def test_two_records_reordered_are_named(engine: Engine, charged: Charged, session_electra: Electra) -> None:
    a, b = (build_bundle(engine, session_electra, s).seq for s in charged.session_ids[:2])
    with engine.begin() as conn:  # swap their sequence numbers
        conn.execute(update(SessionLogRecord).where(SessionLogRecord.seq == a).values(seq=-1))
        conn.execute(update(SessionLogRecord).where(SessionLogRecord.seq == b).values(seq=a))
        conn.execute(update(SessionLogRecord).where(SessionLogRecord.seq == -1).values(seq=b))
    report = audit(engine, session_electra.anchors, session_electra.stations)
    named = {x.seq for x in report.breaks if x.kind in (BreakKind.REORDER, BreakKind.LEAF_MISMATCH)}
    assert {a, b} <= named, [str(x) for x in report.breaks]


def test_altered_meter_data_is_caught(engine: Engine, charged: Charged, session_electra: Electra) -> None:
    sid = charged.session_ids[0]
    with engine.begin() as conn:
        row = conn.execute(
            select(MeterValueRecord.id, MeterValueRecord.signed_data)
            .where(MeterValueRecord.session_id == sid, MeterValueRecord.signed_data.is_not(None))
            .order_by(MeterValueRecord.timestamp_ms.desc())
        ).first()
        assert row is not None
        payload = row.signed_data.split("|")[1]
        data = json.loads(payload)
        reading = data["RD"][0]
        from decimal import Decimal

        bumped = Decimal(str(reading["RV"])) + 1  # one kWh more, still three decimals
        data["RD"][0]["RV"] = f"{bumped:.3f}" if isinstance(reading["RV"], str) else float(f"{bumped:.3f}")
        forged = row.signed_data.replace(payload, json.dumps(data, separators=(",", ":")))
        conn.execute(update(MeterValueRecord).where(MeterValueRecord.id == row.id).values(signed_data=forged))
    v = verify_bundle(build_bundle(engine, session_electra, sid), rpc(session_electra))
    assert [c.name for c in v.failed()] == ["meter data"]
    assert "not signed by the charger's device key" in v.failed()[0].detail
    report = audit(engine, session_electra.anchors, session_electra.stations)
    assert [(x.kind, x.session_id) for x in report.breaks] == [(BreakKind.METER_DATA_INVALID, sid)]


def test_a_root_missing_on_chain_is_caught(engine: Engine, charged: Charged, session_electra: Electra) -> None:
    """The chain loses the last anchoring (reverted blocks) while the log still calls it anchored."""
    client = session_electra.client
    log = SessionLog(engine)
    sid = charged.session_ids[-1]
    before = build_bundle(engine, session_electra, sid)
    snap = client.rpc("evm_snapshot")
    try:
        # Anchor a new record on-chain only in blocks that are then undone.
        with engine.begin() as conn:
            r = replace(before.record, session_id=10**9)
            log.append_record(conn, r, before.charger_id)
        inner = client.rpc("evm_snapshot")
        report = AnchorWorker(log, session_electra.anchors, max_batch=10, max_age_s=0).run_once(force=True)
        assert report.anchored == 1
        assert client.rpc("evm_revert", inner) is True
        v = verify_bundle(build_bundle(engine, session_electra, 10**9), rpc(session_electra))
        assert [c.name for c in v.failed()] == ["anchor"] and "the root is missing" in v.failed()[0].detail
        found = audit(engine, session_electra.anchors, session_electra.stations)
        assert [x.kind for x in found.breaks] == [BreakKind.ROOT_MISSING_ON_CHAIN]
        assert before.batch is not None and found.breaks[0].seq == before.batch.last_seq + 1
    finally:
        assert client.rpc("evm_revert", snap) is True


def test_a_proof_from_another_batch_is_refused(engine: Engine, charged: Charged, session_electra: Electra) -> None:
    bundles = [build_bundle(engine, session_electra, s) for s in charged.session_ids]
    a = bundles[0]
    b = next(x for x in bundles if x.anchor and a.anchor and x.anchor.batch_index != a.anchor.batch_index)
    # a's record with b's proof, batch and anchor: as if it were in b's batch.
    forged = replace(a, proof=b.proof, batch=b.batch, anchor=b.anchor, seq=b.seq)
    v = verify_bundle(forged, rpc(session_electra))
    assert {"proof", "contract"} <= {c.name for c in v.failed()}
    # a's record and batch with b's proof only.
    v = verify_bundle(replace(a, proof=b.proof), rpc(session_electra))
    assert {"proof", "contract"} <= {c.name for c in v.failed()}


def test_the_cli_writes_a_bundle_and_verifies_it_offline(
    engine: Engine, charged: Charged, session_electra: Electra, tmp_path: Path
) -> None:
    sid = charged.session_ids[0]
    out = tmp_path / "proof.json"
    env = _env(engine, session_electra)
    r = CliRunner().invoke(app, ["verify", str(sid), "--out", str(out), "--json"], env=env)
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["verified"] is True
    # Offline: no data dir, no database, no deployment: only the RPC URL.
    r = CliRunner().invoke(
        app, ["--data-dir", str(tmp_path / "empty"), "verify", "--offline", str(out), "--rpc-url", rpc(session_electra)]
    )
    assert r.exit_code == 0, r.output
    assert "verified" in r.output and "NOT" not in r.output
    data = json.loads(out.read_text())
    data["record"]["values"]["amount"] = str(int(data["record"]["values"]["amount"]) + 1)
    out.write_text(json.dumps(data))
    r = CliRunner().invoke(app, ["verify", "--offline", str(out), "--rpc-url", rpc(session_electra), "--json"])
    assert r.exit_code == 1 and json.loads(r.output)["verified"] is False
    r = CliRunner().invoke(app, ["audit", "--json"], env=env)
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["ok"] is True


def test_a_malformed_bundle_gets_a_clear_error(tmp_path: Path) -> None:
    out = tmp_path / "bad.json"
    out.write_text('{"format": "electra.session-proof.v1", "record": {"values": {}}}')
    r = CliRunner().invoke(app, ["verify", "--offline", str(out), "--rpc-url", "http://127.0.0.1:9"])
    assert r.exit_code == 1 and "record.leaf_encoding" in r.output
    out.write_text("not json")
    r = CliRunner().invoke(app, ["verify", "--offline", str(out)])
    assert r.exit_code == 1 and "not JSON" in r.output


def _env(engine: Engine, e: Electra) -> dict[str, str]:
    """The CLI pointed at this test's database and the session's dev chain and deployment."""
    settings = _SETTINGS[0]
    return {
        "ELECTRA_DB_URL": str(engine.url),
        "ELECTRA_DATA_DIR": str(settings.data_dir),
        "ELECTRA_DEV_CHAIN_PORT": str(settings.dev_chain_port),
    }


_SETTINGS: list[Settings] = []


@pytest.fixture(autouse=True)
def _chain_settings(chain_settings: Settings) -> None:
    _SETTINGS[:] = [chain_settings]


@pytest.fixture
def api_url(engine: Engine, session_electra: Electra) -> Iterator[str]:
    """The REST API over this test's database, served by a real uvicorn on 127.0.0.1."""
    import threading

    import uvicorn

    from electra.api.app import create_app

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(engine, lambda: session_electra), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.02)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_the_api_serves_the_proof_bundle(api_url: str, charged: Charged, session_electra: Electra) -> None:
    sid = charged.session_ids[0]
    r = httpx.get(f"{api_url}/api/v1/sessions/{sid}/proof", params={"verify": "true"}, timeout=30)
    assert r.status_code == 200
    body = r.json()
    assert body["verification"]["verified"] is True
    bundle = ProofBundle.from_json({k: v for k, v in body.items() if k != "verification"})
    assert bundle.session_id == sid and verify_bundle(bundle, rpc(session_electra)).ok  # checked here, too
    r = httpx.get(f"{api_url}/api/v1/sessions/{10**12}/proof", timeout=10)
    assert r.status_code == 404 and r.json()["code"] == "session-not-recorded"
    r = httpx.get(f"{api_url}/api/v1/sessions/abc/proof", timeout=10)
    assert r.status_code == 422


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_a_session_signed_by_a_registered_secp256r1_meter_verifies_with_its_key_in_the_bundle(
    electra: Electra, tmp_path: Path, version: str
) -> None:
    from electra.chain.anchors import SessionAnchorBinding
    from electra.sim import SimClock as Clock
    from tests.test_meter_data_flow import R1_METER_KEY, RFID, csms, one_session, running, sim

    clock = Clock(speed=600)
    cid = f"SIM-PROOF-R1-{version}"

    async def body() -> CsmsStore:
        store = CsmsStore.open(f"sqlite:///{tmp_path}/csms.db", clock=clock.now)
        store.tokens.issue(RFID, owner=dev_account(2).address)
        async with csms(electra, store, clock) as system:
            charger = sim(electra, system, clock, version, cid, R1_METER_KEY)
            store.meter_keys.put(cid, charger.signer.public_key, None)
            async with running(charger):
                await one_session(charger)
        return store

    store = asyncio.run(body())
    assert payments_for(electra, store.engine, max_batch=50, max_age_s=0).worker.run_once(force=True).errors == []
    me = electra.client.account.address
    anchors = SessionAnchorBinding(electra.client, electra.client.deploy("SessionAnchor", me, me, me)[0])
    log = SessionLog(store.engine)
    assert AnchorWorker(log, anchors, max_batch=10, max_age_s=0).run_once(force=True).anchored == 1
    (record,) = log.records()
    bundle = ProofBundle.loads(build_bundle(store.engine, electra, record.record.session_id, anchors=anchors).dumps())
    assert bundle.meter_key is not None and len(bundle.meter_data) >= 3
    v = verify_bundle(bundle, rpc(electra))
    assert v.ok, v.failed()
    assert "registered" in next(c.detail for c in v.checks if c.name == "meter data")
    # Without the registered key, nothing ties an r1 record to the charger NFT.
    v = verify_bundle(replace(bundle, meter_key=None), rpc(electra))
    assert [c.name for c in v.failed()] == ["meter data"] and "no registered meter key" in v.failed()[0].detail
