"""PostgreSQL is stopped hard (``pg_ctl stop -m immediate``, as a crash) under a fleet of simulated
chargers and started again 8 s later (30 s without --quick, longer than the central system holds
a write).

Checked against the chargers' own records: the central system reported the outage, kept running,
retried its writes, and lost nothing it had confirmed: every session whose start a charger saw
acknowledged is stored, every acknowledged stop is a completed session with the charger's energy,
and every answered call is in the message log."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from tests.pgserver import PostgresServer, PostgresUnavailable

from electra.charging.tokens import TokenRegistry
from electra.sim.clock import SimClock
from electra.sim.fleet import Fleet
from electra.sim.scenario import build_scenario
from electra.store.db import make_engine, migrate
from electra.store.models import OcppMessage, SessionRecord
from faults.harness import Child, FaultSetupError, Report, children, free_port, python

SEED = 44
SPEED = 60.0
HOLD_S = 20  # the group-commit writer's retry_for_s


class DurablePostgres(PostgresServer):
    """The tests' throwaway cluster, with commits acknowledged only once in the WAL: a hard stop
    then loses nothing that was committed (fsync stays off: the machine itself does not crash)."""

    def _configure(self, port: int) -> None:
        super()._configure(port)
        with (self.data_dir / "postgresql.auto.conf").open("a") as conf:
            conf.write("synchronous_commit = on\n")

    def stop_hard(self) -> None:
        self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "immediate", "-w", "-t", "30")

    def start_again(self) -> None:
        self._run("pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "60")


def run(report: Report, workdir: Path) -> None:
    down_s = 8.0 if report.quick else 30.0
    n = 50 if report.quick else 300
    scenario = build_scenario(SEED, n, n, mix=0.5, duration_s=1_800 if report.quick else 3_000)
    pg = DurablePostgres()
    try:
        pg.start()
    except PostgresUnavailable as exc:
        raise FaultSetupError(f"no PostgreSQL to restart: {exc}", "run `make pg-deps`") from exc
    try:
        pg.create_database("electra_faults")
        url = pg.url("electra_faults")
        engine = make_engine(url)
        migrate(engine)
        tokens = TokenRegistry(engine)
        for v in scenario.vehicles:
            tokens.issue(v.id_tag, vehicle_id=v.index + 1)
        port = free_port()
        report.did(
            f"PostgreSQL {pg.bin_dir.parent.name} on 127.0.0.1:{pg.port}; {n} simulated chargers at {SPEED:g}x "
            f"against `faults.csms_server` on 127.0.0.1:{port}"
        )
        events: dict[str, float] = {}
        with children() as kids:
            csms = Child(
                python(
                    "faults.csms_server",
                    "--db",
                    url,
                    "--port",
                    str(port),
                    "--seed",
                    str(SEED),
                    "--sim-chargers",
                    str(n),
                ),
                name="csms",
            )
            kids.append(csms)
            csms.wait_line("READY ", 120)

            async def body() -> Fleet:
                fleet = Fleet(
                    scenario,
                    f"ws://127.0.0.1:{port}",
                    SimClock(SPEED),
                    response_timeout_s=60,
                    config={"MeterValueSampleInterval": "300", "HeartbeatInterval": "600"},
                )
                runner = asyncio.create_task(fleet.run(flush_timeout_s=60))
                while sum(1 for c in fleet.chargers for tx in c.sessions if tx.start_acked) < n // 4:
                    await asyncio.sleep(0.2)
                events["stopped"] = time.monotonic()
                events["acked_at_stop"] = sum(1 for c in fleet.chargers for tx in c.sessions if tx.start_acked)
                await asyncio.to_thread(pg.stop_hard)
                await asyncio.sleep(down_s)
                events["alive_while_down"] = float(csms.proc.poll() is None)
                await asyncio.to_thread(pg.start_again)
                events["started"] = time.monotonic()
                await runner
                return fleet

            fleet = asyncio.run(body())
            alive_at_end = csms.proc.poll() is None
            logged = list(csms.lines)
        report.did(
            f"PostgreSQL stopped hard with {events['acked_at_stop']:.0f} sessions started so far, "
            f"down for {events['started'] - events['stopped']:.1f} s, then started again"
        )
        held = [line for line in logged if "holding" in line and "retrying" in line]
        back = [line for line in logged if "answers again" in line]
        failed_calls = [line for line in logged if "not stored:" in line]
        report.check("the central system reported the outage", bool(held), held[0][:160] if held else "")
        report.check(
            "it kept running through the outage and after it",
            bool(events["alive_while_down"]) and alive_at_end,
        )
        report.check(
            "its held writes went through once the database was back", bool(back), back[0][:120] if back else ""
        )
        report.did(
            f"{len(failed_calls)} calls answered InternalError (reads that found no database, or writes still "
            f"failing after the {HOLD_S} s hold); the chargers send those again"
        )
        truth = [(c.charger_id, tx) for c in fleet.chargers for tx in c.sessions]
        engine.dispose()  # its pooled connections died with the server
        with Session(engine) as s:
            stored = {(r.charger_id, r.started_at_ms): r for r in s.scalars(select(SessionRecord))}
            logged_calls = Counter(
                dict(s.execute(select(OcppMessage.action, func.count()).group_by(OcppMessage.action)).all())
            )
        started = [(cid, tx) for cid, tx in truth if tx.start_acked]
        lost_starts = [k for k in ((cid, tx.started_ms) for cid, tx in started) if k not in stored]
        report.check(
            "every start a charger saw acknowledged is stored",
            not lost_starts,
            f"{len(started) - len(lost_starts)}/{len(started)}",
        )
        stopped = [(cid, tx) for cid, tx in started if tx.stop_acked]
        wrong = [
            (cid, tx.started_ms)
            for cid, tx in stopped
            if (cid, tx.started_ms) not in stored
            or (stored[(cid, tx.started_ms)].status, stored[(cid, tx.started_ms)].energy_wh)
            != ("completed", tx.energy_wh)
        ]
        report.check(
            "every acknowledged stop is a completed session with the charger's energy",
            not wrong,
            f"{len(stopped) - len(wrong)}/{len(stopped)}, {sum(tx.energy_wh for _, tx in stopped):,} Wh",
        )
        answered: Counter[str] = Counter()
        for c in fleet.chargers:
            answered.update(c.answered)
        short = {a: (logged_calls.get(a, 0), k) for a, k in answered.items() if logged_calls.get(a, 0) < k}
        report.check(
            "every call the chargers got an answer to is in the message log",
            not short,
            f"{sum(answered.values()):,} answered, {sum(logged_calls.values()):,} logged" if not short else f"{short}",
        )
        report.did(f"{len(stopped)}/{len(truth)} sessions completed at the chargers")
        engine.dispose()
    finally:
        pg.stop()
