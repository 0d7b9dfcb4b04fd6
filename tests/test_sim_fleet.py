"""Fleet scenarios (reproducible from a seed), provisioning on a real anvil and the central system's
store, and a mixed 1.6/2.0.1 fleet run against the real central system."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from electra.chain.bindings import Electra
from electra.chain.keys import dev_account, is_dev_key
from electra.domain.vehicle import vin_hash
from electra.ocpp.directory import ChainChargerDirectory
from electra.ocpp.gateway import CentralSystem, CsmsStore
from electra.sim.clock import SimClock
from electra.sim.fleet import Fleet, FleetSummary
from electra.sim.provision import provision
from electra.sim.scenario import build_scenario, charger_account, vehicle_account
from electra.store.models import SessionRecord


def test_scenario_is_reproducible_from_its_seed() -> None:
    kw = {"mix": 0.5, "duration_s": 7_200, "offline_rate": 0.5, "fault_rate": 0.5}
    a, b = build_scenario(42, 8, 12, **kw), build_scenario(42, 8, 12, **kw)  # type: ignore[arg-type]
    other = build_scenario(43, 8, 12, **kw)  # type: ignore[arg-type]
    assert a == b
    assert a != other
    assert a.versions == {"1.6": 4, "2.0.1": 4}
    assert [c.charger_id for c in a.chargers] == [f"SIM42-{i:04d}" for i in range(8)]
    assert len({v.vin for v in a.vehicles}) == 12 and len({v.id_tag for v in a.vehicles}) == 12
    assert {v.id_tag for v in a.vehicles}.isdisjoint(v.id_tag for v in other.vehicles)
    assert all(len(v.vin) == 17 and vin_hash(v.vin) for v in a.vehicles)
    assert all(isinstance(v.demand_wh, int) and 0 < v.demand_wh < v.battery_wh for v in a.vehicles)
    assert [x.at_ms for x in a.arrivals] == sorted(x.at_ms for x in a.arrivals)
    assert all(0 <= x.at_ms <= a.duration_ms * 6 // 10 for x in a.arrivals)
    assert any(c.offline for c in a.chargers) and any(c.faults for c in a.chargers)
    for c in a.chargers:
        for at, span in c.offline:
            assert 0 < at < a.duration_ms and span > 0
        for f in c.faults:
            assert 1 <= f.connector_id <= c.connectors
    # Device keys: deterministic per seed and index, distinct, never anvil's public keys.
    keys = [charger_account(42, i).address for i in range(8)] + [vehicle_account(42, j).address for j in range(12)]
    assert keys == [charger_account(42, i).address for i in range(8)] + [
        vehicle_account(42, j).address for j in range(12)
    ]
    assert len(set(keys)) == 20
    assert charger_account(43, 0).address not in keys
    assert not any(is_dev_key(charger_account(s, 0)) for s in range(5))
    # A bigger fleet, another duration or other rates keep the same chargers and vehicles.
    bigger = build_scenario(42, 10, 20, mix=0.2, duration_s=60, offline_rate=0.0, fault_rate=1.0)
    assert bigger.vehicles[:12] == a.vehicles
    same = ("charger_id", "max_power_w", "connectors", "current_type", "latitude_e6", "longitude_e6")
    for x, y in zip(bigger.chargers, a.chargers, strict=False):
        assert [getattr(x, f) for f in same] == [getattr(y, f) for f in same]
    assert build_scenario(1, 3, mix=0.0).versions == {"1.6": 3, "2.0.1": 0}
    assert build_scenario(1, 3, mix=1.0).versions == {"1.6": 0, "2.0.1": 3}


def test_provisioned_fleet_runs_against_the_central_system(electra: Electra, tmp_path: Path) -> None:
    scenario = build_scenario(11, 4, 6, mix=0.5, duration_s=1_800, offline_rate=0.5, fault_rate=0.0)
    owner = dev_account(1)
    clock = SimClock(speed=900)
    store = CsmsStore.open(f"sqlite:///{tmp_path}/csms.db", clock=clock.now)
    done = provision(electra, scenario, owner, store.engine)
    assert (done.chargers_registered, done.vehicles_registered, done.tokens_issued) == (4, 6, 6)
    again = provision(electra, scenario, owner, store.engine)  # idempotent: nothing registered twice
    assert (again.chargers_registered, again.vehicles_registered) == (0, 0)
    assert again.station_tokens == done.station_tokens and again.vehicle_ids == done.vehicle_ids
    for plan in scenario.chargers:
        record = electra.stations.station(done.station_tokens[plan.charger_id])
        assert record.device == charger_account(11, plan.index).address
        assert record.max_power_w == plan.max_power_w
    for v in scenario.vehicles:
        record = electra.vehicles.vehicle(done.vehicle_ids[v.index])
        assert (record.owner, record.device) == (owner.address, vehicle_account(11, v.index).address)

    async def body() -> tuple[FleetSummary, FleetSummary]:
        system = CentralSystem(
            ChainChargerDirectory(electra.stations, ttl_s=0), store, port=0, security_profile=1, clock=clock.now
        )
        await system.start()
        try:
            fleet = Fleet(
                scenario, f"ws://127.0.0.1:{system.port}", clock, passwords=again.passwords, response_timeout_s=3
            )
            first = await fleet.run(flush_timeout_s=3)
            second = await fleet.run(flush_timeout_s=3)  # another round of the same timeline
            return first, second
        finally:
            await system.stop()

    summary, second = asyncio.run(body())
    assert second.errors == [] and second.boots >= 4  # and again after an offline period
    assert second.sessions_started >= 3 and second.sessions_completed == second.sessions_started
    assert min(x.started_ms for x in second.sessions) > max(x.started_ms for x in summary.sessions)
    assert summary.errors == []
    s = summary.to_json()
    assert s["versions"] == {"1.6": 2, "2.0.1": 2}
    assert s["sessions_started"] >= 3 and s["sessions_completed"] == s["sessions_started"]
    assert s["sessions_started"] + s["sessions_rejected"] + s["arrivals_turned_away"] <= 6
    assert s["messages_by_action"]["BootNotification"] >= 4
    assert s["energy_wh"] > 0 and not s["interrupted"]
    with Session(store.engine) as db:
        rows = {(r.charger_id, r.started_at_ms): r for r in db.scalars(select(SessionRecord))}
    vehicle_of_tag = {v.id_tag: done.vehicle_ids[v.index] for v in scenario.vehicles}
    assert len(rows) == s["sessions_started"] + second.sessions_started
    for session in s["sessions"] + second.to_json()["sessions"]:
        row = rows[(session["charger_id"], session["started_ms"])]
        assert (row.status, row.energy_wh) == ("completed", session["energy_wh"])
        assert row.vehicle_id == vehicle_of_tag[session["id_tag"]]  # the token maps to the on-chain vehicle
