"""Usage mining end to end on anvil: anchored session records -> an epoch computed from them with
the governed rules -> its root published on RewardsDistributor -> claims by driver and host with
proofs; anyone recomputes the same root; a record edited after anchoring stops the epoch; a
double claim is refused; self-dealing earns nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account
from sqlalchemy import Engine, update
from typer.testing import CliRunner

from electra.chain.anchoring import AnchorWorker
from electra.chain.bindings import Electra
from electra.chain.keys import dev_account
from electra.cli.main import app
from electra.config import Settings
from electra.domain.record import SessionRecord
from electra.domain.station import StationSpec
from electra.domain.usage_mining import RewardParameters
from electra.domain.vehicle import vin_hash
from electra.errors import ContractReverted
from electra.rewards.epochs import EpochRefused, compute, publish, recompute
from electra.store.db import make_engine, migrate
from electra.store.models import SessionLogRecord
from electra.store.session_log import SessionLog

HOUR = 3_600_000
DAY0 = 1_796_083_200_000  # a UTC midnight
HOST, DRIVER = dev_account(4), dev_account(5)


@pytest.fixture
def world(electra: Electra, tmp_path: Path) -> tuple[Engine, dict[str, int]]:
    engine = make_engine(f"sqlite:///{tmp_path}/mining.db")
    migrate(engine)
    ids = {}
    for name, owner in (("CP-MINE-1", HOST), ("CP-MINE-2", HOST)):
        spec = StationSpec(name, 48_000_000, 11_000_000, 22_000, 2, 3, b"DEELC")
        ids[name], _ = electra.stations.register(spec, Account.create(), owner=owner)
    ids["car"], _ = electra.vehicles.register(vin_hash("WVWZZZE1ZPP700001"), Account.create().address, owner=DRIVER)
    ids["host-car"], _ = electra.vehicles.register(vin_hash("WVWZZZE1ZPP700002"), Account.create().address, owner=HOST)
    log = SessionLog(engine)
    eusd = "0x" + "ee" * 20
    rows = [  # (session, charger, vehicle, start hour, hours, Wh)
        (1, "CP-MINE-1", "car", 2, 1, 20_000),  # off-peak, idle charger
        (2, "CP-MINE-2", "car", 12, 1, 10_000),  # peak, idle charger
        (3, "CP-MINE-1", "host-car", 3, 1, 20_000),  # self-dealing
        (4, "CP-MINE-2", "car", 23, 0.25, 500),  # below the minimum energy
    ]
    with engine.begin() as conn:
        for sid, charger, vehicle, h, hours, wh in rows:
            start = DAY0 + h * HOUR
            r = SessionRecord(sid, ids[charger], ids[vehicle], start, start + int(hours * HOUR), 0, wh, wh, eusd, wh)
            log.append_record(conn, r, charger)
    assert AnchorWorker(log, electra.anchors, max_batch=2, max_age_s=0).run_once(force=True).anchored == 2
    return engine, ids


def test_an_epoch_is_computed_published_claimed_and_recomputed(
    world: tuple[Engine, dict[str, int]], electra: Electra, tmp_path: Path
) -> None:
    engine, _ = world
    run = compute(engine, electra, 1, DAY0, DAY0 + 24 * HOUR)
    why = {s.session_id: s.reason for s in run.result.sessions}
    assert why[1] == "off-peak and idle charger" and why[2] == "idle charger"
    assert why[3].startswith("self-dealing") and "minimum energy" in why[4]
    p = run.params
    expect_1 = 20 * p.offpeak_rate_per_kwh + 20 * p.idle_rate_per_kwh
    expect_2 = 10 * p.idle_rate_per_kwh
    total = expect_1 + expect_2
    driver = (expect_1 * 7_000 // 10_000) + (expect_2 * 7_000 // 10_000)
    assert run.result.amounts == {DRIVER.address: driver, HOST.address: total - driver}
    path = publish(electra, run, tmp_path)
    assert electra.rewards.epoch(1).root == "0x" + run.epoch.root.hex()  # type: ignore[union-attr]
    again = recompute(engine, electra, json.loads(path.read_text()))
    assert again.matches and again.differences == []
    before = electra.token.balance_of(DRIVER.address)
    claim = run.epoch.claim(DRIVER.address)  # type: ignore[union-attr]
    electra.rewards.claim(claim)  # anyone may send it
    assert electra.token.balance_of(DRIVER.address) - before == driver
    with pytest.raises(ContractReverted, match="AlreadyClaimed"):
        electra.rewards.claim(claim)


def test_a_record_edited_after_anchoring_stops_the_epoch(
    world: tuple[Engine, dict[str, int]], electra: Electra
) -> None:
    engine, _ = world
    with engine.begin() as conn:
        conn.execute(update(SessionLogRecord).where(SessionLogRecord.seq == 2).values(energy_wh=99_000))
    with pytest.raises(EpochRefused, match="do not give the anchored root"):
        compute(engine, electra, 1, DAY0, DAY0 + 24 * HOUR)


def test_rules_other_than_the_governed_ones_are_refused(world: tuple[Engine, dict[str, int]], electra: Electra) -> None:
    engine, _ = world
    generous = RewardParameters(1, DAY0, DAY0 + 1, 1, 0, 0, offpeak_rate_per_kwh=10**20)
    with pytest.raises(EpochRefused, match="not the defaults"):
        compute(engine, electra, 1, DAY0, DAY0 + 24 * HOUR, rules=generous)
    # Governance sets them: now they are the rules (the timelock is RewardsDistributor's owner).
    from electra.chain.governance import Dao
    from tests.test_staking import pass_proposal

    pid, _ = Dao(electra).propose_parameter([("reward-rules", generous.rules_digest())], "usage mining: generous rate")
    pass_proposal(electra, pid)
    assert electra.rewards.rules() == generous.rules_digest()
    run = compute(engine, electra, 1, DAY0, DAY0 + 24 * HOUR, rules=generous)
    assert run.result.total > 0 and run.params.offpeak_rate_per_kwh == 10**20


def test_the_cli_computes_publishes_shows_claims_and_recomputes(
    world: tuple[Engine, dict[str, int]], electra: Electra, chain_settings: Settings, tmp_path: Path
) -> None:
    engine, _ = world
    data_dir = chain_settings.data_dir
    env = {
        "ELECTRA_DB_URL": str(engine.url),
        "ELECTRA_DATA_DIR": str(data_dir),
        "ELECTRA_DEV_CHAIN_PORT": str(chain_settings.dev_chain_port),
    }
    window = ["--epoch", "1", "--from", "2026-12-01T00:00:00Z", "--to", "2026-12-02T00:00:00Z"]
    run = CliRunner()
    r = run.invoke(app, ["rewards", "compute", *window, "--json"], env=env)
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["earning"] == 2
    r = run.invoke(app, ["rewards", "publish", *window, "--json"], env=env)
    assert r.exit_code == 0, r.output
    r = run.invoke(app, ["rewards", "show", "1", "--account", DRIVER.address, "--json"], env=env)
    assert r.exit_code == 0, r.output
    shown = json.loads(r.output)
    assert shown["root"] == shown["document_root"] and shown["claim"]["claimed"] is False
    r = run.invoke(app, ["rewards", "claim", "1", "--for", DRIVER.address, "--json"], env=env)
    assert r.exit_code == 0, r.output
    r = run.invoke(app, ["rewards", "claim", "1", "--for", DRIVER.address], env=env)
    assert r.exit_code == 1 and "nothing to do: this reward was claimed" in r.output
    r = run.invoke(app, ["rewards", "recompute", "1", "--json"], env=env)
    assert r.exit_code == 0 and json.loads(r.output)["matches"] is True
    (data_dir / "rewards" / "epoch-1.json").unlink()
