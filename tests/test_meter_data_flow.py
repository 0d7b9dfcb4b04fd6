"""Signed meter data end to end: simulated chargers (OCPP 1.6J and 2.0.1) over real websockets on
127.0.0.1, admitted by their charger NFT on a real anvil, sign every reading; the central system
verifies on receipt. Device-key (secp256k1) and registered secp256r1 meters verify; each meter fault
the simulator injects flags its session; a flagged session is not settled on PaymentHub while a
verified one is; `electra station meter-key` registers the key."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from electra.chain.bindings import Electra
from electra.chain.keys import dev_account
from electra.cli.main import app
from electra.config import Settings
from electra.domain.tariff import Tariff
from electra.metering.keys import SECP256R1
from electra.metering.ocmf import OcmfSigner
from electra.ocpp.directory import ChainChargerDirectory
from electra.ocpp.gateway import CentralSystem, CsmsStore
from electra.payments.service import payments_for
from electra.sim import ChargerIdentity, MeterFault, SimCharger, SimClock, make_charger
from electra.store.models import MeterValueRecord, SessionLogRecord, SessionRecord, SettlementRecord
from tests.test_sim_charger import device_for, register, running, until

VERSIONS = ["1.6", "2.0.1"]
RFID = "1A2B3C4D"
EUSD = 10**6
R1_METER_KEY = hashlib.sha256(b"electra test eichrecht meter").digest()


@asynccontextmanager
async def csms(electra: Electra, store: CsmsStore, clock: SimClock) -> AsyncIterator[CentralSystem]:
    system = CentralSystem(
        ChainChargerDirectory(electra.stations, ttl_s=0), store, port=0, security_profile=1, clock=clock.now
    )
    await system.start()
    try:
        yield system
    finally:
        await system.stop()


def sim(
    electra: Electra, system: CentralSystem, clock: SimClock, version: str, cid: str, meter_key: bytes | None = None
) -> SimCharger:
    device = device_for(cid)
    register(electra, cid, device)
    password = system.store.credentials.rotate(cid)
    identity = ChargerIdentity(cid, bytes(device.key), meter_key=meter_key, meter_curve=SECP256R1)
    url = f"ws://127.0.0.1:{system.port}"
    return make_charger(version, identity, url, clock, password=password, response_timeout_s=3)


def sessions(store: CsmsStore, cid: str) -> list[SessionRecord]:
    with Session(store.engine) as s:
        rows = list(s.scalars(select(SessionRecord).where(SessionRecord.charger_id == cid).order_by(SessionRecord.id)))
        s.expunge_all()
        return rows


def checks(store: CsmsStore, session_id: int) -> list[tuple[int, str | None, str | None]]:
    with Session(store.engine) as s:
        q = (
            select(MeterValueRecord.register_wh, MeterValueRecord.verification, MeterValueRecord.ocmf_tx)
            .where(MeterValueRecord.session_id == session_id)
            .order_by(MeterValueRecord.timestamp_ms)
        )
        return [tuple(r) for r in s.execute(q)]  # type: ignore[misc]


async def one_session(charger: SimCharger, tag: str = RFID, demand_wh: int = 1_500) -> Any:
    tx = await charger.start_session(1, tag, demand_wh=demand_wh)
    assert tx is not None
    await until(lambda: tx.completed)
    await charger.wait_flushed(15)
    return tx


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("meter", ["device key", "secp256r1 meter key"])
def test_signed_sessions_verify(electra: Electra, tmp_path: Path, version: str, meter: str) -> None:
    clock = SimClock(speed=600)
    cid = f"SIM-OCMF-{'R1' if meter != 'device key' else 'K1'}-{version}"
    r1 = meter != "device key"

    async def body() -> tuple[Any, Any]:
        store = CsmsStore.open(f"sqlite:///{tmp_path}/csms.db", clock=clock.now)
        store.tokens.issue(RFID, owner=dev_account(2).address)
        async with csms(electra, store, clock) as system:
            charger = sim(electra, system, clock, version, cid, R1_METER_KEY if r1 else None)
            if r1:
                store.meter_keys.put(cid, charger.signer.public_key, None)
            async with running(charger):
                return store, await one_session(charger)

    store, tx = asyncio.run(body())
    (row,) = sessions(store, cid)
    assert (row.status, row.meter_data, row.flags, row.billable_wh) == ("completed", "verified", "", tx.energy_wh)
    rows = checks(store, row.id)
    assert len(rows) >= 5 and {v for _, v, _ in rows} == {"verified"}, rows
    assert rows[0][2] == "B" and rows[-1][2] == "E" and {x for _, _, x in rows[1:-1]} == {"C"}
    with Session(store.engine) as s:
        algorithms = set(s.scalars(select(MeterValueRecord.signing_method)))
    if version == "2.0.1":  # 2.0.1 names the algorithm; 1.6's SignedData value does not
        assert algorithms == {"ECDSA-secp256r1-SHA256" if r1 else "ECDSA-secp256k1-SHA256"}


@pytest.mark.parametrize("version", VERSIONS)
def test_every_meter_fault_flags_its_session_and_only_its_session(
    electra: Electra, tmp_path: Path, version: str
) -> None:
    clock = SimClock(speed=900)
    cid = f"SIM-OCMF-FAULTS-{version}"
    faults: list[tuple[MeterFault | None, str | None, str]] = [
        (MeterFault.TAMPER, "C", "the OCMF signature does not match"),
        (MeterFault.SKIP_PAGINATION, "C", "the pagination skips"),
        (MeterFault.WRONG_KEY, "E", "the OCMF signature does not match"),
        (MeterFault.UNSIGNED, "B", "no signed begin record, and this charger must sign"),
        (MeterFault.UNSIGNED, "E", "no signed end record, and this charger must sign"),
        (MeterFault.METER_SERIAL, "C", f"the meter serial changes from '{cid}-MTR-1' to '{cid}-MTR-1-B'"),
        (MeterFault.VALUE, "C", "Wh, the reading says"),
        (None, None, ""),  # the meter is sound again
    ]

    async def body() -> CsmsStore:
        store = CsmsStore.open(f"sqlite:///{tmp_path}/csms.db", clock=clock.now)
        store.tokens.issue(RFID, owner=dev_account(2).address)
        async with csms(electra, store, clock) as system:
            charger = sim(electra, system, clock, version, cid)
            async with running(charger):
                for fault, reason, _ in faults:
                    if fault is not None:
                        charger.meter_fault(1, fault, reason)
                    await one_session(charger)
                assert charger.connectors[1].meter_faults == [], "each fault was used"
            assert charger.errors == []
        return store

    store = asyncio.run(body())
    rows = sessions(store, cid)
    assert len(rows) == len(faults)
    for row, (fault, _, needle) in zip(rows, faults, strict=True):
        if fault is None:
            assert (row.meter_data, row.flags, row.billable_wh) == ("verified", "", row.energy_wh)
            continue
        assert row.status == "completed" and row.energy_wh and row.energy_wh > 0
        assert (row.meter_data, row.flags, row.billable_wh) == ("failed", "meter_data_unverified", None), fault
        assert needle in (row.meter_data_detail or ""), (fault, row.meter_data_detail)


@pytest.mark.parametrize("version", ["2.0.1"])
def test_an_unregistered_secp256r1_meter_is_not_trusted_even_with_its_key_sent(
    electra: Electra, tmp_path: Path, version: str
) -> None:
    clock = SimClock(speed=900)
    cid = "SIM-OCMF-ROGUE"

    async def body() -> CsmsStore:
        store = CsmsStore.open(f"sqlite:///{tmp_path}/csms.db", clock=clock.now)
        store.tokens.issue(RFID, owner=dev_account(2).address)
        async with csms(electra, store, clock) as system:
            charger = sim(electra, system, clock, version, cid, R1_METER_KEY)  # its key is not registered
            async with running(charger):
                await one_session(charger)
        return store

    store = asyncio.run(body())
    (row,) = sessions(store, cid)
    assert (row.meter_data, row.billable_wh) == ("failed", None)
    assert "signed with ECDSA-secp256r1-SHA256; this charger's registered key is its secp256k1 device key" in (
        row.meter_data_detail or ""
    )
    assert {v for _, v, _ in checks(store, row.id)} == {"invalid"}


def test_a_flagged_session_is_not_settled_and_a_verified_one_is(electra: Electra, tmp_path: Path) -> None:
    clock = SimClock(speed=900)
    cid = "SIM-OCMF-PAY"
    store = CsmsStore.open(f"sqlite:///{tmp_path}/csms.db", clock=clock.now)
    payments = payments_for(electra, store.engine, max_batch=50, max_age_s=0)
    store.sessions.gate = payments.gate.check
    payments.tariffs.set(cid, Tariff("EUSD", energy_price_per_wh=350), by="owner")
    coin = electra.stablecoin

    def vehicle(tag: str, token_id: int) -> int:
        device = Account.create()
        vid, _ = electra.vehicles.register(hashlib.sha256(tag.encode()).digest(), device.address)
        coin.mint(dev_account(0).address, 10 * EUSD)
        electra.payments.deposit(vid, coin.address, 10 * EUSD)
        store.tokens.issue(tag, vehicle_id=vid)
        payments.authorizations.submit(electra.payments.authorize(device, vid, token_id, coin.address, 5 * EUSD))
        return vid

    async def body() -> tuple[int, int]:
        async with csms(electra, store, clock) as system:
            charger = sim(electra, system, clock, "1.6", cid)
            token_id = electra.stations.token_id_of(cid)
            good, bad = vehicle("A1B2C3D4", token_id), vehicle("B1B2C3D4", token_id)
            async with running(charger):
                await one_session(charger, "A1B2C3D4", demand_wh=2_000)
                charger.meter_fault(1, MeterFault.TAMPER, "E")
                await one_session(charger, "B1B2C3D4", demand_wh=2_000)
        return good, bad

    good, bad = asyncio.run(body())
    report = payments.worker.run_once(force=True)
    assert (report.billed, report.settled, report.errors) == (2, 1, [])
    paid, flagged = sessions(store, cid)
    assert (paid.vehicle_id, flagged.vehicle_id) == (good, bad)
    with Session(store.engine) as s:
        bills = {r.session_id: r for r in s.scalars(select(SettlementRecord))}
    assert bills[paid.id].status == "settled" and int(bills[paid.id].amount) == 2_000 * 350
    assert electra.payments.is_settled(paid.id)
    assert bills[flagged.id].status == "manual"
    assert (bills[flagged.id].reason or "").startswith("meter data unverified: ")
    assert not electra.payments.is_settled(flagged.id)
    assert electra.payments.balance(bad, coin.address) == 10 * EUSD, "the flagged session charged nothing"
    # The flagged session's record in the session log carries energyWh 0, its registers as metered.
    with Session(store.engine) as s:
        records = {r.session_id: r for r in s.scalars(select(SessionLogRecord))}
    assert (records[paid.id].energy_wh, records[flagged.id].energy_wh) == (2_000, 0)
    assert records[flagged.id].meter_stop_wh - records[flagged.id].meter_start_wh == 2_000


def test_cli_registers_a_meter_key_and_the_policy(chain_settings: Settings, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"ELECTRA_DATA_DIR": str(tmp_path / "data"), "ELECTRA_DEV_CHAIN_PORT": str(chain_settings.dev_chain_port)}
    key = OcmfSigner(R1_METER_KEY, "CP-CLI", "CP-CLI-MTR-1", curve=SECP256R1).public_key

    def run(*args: str) -> Any:
        result = runner.invoke(app, ["station", "meter-key", *args, "--json"], env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.stderr + result.stdout
        return json.loads(result.stdout)

    assert run("CP-CLI") | {"updated_at_ms": None} == {
        "charger_id": "CP-CLI",
        "key_source": "device (the charger NFT's device key)",
        "public_key": None,
        "curve": "secp256k1",
        "address": None,
        "signing": "required",
        "signing_set": "default",
        "updated_at_ms": None,
    }
    set_key = run("CP-CLI", "--public-key", key.hex, "--signing", "optional")
    assert (set_key["key_source"], set_key["public_key"], set_key["curve"]) == ("meter key", key.hex, SECP256R1)
    assert (set_key["signing"], set_key["signing_set"]) == ("optional", "optional")
    shown = run("CP-CLI")
    assert (shown["public_key"], shown["signing"]) == (key.hex, "optional")
    back = run("CP-CLI", "--device", "--signing", "default")
    assert (back["public_key"], back["signing"], back["signing_set"]) == (None, "required", "default")
    bad = runner.invoke(app, ["station", "meter-key", "CP-CLI", "--public-key", "zz"], env=env)
    assert bad.exit_code == 1 and bad.stderr.startswith("error: the public key is neither hex nor base64")
