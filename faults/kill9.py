"""The central system is killed with SIGKILL in the middle of sessions, under a fleet of simulated
chargers (1,000; 100 with --quick), then started again on the same store.

Ground truth is what the simulated chargers recorded themselves (:class:`~electra.sim.base.SimTransaction`:
every session, its meter registers and whether the central system acknowledged its start and stop),
and the cost the tariff gives for that energy, computed here without the platform's billing. The
platform's side is its store after the run: the sessions table, and the settlement outbox the
Biller makes from it (energy from the meter registers, the tariff applied).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from electra.charging.tokens import TokenRegistry
from electra.domain.tariff import Tariff
from electra.payments.authorizations import AuthorizationBook
from electra.payments.billing import Biller
from electra.payments.tariffs import TariffBook
from electra.sim.base import SimCharger
from electra.sim.clock import SimClock
from electra.sim.fleet import Fleet
from electra.sim.scenario import build_scenario
from electra.store.db import make_engine, migrate
from electra.store.models import SessionRecord, SettlementRecord
from faults.harness import Child, Report, children, free_port, python

SEED = 9
TARIFF = Tariff("EUSD", energy_price_per_wh=350, session_fee=500_000)  # 0.35 per kWh + 0.50 per session
EUSD_ADDRESS = "0x" + "e5" * 20
SPEED = 60.0
# Transaction messages only, mostly: a sample every 10 simulated minutes, heartbeats hourly.
FLEET_CONFIG = {"MeterValueSampleInterval": "600", "HeartbeatInterval": "3600"}
EXPECTED_ERRORS = ("cannot connect", "lost its connection")


def start_csms(db: str, port: int, chargers: int) -> Child:
    csms = Child(
        python(
            "faults.csms_server", "--db", db, "--port", str(port), "--seed", str(SEED), "--sim-chargers", str(chargers)
        ),
        name="csms",
    )
    csms.wait_line("READY ", 120)
    return csms


def in_progress(chargers: list[SimCharger]) -> int:
    return sum(1 for c in chargers for tx in c.sessions if tx.start_acked and tx.stopped_ms is None)


def run(report: Report, workdir: Path) -> None:
    n = 100 if report.quick else 1_000
    duration_s = 1_800 if report.quick else 3_600  # simulated; arrivals fall in its first 60 %
    scenario = build_scenario(SEED, n, n, mix=0.5, duration_s=duration_s)
    db = f"sqlite:///{workdir}/kill9.db"
    engine = make_engine(db)
    migrate(engine)
    tokens = TokenRegistry(engine)
    tariffs = TariffBook(engine)
    for v in scenario.vehicles:
        tokens.issue(v.id_tag, vehicle_id=v.index + 1)
    for plan in scenario.chargers:
        tariffs.set(plan.charger_id, TARIFF, by="faults")
    port = free_port()
    report.did(
        f"{n:,} simulated chargers ({scenario.versions['1.6']} OCPP 1.6J, {scenario.versions['2.0.1']} 2.0.1, "
        f"OCMF-signed meter data) and {n:,} vehicles at {SPEED:g}x against `faults.csms_server` "
        f"(electra's CentralSystem + SQLite store) on 127.0.0.1:{port}"
    )
    killed_at: dict[str, int] = {}
    with children() as kids:
        kids.append(start_csms(db, port, n))

        async def body() -> Fleet:
            clock = SimClock(SPEED)
            fleet = Fleet(scenario, f"ws://127.0.0.1:{port}", clock, response_timeout_s=30, config=FLEET_CONFIG)
            runner = asyncio.create_task(fleet.run(flush_timeout_s=90))
            target = max(5, n // 5)
            deadline = time.monotonic() + 600
            while in_progress(fleet.chargers) < target and not runner.done() and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            killed_at["in_progress"] = in_progress(fleet.chargers)
            killed_at["started"] = sum(len(c.sessions) for c in fleet.chargers)
            killed_at["queued"] = sum(len(c.queued) for c in fleet.chargers)
            await asyncio.to_thread(kids[0].kill9)
            t0 = time.monotonic()
            await asyncio.sleep(3)
            kids[0] = await asyncio.to_thread(start_csms, db, port, n)
            killed_at["down_s"] = round(time.monotonic() - t0, 1)
            await runner
            return fleet

        t0 = time.monotonic()
        fleet = asyncio.run(body())
        run_s = time.monotonic() - t0
    report.did(
        f"SIGKILL with {killed_at['in_progress']:,} sessions in progress ({killed_at['started']:,} started, "
        f"{killed_at['queued']:,} transaction messages queued at the chargers); restarted after "
        f"{killed_at['down_s']} s; the fleet ran {run_s:.0f} s in all"
    )
    truth = [tx for c in fleet.chargers for tx in c.sessions]
    truth_by_key = {(c.charger_id, tx.started_ms): tx for c in fleet.chargers for tx in c.sessions}
    unexpected = [e for c in fleet.chargers for e in c.errors if not any(x in e for x in EXPECTED_ERRORS)]
    report.check("the kill hit sessions in progress", killed_at["in_progress"] > 0, f"{killed_at['in_progress']:,}")
    report.check("no charger dropped a message or failed otherwise", not unexpected, "; ".join(unexpected[:3]))
    completed = sum(1 for tx in truth if tx.completed)
    report.check(
        "every session completed, as the chargers saw it", completed == len(truth), f"{completed:,}/{len(truth):,}"
    )

    with Session(engine) as s:
        rows = s.scalars(select(SessionRecord)).all()
    stored = {(r.charger_id, r.started_at_ms): r for r in rows}
    report.equal("sessions in the store = sessions at the chargers (none lost, none twice)", len(rows), len(truth))
    missing = set(truth_by_key) - set(stored)
    report.check(
        "every charger's session is in the store", not missing, f"missing {sorted(missing)[:3]}" if missing else ""
    )
    wrong = [
        k
        for k, tx in truth_by_key.items()
        if k in stored and (stored[k].status, stored[k].energy_wh) != ("completed", tx.energy_wh)
    ]
    report.check("each stored session is completed with the charger's energy", not wrong, f"{len(wrong)} differ")
    truth_wh = sum(tx.energy_wh for tx in truth)
    report.equal("energy total (Wh)", sum(int(r.energy_wh or 0) for r in rows), truth_wh)

    biller = Biller(
        engine,
        tariffs,
        AuthorizationBook(engine, None, lambda _v: ("", "")),  # type: ignore[arg-type]  # no PaymentHub here
        {"EUSD": EUSD_ADDRESS},
        token_id_of=lambda cid: int(cid.rsplit("-", 1)[1]) + 1,
    )
    while biller.sweep():
        pass
    with Session(engine) as s:
        bills = s.scalars(select(SettlementRecord)).all()
    truth_cost = sum(tx.energy_wh * TARIFF.energy_price_per_wh + TARIFF.session_fee for tx in truth)
    report.equal("sessions billed", len(bills), len(truth))
    report.equal("cost total (EUSD base units)", sum(int(b.amount) for b in bills), truth_cost)
    engine.dispose()
