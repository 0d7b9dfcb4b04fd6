"""Session log and Merkle tree speed, against baselines measured in the same run.

    .venv/bin/python bench/ledger.py                              # prints the table
    .venv/bin/python bench/ledger.py --write docs/benchmarks.md   # and rewrites its section there
    .venv/bin/python bench/ledger.py --quick                      # smaller sizes, a few seconds

Ingest: realistic session events (started, 8 meter values, stopped) of 1,000 chargers, in the order
a central system sees them (each batch holds events of every charger), appended with
``SessionLog.append`` in batches of 2,000 (the group-commit writer's largest batch) into a fresh
SQLite file (WAL, synchronous=NORMAL, as the platform opens it): canonical encoding, digest, chain
hash, duplicate guard, head locking, inserts. Median of three runs. Baselines on the same events,
in fresh files: (a) the same append, one transaction per event; (b) the same encoding and hashing
with the SQLAlchemy ORM (``Session.add_all`` of model objects, heads as ORM objects), same batches.

OCPP hot path: the session service (``SessionService`` over a ``GroupCommitWriter`` on SQLite)
driven by many chargers at once, each running sessions of start, 8 MeterValues and stop; calls/s
and CPU per call with the session log on and off, alternating, median of three each.

Merkle: 100,000 session records; their leaves (``SessionRecord.leaf``), the root
(``MerkleTree.of``, median of three), proofs and verification (median over 2,000 sampled leaves).
Baselines: the same tree built with ``eth_hash.auto``'s keccak, and ``@openzeppelin/merkle-tree``
1.0.8 on node for the same values (tests/merkle_oz.js): ``StandardMerkleTree.of``, ``makeMerkleTree``
from the leaves, ``getProof`` and ``StandardMerkleTree.verify`` (which hashes the leaf from its values).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import shlex
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from benchlib import write_section
from electra.charging.service import SessionService
from electra.charging.tokens import TokenRegistry
from electra.domain.keccak import keccak256
from electra.domain.merkle import MerkleTree, verify
from electra.domain.record import LEAF_TYPES, SessionRecord
from electra.domain.session_log import ChainHead, EventType, LogEvent, chain, encode
from electra.ocpp.meter import RegisterReading
from electra.store.db import make_engine, migrate
from electra.store.models import LogEventRecord, LogHeadRecord
from electra.store.session_log import SessionLog
from electra.store.writer import GroupCommitWriter

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- ledger:begin -->", "<!-- ledger:end -->"
T0 = 1_795_000_000_000
ASSET = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
GOAL_EVENTS_PER_S = 20_000
GOAL_VERIFY_US = 100.0
METER_VALUES = 8


@dataclass
class Sizes:
    events: int = 100_000
    chargers: int = 1_000
    batch: int = 2_000
    one_tx_events: int = 3_000
    leaves: int = 100_000
    samples: int = 2_000
    hot_chargers: int = 300
    hot_sessions: int = 2
    runs: int = 3


QUICK = Sizes(20_000, 500, 2_000, 500, 10_000, 500, 60, 1, 1)


@dataclass
class Row:
    what: str
    ours: str
    baseline: str
    goal: str = ""


def median_of(runs: int, fn: Callable[[], float]) -> float:
    return statistics.median(fn() for _ in range(runs))


# -- ingest -----------------------------------------------------------------------------------------


def session_events(chargers: int, total: int) -> list[LogEvent]:
    """Waves of one session per charger; within a wave, every charger's next event in turn."""
    per_session = METER_VALUES + 2
    events: list[LogEvent] = []
    session = 0
    while len(events) < total:
        wave = list(range(session + 1, session + chargers + 1))
        session += chargers
        for step in range(per_session):
            for n, sid in enumerate(wave):
                charger, at = f"CP-{n:05d}", T0 + sid * 1_000 + step * 60_000
                if step == 0:
                    e = LogEvent(charger, EventType.STARTED, sid, at, {"connector_id": 1, "meter_start_wh": 0})
                elif step == per_session - 1:
                    data = {"energy_wh": 8_000, "meter_stop_wh": 8_000, "reason": "EVDisconnected"}
                    e = LogEvent(charger, EventType.STOPPED, sid, at, data)
                else:
                    e = LogEvent(charger, EventType.METER_VALUE, sid, at, {"register_wh": step * 1_000})
                events.append(e)
    return events[:total]


