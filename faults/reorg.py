"""The chain reorganizes while sessions are settled and anchored: anvil's ``evm_snapshot`` /
``evm_revert`` undo the most recent blocks, which hold settlement batches and anchors, several times
during the run (twice with --quick).

Checked: the workers detect every undone settlement and anchor, resubmit them (the same transaction
while its nonce is free, else signed anew), the backlog drains, and every session ends settled
exactly once and anchored exactly once, on-chain and in the store."""

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
from electra.store.models import SettlementBatchRecord
from electra.store.session_log import SessionLog
from faults.chainworld import Workers, authorize_all, chain_world, check_exactly_once, run_fleet, wait_drained
from faults.harness import Report

SEED = 33
SPEED = 600.0  # sessions of hours take seconds: many complete, and settle, during the outage


def confirmed_work(world: object) -> tuple[int, int]:
    engine = world.engine  # type: ignore[attr-defined]
    with Session(engine) as s:
        batches = int(s.scalar(select(func.count()).where(SettlementBatchRecord.status == "confirmed")) or 0)
    return batches, len(SessionLog(engine).batches("anchored"))


def run(report: Report, workdir: Path) -> None:
    reorgs = 2 if report.quick else 5
    chargers, vehicles = (4, 24) if report.quick else (8, 64)
    fleet_real_s = 20 + 12 * reorgs
    scenario = build_scenario(SEED, chargers, vehicles, mix=0.5, duration_s=int(fleet_real_s * SPEED))
    with chain_world(report, workdir, scenario) as world:
        gate = payments_for(world.electra, world.engine)
        authorize_all(world, gate)
        payments = payments_for(world.electra, world.engine, max_batch=5, max_age_s=0)
        anchoring = AnchorWorker(SessionLog(world.engine), world.electra.anchors, max_batch=5, max_age_s=0)
        workers = Workers(payments, anchoring, every_s=1.0)
        client = world.electra.client
        undone: list[dict[str, int]] = []

        def reorganize(_fleet: Fleet) -> None:
            time.sleep(8)
            for _ in range(reorgs):
                snap = client.rpc("evm_snapshot")
                head = int(client.w3.eth.block_number)
                before = confirmed_work(world)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:  # until the workers confirmed more on top of the snapshot
                    now = confirmed_work(world)
                    if now[0] > before[0] and now[1] > before[1]:
                        break
                    time.sleep(0.3)
                blocks = int(client.w3.eth.block_number) - head
                client.rpc("evm_revert", snap)
                undone.append({"blocks": blocks, "batches": now[0] - before[0], "anchors": now[1] - before[1]})
                time.sleep(4)

        workers.start()
        try:
            fleet = asyncio.run(run_fleet(world, gate, SPEED, reorganize))
            drained, drain_s, left = wait_drained(world, 180)
            time.sleep(2)  # one more round of both workers after the last revert has been looked at
        finally:
            workers.stop()
        for i, u in enumerate(undone, 1):
            report.did(
                f"reorg {i}: evm_revert undid {u['blocks']} blocks holding {u['batches']} settlement batch(es) and "
                f"{u['anchors']} anchor(s) the workers had recorded as confirmed"
            )
        undone_batches = sum(u["batches"] for u in undone)
        undone_anchors = sum(u["anchors"] for u in undone)
        reorged_s = sum(r.reorged for _, r in workers.settle_reports)
        reorged_a = sum(r.reorged for _, r in workers.anchor_reports)
        report.check(
            "the reorgs undid settlements and anchors",
            undone_batches > 0 and undone_anchors > 0,
            f"{undone_batches} batches, {undone_anchors} anchors",
        )
        report.equal("undone settlement batches detected by the settlement worker", reorged_s, undone_batches)
        report.check(
            "undone anchors detected by the anchoring worker",
            reorged_a >= undone_anchors,
            f"{reorged_a} detected for {undone_anchors} undone",
        )
        report.check("no worker crashed", not workers.crashes, "; ".join(workers.crashes[:2]))
        report.check("the backlog drained", drained, f"in {drain_s:.1f} s after the fleet stopped; left {left}")
        check_exactly_once(report, world, [tx for c in fleet.chargers for tx in c.sessions])
