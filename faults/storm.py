"""A reconnect storm: 10,000 chargers (2,000 with --quick) connected to the central system, which
is killed with SIGKILL and started again; every charger reconnects on its own (random delay up to
10 s, then backoff while refused) and boots.

Checked: every charger is connected and booted again within 60 s of the restart, and the central
system logged each of those boots (its message log in the store)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from electra.store.db import make_engine, migrate
from electra.store.models import OcppMessage
from faults.harness import Child, Report, children, free_port, python

PROCESSES = 2
WITHIN_S = 60.0


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(p * len(sorted_values)))]


def run(report: Report, workdir: Path) -> None:
    n = 2_000 if report.quick else 10_000
    db = f"sqlite:///{workdir}/storm.db"
    engine = make_engine(db)
    migrate(engine)
    port = free_port()
    args = ["--db", db, "--port", str(port), "--bench-chargers", str(n), "--heartbeat-s", "3600"]
    report.did(
        f"{n:,} raw OCPP 1.6J clients in {PROCESSES} processes (bench/loadgen.py's lean client) against "
        f"`faults.csms_server` (SQLite store) on 127.0.0.1:{port}"
    )
    with children() as kids:
        csms = Child(python("faults.csms_server", *args), name="csms")
        kids.append(csms)
        csms.wait_line("READY ", 120)
        per = n // PROCESSES
        clients = []
        for i in range(PROCESSES):
            c = Child(
                python(
                    "faults.storm_clients",
                    "--url",
                    f"ws://127.0.0.1:{port}/ocpp/",
                    "--first",
                    str(i * per),
                    "--count",
                    str(per if i < PROCESSES - 1 else n - i * per),
                    "--give-up-s",
                    str(WITHIN_S * 2),
                ),
                name=f"storm-clients-{i}",
            )
            kids.append(c)
            clients.append(c)
        t0 = time.monotonic()
        first = [c.json_line("CONNECTED ", 600) for c in clients]
        connected = sum(f["connected"] for f in first)
        report.did(f"{connected:,} connected and booted in {time.monotonic() - t0:.1f} s")
        with Session(engine) as s:
            boots_before = int(s.scalar(select(func.count()).where(OcppMessage.action == "BootNotification")) or 0)
        csms.kill9()
        killed = time.monotonic()
        time.sleep(2)
        csms = Child(python("faults.csms_server", *args), name="csms")
        kids[0] = csms
        csms.wait_line("READY ", 120)
        restarted = time.time()
        report.did(f"SIGKILL, then a new central system listening {time.monotonic() - killed:.1f} s later")
        for c in clients:
            c.send("RESTARTED " + json.dumps({"at": restarted}))
        results = [c.json_line("RECONNECTED ", WITHIN_S * 2 + 60) for c in clients]
        alive = csms.proc.poll() is None
    after = sorted(x for r in results for x in r["after_s"])
    booted = sum(r["booted"] for r in results)
    errors: dict[str, int] = {}
    refused: dict[str, int] = {}
    for r in results:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
        for k, v in r["refused_rounds"].items():
            refused[k] = refused.get(k, 0) + v
    report.did(
        f"reconnect after the restart: p50 {percentile(after, 0.5):.1f} s, p95 {percentile(after, 0.95):.1f} s, "
        f"last {after[-1] if after else float('nan'):.1f} s; attempts refused or failed on the way: {refused or 'none'}"
    )
    report.equal("chargers connected before the kill", connected, n)
    report.equal("chargers booted again after the restart", booted, n)
    within = sum(1 for x in after if x <= WITHIN_S)
    report.check(f"all of them within {WITHIN_S:.0f} s of the restart", within == n, f"{within:,}/{n:,}")
    report.check("no call of the storm failed (CallError, timeout)", not errors, f"{errors}" if errors else "")
    report.check("the central system survived the storm", alive)
    with Session(engine) as s:
        boots = int(s.scalar(select(func.count()).where(OcppMessage.action == "BootNotification")) or 0)
    report.check(
        "the store logged a BootNotification of each since the restart",
        boots - boots_before >= n,
        f"{boots - boots_before:,}",
    )
    engine.dispose()