def fresh_engine(tmp: str, name: str) -> Engine:
    engine = make_engine(f"sqlite:///{tmp}/{name}.db")
    migrate(engine)
    return engine


def ingest_rate(events: list[LogEvent], batch: int, append: Callable[[Engine, list[LogEvent]], object]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        engine = fresh_engine(tmp, "ingest")
        try:
            start = time.perf_counter()
            for i in range(0, len(events), batch):
                append(engine, events[i : i + batch])
            elapsed = time.perf_counter() - start
            assert SessionLog(engine).verify_chains() == [], "the benchmark's chains must verify"
        finally:
            engine.dispose()
    return len(events) / elapsed


def ours(engine: Engine, events: list[LogEvent]) -> object:
    return SessionLog(engine).append(events)


def orm_append(engine: Engine, events: list[LogEvent]) -> object:
    """Baseline (b): the same chaining, written the plain ORM way."""
    now = int(time.time() * 1000)
    with Session(engine) as s, s.begin():
        ids = sorted({e.charger_id for e in events})
        rows = {h.charger_id: h for h in s.scalars(select(LogHeadRecord).where(LogHeadRecord.charger_id.in_(ids)))}
        heads = {c: ChainHead(h.last_index, bytes.fromhex(h.last_hash[2:])) for c, h in rows.items()}
        items = [encode(e) for e in events]
        chained = chain(heads, items)
        s.add_all(
            LogEventRecord(
                charger_id=c.charger_id,
                chain_index=c.chain_index,
                type=c.type,
                session_id=c.session_id,
                payload=c.canonical.decode(),
                digest="0x" + digest.hex(),
                prev_hash="0x" + c.prev_hash.hex(),
                hash="0x" + c.hash.hex(),
                created_at_ms=now,
            )
            for c, (_, _, digest) in zip(chained, items, strict=True)
        )
        for charger_id, head in heads.items():
            row = rows.get(charger_id)
            if row is None:
                row = LogHeadRecord(charger_id=charger_id)
                s.add(row)
            row.last_index, row.last_hash, row.updated_at_ms = head.last_index, "0x" + head.last_hash.hex(), now
    return None


def measure_ingest(z: Sizes) -> dict[str, float]:
    events = session_events(z.chargers, z.events)
    return {
        "ours": median_of(z.runs, lambda: ingest_rate(events, z.batch, ours)),
        "one_tx": ingest_rate(events[: z.one_tx_events], 1, ours),
        "orm": median_of(z.runs, lambda: ingest_rate(events, z.batch, orm_append)),
    }


# -- the OCPP hot path ------------------------------------------------------------------------------


MODES = {"off": {"log_events": False}, "start/stop": {}, "+ meter values": {"log_meter_values": True}}


def hot_path(z: Sizes, mode: str) -> tuple[float, float]:
    """(calls/s, CPU µs per call) of the session service with the log in this mode (MODES)."""

    async def charger(svc: SessionService, n: int) -> int:
        calls = 0
        for k in range(z.hot_sessions):
            t0 = T0 + k * 3_600_000
            s = await svc.start(f"CP-{n:05d}", "1.6", 1, "BENCH", t0, 0)
            for m in range(1, METER_VALUES + 1):
                await svc.record(f"CP-{n:05d}", s.uid, [RegisterReading(t0 + m * 60_000, m * 1_000)])
            await svc.stop(f"CP-{n:05d}", s.uid, t0 + 600_000, 9_000, "EVDisconnected")
            calls += METER_VALUES + 2
        return calls

    async def main(engine: Engine) -> tuple[float, float]:
        writer = GroupCommitWriter(engine)
        await writer.start()
        try:
            svc = SessionService(engine, writer, TokenRegistry(engine), **MODES[mode])
            wall, cpu = time.perf_counter(), time.process_time()
            calls = sum(await asyncio.gather(*(charger(svc, n) for n in range(z.hot_chargers))))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        finally:
            await writer.stop()
        return calls / wall, cpu / calls * 1e6

    with tempfile.TemporaryDirectory() as tmp:
        engine = fresh_engine(tmp, "hot")
        try:
            result = asyncio.run(main(engine))
            log = SessionLog(engine)
            assert log.verify_chains() == [] and (mode == "off") == (log.head("CP-00000").last_index == 0)
        finally:
            engine.dispose()
    return result


def measure_hot_path(z: Sizes) -> dict[str, tuple[float, float]]:
    runs: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
    for mode in MODES:  # warm-up: imports, statement compilation, caches
        hot_path(Sizes(hot_chargers=20, hot_sessions=1), mode)
    for _ in range(z.runs):  # alternating, so that drift in the machine's load hits every mode alike
        for mode in MODES:
            runs[mode].append(hot_path(z, mode))
    med = statistics.median
    return {mode: (med(x[0] for x in r), med(x[1] for x in r)) for mode, r in runs.items()}


# -- Merkle -----------------------------------------------------------------------------------------


def records(n: int) -> list[SessionRecord]:
    return [
        SessionRecord(
            i, 1 + i % 1_000, i % 5_000, T0 + i, T0 + i + 3_600_000, i, i + 8_000, 8_000, ASSET, 12_345_678 + i
        )
        for i in range(1, n + 1)
    ]


def timed_us(fn: Callable[[], object]) -> float:
    start = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - start) / 1_000


