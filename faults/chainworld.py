"""A paying fleet on a fresh dev chain, for the scenarios that break the chain: anvil with Electra
deployed, simulated chargers registered as NFTs, vehicles registered, funded on PaymentHub and
holding signed charge authorizations, the central system in this process with the payment gate,
and the settlement and anchoring workers, which may talk to the chain through another RPC URL
(a cuttable proxy)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from web3 import Web3

from electra.chain.anchoring import AnchorReport, AnchorWorker
from electra.chain.bindings import Electra
from electra.chain.client import ChainClient, connect
from electra.chain.deploy import deploy
from electra.chain.devchain import DevChain
from electra.chain.keys import dev_account
from electra.chain.settlement import RunReport
from electra.config import ANVIL_CHAIN_ID, load_settings
from electra.ocpp.directory import ChainChargerDirectory
from electra.ocpp.gateway import CentralSystem, CsmsStore
from electra.payments.service import Payments
from electra.sim.base import SimTransaction
from electra.sim.clock import SimClock
from electra.sim.fleet import Fleet
from electra.sim.provision import Provisioned, provision
from electra.sim.scenario import Scenario, vehicle_account
from electra.store.models import SessionRecord, SettlementRecord
from electra.store.session_log import SessionLog
from faults.harness import Report, free_port

DEPOSIT, MAX_CHARGE = 500 * 10**6, 100 * 10**6  # EUSD base units


@dataclass
class ChainWorld:
    devchain: DevChain
    electra: Electra  # straight to anvil: set-up, the central system's gate, ground truth
    store: CsmsStore
    scenario: Scenario
    done: Provisioned
    funded: dict[int, int] = field(default_factory=dict)  # vehicle id -> deposit

    @property
    def engine(self) -> Engine:
        return self.store.engine

    def client_via(self, rpc_url: str, timeout_s: float = 5.0) -> ChainClient:
        w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s}))
        return ChainClient(w3, ANVIL_CHAIN_ID, dev_account(0), rpc_url)

    def electra_via(self, rpc_url: str) -> Electra:
        return Electra.of(self.client_via(rpc_url), self.electra.deployment)


@contextlib.contextmanager
def chain_world(report: Report, workdir: Path, scenario: Scenario) -> Iterator[ChainWorld]:
    settings = load_settings(data_dir=workdir / "data", dev_chain_port=free_port())
    dev = DevChain(settings)
    dev.start()
    try:
        client = connect(settings)
        deployment, _ = deploy(client, settings)
        electra = Electra.of(client, deployment)
        store = CsmsStore.open(f"sqlite:///{workdir}/csms.db")
        t0 = time.monotonic()
        done = provision(electra, scenario, dev_account(0), store.engine)
        world = ChainWorld(dev, electra, store, scenario, done)
        coin = electra.stablecoin
        coin.mint(client.account.address, DEPOSIT * len(scenario.vehicles))
        for vid in done.vehicle_ids.values():
            electra.payments.deposit(vid, coin.address, DEPOSIT)
            world.funded[vid] = DEPOSIT
        report.did(
            f"anvil on 127.0.0.1:{settings.dev_chain_port} with Electra deployed; "
            f"{len(scenario.chargers)} charger NFTs and {len(scenario.vehicles)} vehicles registered, "
            f"each vehicle holding {DEPOSIT // 10**6} EUSD on PaymentHub ({time.monotonic() - t0:.0f} s)"
        )
        yield world
        store.engine.dispose()
    finally:
        dev.stop()


def authorize_all(world: ChainWorld, payments: Payments) -> int:
    tokens = list(world.done.station_tokens.values())
    coin = world.electra.stablecoin.address
    return sum(
        payments.authorizations.ensure(
            vehicle_account(world.scenario.seed, v.index),
            world.done.vehicle_ids[v.index],
            tokens,
            coin,
            MAX_CHARGE,
            86_400,
        )
        for v in world.scenario.vehicles
    )


async def run_fleet(
    world: ChainWorld, payments: Payments, speed: float, during: Callable[[Fleet], Any] | None = None
) -> Fleet:
    """Runs the scenario's fleet against a central system in this process whose gate asks
    PaymentHub (straight, not through the proxy); ``during(fleet)`` runs beside it in a thread."""
    world.store.sessions.gate = payments.gate.check
    clock = SimClock(speed)
    system = CentralSystem(ChainChargerDirectory(world.electra.stations), world.store, port=0, security_profile=1)
    await system.start()
    try:
        fleet = Fleet(
            world.scenario,
            f"ws://127.0.0.1:{system.port}",
            clock,
            passwords=world.done.passwords,
            response_timeout_s=30,
            config={"MeterValueSampleInterval": "600", "HeartbeatInterval": "3600"},
        )
        beside = asyncio.create_task(asyncio.to_thread(during, fleet)) if during is not None else None
        await fleet.run(flush_timeout_s=30)
        if beside is not None:
            await beside
        return fleet
    finally:
        await system.stop()


class Workers:
    """The settlement and anchoring workers, each run every ``every_s`` on a thread of its own, as
    `electra up` runs them; their reports are kept."""

    def __init__(self, payments: Payments, anchoring: AnchorWorker, every_s: float = 1.0) -> None:
        self.payments = payments
        self.anchoring = anchoring
        self.every_s = every_s
        self.settle_reports: list[tuple[float, RunReport]] = []
        self.anchor_reports: list[tuple[float, AnchorReport]] = []
        self.crashes: list[str] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, args=(payments.worker.run_once, self.settle_reports), daemon=True),
            threading.Thread(target=self._loop, args=(anchoring.run_once, self.anchor_reports), daemon=True),
        ]

    def _loop(self, run_once: Callable[[bool], Any], into: list[tuple[float, Any]]) -> None:
        while not self._stop.is_set():
            try:
                into.append((time.monotonic(), run_once(True)))
            except Exception as exc:  # noqa: BLE001 - a worker that raises is a finding, kept for the report
                self.crashes.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(self.every_s)

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(180)

    def errors_between(self, t0: float, t1: float) -> int:
        reports = [r for t, r in self.settle_reports + self.anchor_reports if t0 <= t <= t1]  # type: ignore[operator]
        return sum(len(r.errors) for r in reports)


def backlog(world: ChainWorld) -> dict[str, int]:
    """What is still to do on-chain: completed sessions not billed, billed not settled, records not anchored."""
    log = SessionLog(world.engine)
    with Session(world.engine) as s:
        completed = int(s.scalar(select(func.count()).where(SessionRecord.status == "completed")) or 0)
        billed = int(s.scalar(select(func.count()).select_from(SettlementRecord)) or 0)
        open_ = int(s.scalar(select(func.count()).where(SettlementRecord.status.in_(("pending", "batched")))) or 0)
    unanchored = log.last_seq() - sum(b.count for b in log.batches("anchored"))
    return {"unbilled": completed - billed, "unsettled": open_, "unanchored": unanchored}


def wait_drained(world: ChainWorld, timeout_s: float) -> tuple[bool, float, dict[str, int]]:
    t0 = time.monotonic()
    left = backlog(world)
    while time.monotonic() - t0 < timeout_s:
        left = backlog(world)
        if not any(left.values()):
            return True, time.monotonic() - t0, left
        time.sleep(0.5)
    return False, time.monotonic() - t0, left


def check_exactly_once(report: Report, world: ChainWorld, truth: list[SimTransaction]) -> None:
    """The store and the chain against the chargers' records and each other: every session settled
    once, every vehicle charged exactly what its settled sessions cost, every record anchored once."""
    e = world.electra
    coin = e.stablecoin.address
    with Session(world.engine) as s:
        sessions = s.scalars(select(SessionRecord)).all()
        bills = s.scalars(select(SettlementRecord)).all()
    completed = [tx for tx in truth if tx.completed]
    report.equal("sessions completed at the chargers = completed in the store", len(completed), len(sessions))
    report.equal(
        "energy total (Wh): store = chargers",
        sum(int(r.energy_wh or 0) for r in sessions),
        sum(tx.energy_wh for tx in completed),
    )
    by_status: dict[str, int] = {}
    for b in bills:
        by_status[b.status] = by_status.get(b.status, 0) + 1
    report.equal("settlement rows by status", by_status, {"settled": len(sessions)})
    not_on_chain = [b.session_id for b in bills if not e.payments.is_settled(b.session_id)]
    report.check("every settled session is settled on PaymentHub", not not_on_chain, f"{len(not_on_chain)} are not")
    charged: dict[int, int] = {}
    for b in bills:
        if b.vehicle_id is not None and b.status == "settled":
            charged[b.vehicle_id] = charged.get(b.vehicle_id, 0) + int(b.amount)
    wrong = [
        vid for vid, deposit in world.funded.items() if e.payments.balance(vid, coin) != deposit - charged.get(vid, 0)
    ]
    report.check(
        "every vehicle's PaymentHub balance = its deposit - its settled sessions (each charged once)",
        not wrong,
        f"{len(world.funded) - len(wrong)}/{len(world.funded)} vehicles, {sum(charged.values()):,} EUSD base units",
    )
    settled_events = e.payments.contract.events.BatchSettled().get_logs(from_block=0)
    on_chain = sum(int(ev["args"]["settled"]) for ev in settled_events)
    report.equal("sessions settled in BatchSettled events (none twice)", on_chain, len(sessions))
    log = SessionLog(world.engine)
    anchored = e.anchors.last_anchored_seq()
    report.equal("SessionAnchor's last anchored sequence = the session log's last", anchored, log.last_seq())
    events = e.anchors.anchors_from_events()
    batches = [b for b in log.batches() if b.status == "anchored"]
    report.equal("anchors on-chain = anchored batches in the store (none twice)", len(events), len(batches))
    proofs_ok = all(
        e.anchors.verify_session(p.record.seq, p.leaf, p.proof)
        for p in (log.proof(r.id) for r in sessions[:: max(1, len(sessions) // 20)])
        if p is not None
    )
    report.check("sampled session proofs verify against SessionAnchor", proofs_ok)
