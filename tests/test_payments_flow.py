"""Machine-to-machine payment, end to end on a real anvil and real websockets: a vehicle authorizes,
charges at a charger over OCPP 1.6J, the session is billed from its meter values, settled on
PaymentHub in a batch, and the charger's owner is credited. Then the faults: the chain down during
settlement, and the worker killed between sending a batch and recording its receipt."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from ocpp.v16 import ChargePoint as Cp16
from ocpp.v16 import call as call16
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from websockets.asyncio.client import connect

from electra.chain.bindings import Electra
from electra.chain.keys import dev_account
from electra.chain.settlement import receipt_of
from electra.domain.station import StationSpec
from electra.domain.tariff import Tariff
from electra.ocpp.directory import ChainChargerDirectory
from electra.ocpp.gateway import CentralSystem, CsmsStore
from electra.payments.service import Payments, payments_for
from electra.store.models import SettlementBatchRecord, SettlementRecord, WalletEventRecord

EUSD = 10**6  # ElectraUSD base units per unit


class World:
    def __init__(self, electra: Electra, store: CsmsStore, payments: Payments) -> None:
        self.electra = electra
        self.store = store
        self.payments = payments
        self.owner = dev_account(3)

    def charger(self, charger_id: str) -> int:
        spec = StationSpec(charger_id, 52_000_000, 13_000_000, 22_000, 2, 3, b"DEELC")
        return self.electra.stations.register(spec, Account.create(), owner=self.owner)[0]

    def vehicle(self, tag: str, deposit: int) -> tuple[int, LocalAccount]:
        device = Account.create()
        vid, _ = self.electra.vehicles.register(Account.create().address.encode()[:32].ljust(32, b"\0"), device.address)
        coin = self.electra.stablecoin
        coin.mint(dev_account(0).address, deposit)
        self.electra.payments.deposit(vid, coin.address, deposit)
        self.store.tokens.issue(tag, vehicle_id=vid)
        return vid, device

    def authorize(self, device: LocalAccount, vid: int, token_id: int, max_amount: int) -> int:
        hub = self.electra.payments
        signed = hub.authorize(device, vid, token_id, self.electra.stablecoin.address, max_amount)
        return self.payments.authorizations.submit(signed).id


@pytest.fixture
def world(electra: Electra, tmp_path: Path) -> Iterator[World]:
    # These chargers send unsigned meter values (tests/test_meter_data.py covers signed ones).
    store = CsmsStore.open(f"sqlite:///{tmp_path}/csms.db", meter_signing="optional")
    payments = payments_for(electra, store.engine, max_batch=50, max_age_s=0)
    store.sessions.gate = payments.gate.check
    yield World(electra, store, payments)
    store.engine.dispose()


async def charge(world: World, charger_id: str, tag: str, meter: list[int], hour: int = 10) -> tuple[str, int | None]:
    """One 1.6 session: Authorize, StartTransaction, MeterValues, StopTransaction. Returns the
    Authorize status and the transaction id."""
    system = CentralSystem(
        ChainChargerDirectory(world.electra.stations, ttl_s=0), world.store, port=0, security_profile=0
    )
    await system.start()
    try:
        url = f"ws://127.0.0.1:{system.port}/ocpp/{charger_id}"
        async with connect(url, subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
            cp = Cp16(charger_id, ws)
            task = asyncio.create_task(cp.start())
            try:
                await cp.call(call16.BootNotification(charge_point_model="Wallbox", charge_point_vendor="Acme"))
                auth = await cp.call(call16.Authorize(id_tag=tag))
                if auth.id_tag_info["status"] != "Accepted":
                    return auth.id_tag_info["status"], None
                start = await cp.call(
                    call16.StartTransaction(
                        connector_id=1, id_tag=tag, meter_start=meter[0], timestamp=f"2026-11-22T{hour:02d}:00:00Z"
                    )
                )
                tx = start.transaction_id
                for i, wh in enumerate(meter[1:-1], 1):
                    await cp.call(
                        call16.MeterValues(
                            connector_id=1,
                            transaction_id=tx,
                            meter_value=[
                                {
                                    "timestamp": f"2026-11-22T{hour:02d}:{i * 10:02d}:00Z",
                                    "sampled_value": [{"value": str(wh), "unit": "Wh"}],
                                }
                            ],
                        )
                    )
                n = len(meter) - 1
                await cp.call(
                    call16.StopTransaction(
                        meter_stop=meter[-1], timestamp=f"2026-11-22T{hour:02d}:{n * 10:02d}:00Z", transaction_id=tx
                    )
                )
                return "Accepted", tx
            finally:
                task.cancel()
    finally:
        await system.stop()


def settlement(engine: Engine, session_id: int) -> SettlementRecord:
    with Session(engine) as s:
        row = s.get(SettlementRecord, session_id)
        assert row is not None
        return row


def test_vehicle_pays_the_charger_owner_automatically(world: World) -> None:
    token_id = world.charger("CP-PAY-1")
    world.payments.tariffs.set("CP-PAY-1", Tariff("EUSD", energy_price_per_wh=350, session_fee=500_000), by="owner")
    vid, device = world.vehicle("VEH-PAY-1", 50 * EUSD)
    world.authorize(device, vid, token_id, 20 * EUSD)
    hub = world.electra.payments
    coin = world.electra.stablecoin.address
    earned_before = hub.earnings(world.owner.address, coin)
    world.payments.wallet.set_alert(vid, "EUSD", 46 * EUSD)  # 50 now: not firing until it is charged
    assert world.payments.wallet.alerts() == []

    status, tx = asyncio.run(charge(world, "CP-PAY-1", "VEH-PAY-1", [10_000, 14_000, 18_000, 22_000]))
    assert status == "Accepted" and tx is not None

    report = world.payments.worker.run_once(force=True)
    assert (report.billed, report.settled, report.rejected, report.errors) == (1, 1, 0, [])
    expected = 12_000 * 350 + 500_000  # 12 kWh at 0.35 plus the session fee: 4.70 EUSD
    row = settlement(world.store.engine, tx)
    assert (row.status, int(row.amount), row.payee) == ("settled", expected, world.owner.address)
    assert hub.balance(vid, coin) == 50 * EUSD - expected
    fee = expected * hub.protocol_fee_bps() // 10_000
    assert hub.earnings(world.owner.address, coin) - earned_before == expected - fee
    assert hub.is_settled(tx)
    assert [(a.vehicle_id, a.asset) for a in world.payments.wallet.alerts()] == [(vid, "EUSD")]  # 45.30 < 46

    receipt = receipt_of(world.store.engine, tx)
    assert receipt is not None and receipt["settlement_tx"] is not None
    assert receipt["cost"] == {"energy": 4_200_000, "charging time": 0, "idle fee": 0, "session fee": 500_000}
    assert receipt["usage"]["energy_wh"] == 12_000
    assert receipt["record_hash"] == row.record_hash and len(row.record_hash) == 66
    with Session(world.store.engine) as s:
        kinds = {e.kind for e in s.scalars(select(WalletEventRecord)).all()}
    assert {"charge", "earning"} <= kinds

    again = world.payments.worker.run_once(force=True)  # nothing left: nothing settles twice
    assert (again.billed, again.batches, again.settled) == (0, 0, 0)


def test_a_vehicle_without_authorization_or_funds_is_refused(world: World) -> None:
    token_id = world.charger("CP-PAY-2")
    vid, device = world.vehicle("VEH-PAY-2", 1 * EUSD)
    status, _ = asyncio.run(charge(world, "CP-PAY-2", "VEH-PAY-2", [0, 1_000]))
    assert status == "Invalid"  # 1.6 has no NoCredit: no authorization at all
    world.authorize(device, vid, token_id, 5 * EUSD)  # more than its 1 EUSD deposit
    status, _ = asyncio.run(charge(world, "CP-PAY-2", "VEH-PAY-2", [0, 1_000]))
    assert status == "Invalid"
    decision = world.payments.gate.check("CP-PAY-2", vid, 0)
    assert decision.status == "NoCredit" and "less than" in decision.reason


def test_a_private_charger_refuses_unknown_vehicles(world: World) -> None:
    token_id = world.charger("CP-PAY-3")
    vid, device = world.vehicle("VEH-PAY-3", 10 * EUSD)
    world.authorize(device, vid, token_id, 5 * EUSD)
    world.payments.leases.set("CP-PAY-3", public=False)
    assert world.payments.gate.check("CP-PAY-3", vid, 0).status == "NotAtThisLocation"
    world.payments.leases.set("CP-PAY-3", public=False, allowed_vehicles=[vid])
    assert world.payments.gate.check("CP-PAY-3", vid, 0).ok


def _session_ready(world: World, n: int) -> list[int]:
    token_id = world.charger("CP-PAY-F")
    txs = []
    for i in range(n):
        vid, device = world.vehicle(f"VEH-F-{i}", 10 * EUSD)
        world.authorize(device, vid, token_id, 5 * EUSD)
        meter = [i * 100_000, i * 100_000 + 3_000]
        status, tx = asyncio.run(charge(world, "CP-PAY-F", f"VEH-F-{i}", meter, hour=10 + i))
        assert status == "Accepted" and tx is not None
        txs.append(tx)
    return txs


def test_chain_down_during_settlement_loses_nothing(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    txs = _session_ready(world, 2)
    worker = world.payments.worker
    w3 = worker.client.w3

    def down(*_a: Any, **_k: Any) -> Any:
        raise ConnectionError("RPC at 127.0.0.1 refused the connection")

    monkeypatch.setattr(w3.eth, "get_transaction_count", down)
    report = worker.run_once(force=True)
    assert report.errors and report.settled == 0
    assert {settlement(world.store.engine, t).status for t in txs} == {"pending"}  # billed, not lost
    monkeypatch.undo()

    report = worker.run_once(force=True)
    assert report.settled == 2 and not report.errors
    assert {settlement(world.store.engine, t).status for t in txs} == {"settled"}


def test_worker_killed_between_send_and_receipt_settles_once(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    txs = _session_ready(world, 3)
    worker = world.payments.worker
    hub = world.electra.payments

    class Killed(BaseException):  # like SIGKILL: nothing after the send runs
        pass

    def killed(*_a: Any, **_k: Any) -> Any:
        raise Killed

    monkeypatch.setattr(worker, "_wait", killed)
    with pytest.raises(Killed):
        worker.run_once(force=True)
    monkeypatch.undo()
    assert all(hub.is_settled(t) for t in txs)  # it was mined...
    assert {settlement(world.store.engine, t).status for t in txs} == {"batched"}  # ...but not recorded

    report = worker.run_once(force=True)  # a new run recovers the batch from its stored transaction
    assert (report.recovered, report.settled, report.batches) == (1, 3, 0)
    with Session(world.store.engine) as s:
        batches = s.scalars(select(SettlementBatchRecord)).all()
    assert [b.status for b in batches] == ["confirmed"]
    assert {settlement(world.store.engine, t).status for t in txs} == {"settled"}


def test_cli_shows_the_receipt_and_sets_tariff_and_lease(world: World, chain_settings: Any) -> None:
    import json

    from typer.testing import CliRunner

    from electra.cli.main import app

    token_id = world.charger("CP-PAY-CLI")
    vid, device = world.vehicle("VEH-PAY-CLI", 20 * EUSD)
    world.authorize(device, vid, token_id, 10 * EUSD)
    status, tx = asyncio.run(charge(world, "CP-PAY-CLI", "VEH-PAY-CLI", [0, 5_000, 10_000]))
    assert status == "Accepted" and tx is not None
    assert world.payments.worker.run_once(force=True).settled == 1

    env = {
        "ELECTRA_DATA_DIR": str(chain_settings.data_dir),
        "ELECTRA_DEV_CHAIN_PORT": str(chain_settings.dev_chain_port),
        "ELECTRA_DB_URL": str(world.store.engine.url),
    }
    runner = CliRunner()
    receipt = runner.invoke(app, ["session", "receipt", str(tx), "--json"], env=env, catch_exceptions=False)
    assert receipt.exit_code == 0, receipt.stdout
    data = json.loads(receipt.stdout)
    assert data["amount"] == str(10_000 * 400) and data["settlement_tx"].startswith("0x")  # default 0.40/kWh
    shown = runner.invoke(app, ["session", "show", str(tx), "--json"], env=env, catch_exceptions=False)
    assert json.loads(shown.stdout)["settlement"] == "settled"

    set_tariff = ["station", "tariff", "CP-PAY-CLI", "--per-kwh", "0.29", "--session-fee", "1.5", "--json"]
    tariff = json.loads(runner.invoke(app, set_tariff, env=env, catch_exceptions=False).stdout)
    assert (tariff["energy_price_per_wh"], tariff["session_fee"]) == (290, 1_500_000)
    too_high = runner.invoke(app, ["station", "tariff", "CP-PAY-CLI", "--per-kwh", "9"], env=env)
    assert too_high.exit_code != 0 and "above the DAO's bound" in too_high.stdout + too_high.stderr
    lease_args = ["station", "lease", "CP-PAY-CLI", "--public", "--window", "Mon-Fri 07:00-19:00", "--json"]
    lease = json.loads(runner.invoke(app, lease_args, env=env, catch_exceptions=False).stdout)
    assert lease["windows"] == ["Mon-Fri 07:00-19:00"]
    # Sunday 2026-11-22 12:00 UTC is outside the window: NotAtThisTime
    assert world.payments.gate.check("CP-PAY-CLI", vid, 1_795_348_800_000).status == "NotAtThisTime"