def eth_hash_root(leaves: Sequence[bytes]) -> bytes:
    """Baseline: the same tree with eth_hash.auto's keccak (what the PyPI ports use)."""
    from eth_hash.auto import keccak

    ordered = sorted(leaves)
    n = len(ordered)
    nodes = [b""] * (n - 1) + ordered[::-1]
    for i in range(n - 2, -1, -1):
        a, b = nodes[2 * i + 1], nodes[2 * i + 2]
        nodes[i] = keccak(a + b if a < b else b + a)
    return nodes[0]


def measure_merkle(z: Sizes) -> dict[str, float]:
    from eth_hash.auto import keccak as eth_hash_keccak

    recs = records(z.leaves)
    start = time.perf_counter()
    leaves = [r.leaf() for r in recs]
    leaf_us = (time.perf_counter() - start) / len(recs) * 1e6
    trees: list[MerkleTree] = []
    build_s = median_of(z.runs, lambda: timed_us(lambda: trees.append(MerkleTree.of(leaves))) / 1e6)
    tree = trees[-1]
    baseline_roots: list[bytes] = []
    baseline_s = timed_us(lambda: baseline_roots.append(eth_hash_root(leaves))) / 1e6
    assert baseline_roots == [tree.root]
    step = max(1, len(leaves) // z.samples)
    picks = list(range(0, len(leaves), step))
    proofs = {i: tree.proof(i) for i in picks}
    proof_us = statistics.median(timed_us(lambda i=i: tree.proof(i)) for i in picks)
    verify_us = statistics.median(timed_us(lambda i=i: verify(tree.root, leaves[i], proofs[i])) for i in picks)
    from_values_us = statistics.median(
        timed_us(lambda i=i: verify(tree.root, recs[i].leaf(), proofs[i])) for i in picks
    )
    assert all(verify(tree.root, leaves[i], proofs[i]) for i in picks)
    data = os.urandom(64)
    keccak_us = statistics.median(timed_us(lambda: keccak256(data)) for _ in range(20_000))
    eth_hash_us = statistics.median(timed_us(lambda: eth_hash_keccak(data)) for _ in range(20_000))
    out = {
        "leaf_us": leaf_us,
        "build_s": build_s,
        "eth_hash_build_s": baseline_s,
        "proof_us": proof_us,
        "verify_us": verify_us,
        "verify_values_us": from_values_us,
        "keccak_us": keccak_us,
        "eth_hash_keccak_us": eth_hash_us,
        "depth_min": float(min(len(p) for p in proofs.values())),
        "depth_max": float(max(len(p) for p in proofs.values())),
    }
    out.update(measure_openzeppelin(recs, tree.root, z.samples))
    return out


def measure_openzeppelin(recs: list[SessionRecord], root: bytes, samples: int) -> dict[str, float]:
    request = {
        "op": "time",
        "types": list(LEAF_TYPES),
        "values": [[str(v) for v in r.values()] for r in recs],
        "samples": samples,
    }
    done = subprocess.run(
        ["node", str(ROOT / "tests" / "merkle_oz.js")],
        input=json.dumps(request) + "\n",
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    answer: dict[str, Any] = json.loads(done.stdout)
    if "error" in answer:
        raise SystemExit(f"merkle_oz.js: {answer['error']}")
    check = subprocess.run(
        ["node", str(ROOT / "tests" / "merkle_oz.js")],
        input=json.dumps({"op": "tree", "types": list(LEAF_TYPES), "values": request["values"][:1], "check": []})
        + "\n",
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert json.loads(check.stdout)["root"] == "0x" + recs[0].leaf().hex()  # same leaves on both sides
    return {
        "oz_of_s": answer["of_ms"] / 1_000,
        "oz_make_tree_s": answer["make_tree_ms"] / 1_000,
        "oz_proof_us": statistics.median(answer["proof_us"]),
        "oz_verify_us": statistics.median(answer["verify_us"]),
    }


# -- report -----------------------------------------------------------------------------------------


def rows(z: Sizes, ingest: dict[str, float], hot: dict[str, tuple[float, float]], m: dict[str, float]) -> list[Row]:
    goal_ingest = "met" if ingest["ours"] >= GOAL_EVENTS_PER_S else "missed"
    goal_verify = "met" if m["verify_us"] < GOAL_VERIFY_US else "missed"
    n = f"{z.leaves:,}"
    return [
        Row(
            f"hash-chained events ingested into SQLite, one process ({z.chargers:,} chargers, batches of {z.batch:,})",
            f"{ingest['ours']:,.0f} events/s",
            f"(a) one transaction per event: {ingest['one_tx']:,.0f} events/s; "
            f"(b) SQLAlchemy ORM, same batches: {ingest['orm']:,.0f} events/s",
            f">= {GOAL_EVENTS_PER_S:,}/s: {goal_ingest}",
        ),
        *(
            Row(
                f"OCPP session service, {z.hot_chargers} chargers at once (start, {METER_VALUES} MeterValues, stop):"
                f" log {mode}",
                f"{hot[mode][0]:,.0f} calls/s, {hot[mode][1]:,.0f} µs CPU per call",
                f"log off: {hot['off'][0]:,.0f} calls/s, {hot['off'][1]:,.0f} µs CPU per call",
                f"CPU per call {100 * (hot[mode][1] / hot['off'][1] - 1):+.0f}%"
                + (" (the default)" if mode == "start/stop" else ""),
            )
            for mode in MODES
            if mode != "off"
        ),
        Row(
            "keccak256 of 64 bytes (median)",
            f"{m['keccak_us']:.2f} µs",
            f"eth_hash.auto: {m['eth_hash_keccak_us']:.2f} µs",
        ),
        Row("session leaf from its values (abi.encode, 2 keccak)", f"{m['leaf_us']:.1f} µs", ""),
        Row(
            f"Merkle root of {n} leaves",
            f"{m['build_s']:.2f} s",
            f"same tree with eth_hash.auto: {m['eth_hash_build_s']:.2f} s; "
            f"npm makeMerkleTree: {m['oz_make_tree_s']:.2f} s",
            "a few seconds: met" if m["build_s"] < 3 else "a few seconds: missed",
        ),
        Row(
            f"StandardMerkleTree of {n} records (leaves + tree)",
            f"{m['build_s'] + m['leaf_us'] * z.leaves / 1e6:.2f} s",
            f"npm StandardMerkleTree.of: {m['oz_of_s']:.2f} s",
        ),
        Row(
            f"proof generation (median of {z.samples:,}, {m['depth_min']:.0f}-{m['depth_max']:.0f} nodes)",
            f"{m['proof_us']:.1f} µs",
            f"npm getProof (it also re-verifies): {m['oz_proof_us']:.1f} µs",
        ),
        Row(
            "proof verification from the leaf (median)",
            f"{m['verify_us']:.1f} µs",
            "",
            f"< {GOAL_VERIFY_US:.0f} µs: {goal_verify}",
        ),
        Row(
            "proof verification from the record's values (median)",
            f"{m['verify_values_us']:.1f} µs",
            f"npm StandardMerkleTree.verify: {m['oz_verify_us']:.1f} µs",
        ),
        # Anchoring gas has its own section (bench/anchor_gas.py, measure_anchor_gas); its rows can
        # be added here as Row(...) without changing the table's shape.
    ]


def table(rs: list[Row]) -> str:
    out = ["| what | electra | baseline (same run) | goal |", "| --- | ---: | --- | --- |"]
    out += [f"| {r.what} | {r.ours} | {r.baseline} | {r.goal} |" for r in rs]
    return "\n".join(out)


METHOD = """\
Ingest: session events (started, 8 meter values, stopped) of 1,000 chargers in the order a central
system sees them (every batch holds events of every charger), appended with `SessionLog.append` in
batches of 2,000 (the group-commit writer's largest batch) into a fresh SQLite file (WAL,
synchronous=NORMAL, as the platform opens it); each event is encoded canonically, hashed, chained
onto its charger's head under the write lock and inserted with one `executemany` per batch; median
of three runs, and the chains are verified after each. Baselines, same events, fresh files: (a) the
same append, one transaction per event; (b) the same encoding and hashing written with the
SQLAlchemy ORM. OCPP hot path: `SessionService` over the group-commit writer on SQLite, 300 chargers
at once each running two sessions of start, 8 MeterValues and stop, with the session log off, logging
starts and stops (the default) and logging every meter value too (alternating, median of three).
Merkle: 100,000 generated session records; the root with `MerkleTree.of` (median of three), proofs
and verification over 2,000 sampled leaves (median), against the same tree built
with `eth_hash.auto`'s keccak and against `@openzeppelin/merkle-tree` 1.0.8 on node for the same
values (tests/merkle_oz.js); npm's verify hashes the leaf from its values, so it compares with our
verification from the values. Anchoring gas is measured by bench/anchor_gas.py in its own section."""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", type=Path, help="rewrite the ledger section of this markdown file")
    ap.add_argument("--quick", action="store_true", help="smaller sizes (not for the record)")
    args = ap.parse_args()
    z = QUICK if args.quick else Sizes()
    ingest = measure_ingest(z)
    print(f"ingest: {ingest}", file=sys.stderr)
    hot = measure_hot_path(z)
    print(f"hot path: {hot}", file=sys.stderr)
    merkle = measure_merkle(z)
    print(f"merkle: {merkle}", file=sys.stderr)
    md = table(rows(z, ingest, hot, merkle))
    print(md)
    if args.write:
        command = "python bench/ledger.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout.strip()
        run = (
            f"Run: {datetime.date.today().isoformat()}, {os.cpu_count()} cores, Python {platform.python_version()},"
            f" SQLite {sqlite3.sqlite_version}, node {node}."
        )
        block = "\n".join(
            [
                BEGIN,
                "## Session log and Merkle trees",
                "",
                f"Command: `{command.strip()}`  ",
                run,
                "",
                METHOD,
                "",
                md,
                END,
            ]
        )
        write_section(args.write, BEGIN, END, block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
