"""The chain's RPC is unavailable for 60 s (10 s with --quick) while sessions are settled and
anchored: the workers reach anvil through a TCP proxy on loopback, which is cut right after it
forwarded a transaction (so the chain mines it and the worker never hears of it), and restored.

Checked: the workers report the outage and keep running, the batch that was in flight is recovered
from its stored transaction, the backlog drains after the outage, and every session is settled
exactly once (PaymentHub's events and every vehicle's balance) and anchored exactly once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from electra.chain.anchoring import AnchorWorker
from electra.payments.service import payments_for
from electra.sim.fleet import Fleet
from electra.sim.scenario import build_scenario
from electra.store.models import SettlementBatchRecord, SettlementRecord
from electra.store.session_log import SessionLog
from faults.chainworld import (
    ChainWorld,
    Workers,
    authorize_all,
    chain_world,
    check_exactly_once,
    run_fleet,
    wait_drained,
)
from faults.harness import Report
from faults.proxy import CuttableProxy

SEED = 21
SPEED = 600.0  # sessions of hours take seconds: many complete, and settle, during the outage


def anchored_seqs(world: ChainWorld) -> int:
    return sum(b.count for b in SessionLog(world.engine).batches("anchored"))


def run(report: Report, workdir: Path) -> None:
    outage_s = 10.0 if report.quick else 60.0
    chargers, vehicles = (4, 24) if report.quick else (8, 64)
    fleet_real_s = outage_s + 45
    scenario = build_scenario(SEED, chargers, vehicles, mix=0.5, duration_s=int(fleet_real_s * SPEED))
    with chain_world(report, workdir, scenario) as world:
        proxy = CuttableProxy(world.devchain.settings.dev_chain_port)
        proxy.start()
        gate = payments_for(world.electra, world.engine)
        authorize_all(world, gate)
        via = world.electra_via(proxy.url)
        payments = payments_for(via, world.engine, max_batch=10, max_age_s=0)
        anchoring = AnchorWorker(SessionLog(world.engine), via.anchors, max_batch=10, max_age_s=0)
        workers = Workers(payments, anchoring, every_s=1.0)
        report.did(
            f"{chargers} chargers and {vehicles} vehicles charging at {SPEED:g}x; the settlement and anchoring "
            f"workers run every second through the proxy at {proxy.url}"
        )
        times: dict[str, float] = {}
        backlog_at_restore: dict[str, int] = {}

        def outage(_fleet: Fleet) -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with Session(world.engine) as s:
                    confirmed = s.scalar(select(func.count()).where(SettlementBatchRecord.status == "confirmed"))
                if confirmed and SessionLog(world.engine).batches("anchored"):
                    break
                time.sleep(0.2)
            proxy.cut_after_send()
            times["armed"] = time.monotonic()
            in_flight = proxy.cut_happened.wait(30)
            if not in_flight:
                proxy.cut()  # no transaction came: cut all the same
            times["cut"] = time.monotonic()
            times["in_flight"] = float(in_flight)
            time.sleep(outage_s)
            with Session(world.engine) as s:
                waiting = set(
                    s.scalars(select(SettlementRecord.session_id).where(SettlementRecord.status != "settled"))
                )
            to_anchor = SessionLog(world.engine).last_seq()
            proxy.restore()
            times["restored"] = time.monotonic()
            backlog_at_restore.update(settle=len(waiting), anchor=to_anchor - anchored_seqs(world))
            while time.monotonic() - times["restored"] < 120:
                with Session(world.engine) as s:
                    left = s.scalar(
                        select(func.count()).where(
                            SettlementRecord.session_id.in_(waiting), SettlementRecord.status != "settled"
                        )
                    )
                if not left and anchored_seqs(world) >= to_anchor:
                    times["drained"] = time.monotonic()
                    return
                time.sleep(0.25)

        workers.start()
        try:
            fleet = asyncio.run(run_fleet(world, gate, SPEED, outage))
            how = "right after a transaction went up" if times.get("in_flight") else "with no transaction in flight"
            report.did(
                f"cut {how}"
                f" {times['cut'] - times['armed']:.1f} s after arming; chain unreachable for "
                f"{times['restored'] - times['cut']:.0f} s; {sum(len(c.sessions) for c in fleet.chargers)} sessions"
            )
            drained, drain_s, left = wait_drained(world, 180)
        finally:
            workers.stop()
            proxy.stop()
        report.check("a transaction was in flight when the RPC went away", bool(times.get("in_flight")))
        errors = workers.errors_between(times["cut"], times["restored"])
        report.check("the workers reported the outage (errors in their runs, retried)", errors > 0, f"{errors} errors")
        report.check("no worker crashed", not workers.crashes, "; ".join(workers.crashes[:2]))
        recovered = sum(r.recovered for _, r in workers.settle_reports + workers.anchor_reports)  # type: ignore[operator]
        report.check("the batch in flight was recovered from its stored transaction", recovered >= 1, f"{recovered}")
        report.check(
            "the backlog of the outage drained after it",
            "drained" in times,
            f"{backlog_at_restore.get('settle')} sessions to settle and {backlog_at_restore.get('anchor')} records "
            f"to anchor at the restore, done {times.get('drained', float('nan')) - times['restored']:.1f} s later",
        )
        report.check("and nothing was left at the end", drained, f"left {left} ({drain_s:.1f} s after the fleet)")
        check_exactly_once(report, world, [tx for c in fleet.chargers for tx in c.sessions])
