"""The data directory fills up under a running central system, then is read-only at a start: its
store is a SQLite file on a 2 MiB tmpfs mounted for the scenario (root can mount; the scenario
says so and fails if it cannot).

Checked: the writes that cannot be made are refused with a CALLERROR, the central system says why
in one line and keeps running, and once space is freed it stores again; on the read-only directory
the central system and the CLI stop with one line naming the cause; nothing that was answered is
missing and the database passes SQLite's integrity check afterwards."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from faults.harness import Child, FaultSetupError, Report, children, env_for, free_port, python

CHARGER = "BENCH-000000"
FILLER_BYTES = 1024 * 1024


def mount(where: Path, *options: str) -> None:
    proc = subprocess.run(["mount", *options, str(where)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise FaultSetupError(f"cannot mount a tmpfs at {where}: {proc.stderr.strip()}", "run the scenario as root")


def meter_values(i: int) -> str:
    samples = [
        {"value": str(1_000_000 + i * 10 + k), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
        for k in range(20)
    ]
    payload = {"connectorId": 1, "meterValue": [{"timestamp": "2026-12-08T10:00:00Z", "sampledValue": samples}]}
    return json.dumps([2, f"mv-{i}", "MeterValues", payload])


async def send_until(url: str, first: int, stop_on_error: bool, limit: int) -> tuple[list[str], list[Any]]:
    """MeterValues until a CALLERROR (or ``limit``): the ids answered with a CALLRESULT, and the errors."""
    ok: list[str] = []
    errors: list[Any] = []
    async with connect(url, subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        boot = {"chargePointVendor": "Electra", "chargePointModel": "Faults"}
        await ws.send(json.dumps([2, f"boot-{first}", "BootNotification", boot]))
        await asyncio.wait_for(ws.recv(), 30)  # the boot's own write may fail too: only MeterValues count
        for i in range(first, first + limit):
            await ws.send(meter_values(i))
            answer = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if answer[0] == 3:
                ok.append(answer[1])
            else:
                errors.append(answer)
                if stop_on_error:
                    break
    return ok, errors


def run(report: Report, workdir: Path) -> None:
    data = workdir / "data"
    data.mkdir()
    mount(data, "-t", "tmpfs", "-o", "size=2m", "tmpfs")
    try:
        _run(report, data)
    finally:
        subprocess.run(["umount", "-l", str(data)], check=False)


def _run(report: Report, data: Path) -> None:
    db = data / "electra.db"
    url = f"sqlite:///{db}"
    port = free_port()
    ws_url = f"ws://127.0.0.1:{port}/ocpp/{CHARGER}"
    report.did(f"a 2 MiB tmpfs at {data}; the store {db} on it; `faults.csms_server` on 127.0.0.1:{port}")
    with children() as kids:
        csms = Child(
            python("faults.csms_server", "--db", url, "--port", str(port), "--bench-chargers", "1"), name="csms"
        )
        kids.append(csms)
        csms.wait_line("READY ", 60)
        (data / "filler").write_bytes(b"\0" * FILLER_BYTES)
        stored, errors = asyncio.run(send_until(ws_url, 0, True, 20_000))
        report.did(
            f"{len(stored):,} MeterValues stored until the disk was full ({os.statvfs(data).f_bfree} blocks free); "
            f"then {errors[0][2] if errors else 'no error'}"
        )
        full_line = next((line for line in csms.lines if "not stored:" in line and "disk is full" in line), "")
        report.check("a write on the full disk got a CALLERROR", bool(errors) and errors[0][2] == "InternalError")
        report.check("the central system said why in one line", bool(full_line), full_line[:160])
        report.check("no traceback for it", not any(line.startswith("Traceback") for line in csms.lines))
        (data / "filler").unlink()
        more, errors_after = asyncio.run(send_until(ws_url, 100_000, False, 20))
        report.equal("after space was freed, calls are stored again", (len(more), errors_after), (20, []))
        report.check("the central system is still running", csms.proc.poll() is None)
        csms.stop()
    # A file system cannot turn read-only under open files for writing (the kernel refuses the
    # remount): what an operator meets is a start on a read-only data directory.
    mount(data, "-o", "remount,ro")
    with children() as kids:
        again = Child(
            python("faults.csms_server", "--db", url, "--port", str(free_port()), "--bench-chargers", "1"), name="csms"
        )
        kids.append(again)
        code = again.proc.wait(120)
        said = [line for line in again.lines if line.strip()]
    report.check(
        "the central system on a read-only data directory: exit 1 and one line with the cause",
        code == 1 and len(said) == 1 and "read-only" in said[0],
        f"exit {code}: {said[0][:160] if said else ''}",
    )
    for what, db_url in (("its store", url), ("a new store", f"sqlite:///{data}/fresh/electra.db")):
        env = env_for({"ELECTRA_DB_URL": db_url, "ELECTRA_DATA_DIR": str(data)})
        cli = subprocess.run(
            python("electra.cli.main", "ocpp", "sessions"), env=env, capture_output=True, text=True, timeout=120
        )
        out = (cli.stdout + cli.stderr).strip()
        report.check(
            f"`electra ocpp sessions` on {what} in a read-only data directory: exit 1, one line with the cause",
            cli.returncode == 1 and len(out.splitlines()) == 1 and "read-only" in out.lower(),
            out[:160],
        )
    mount(data, "-o", "remount,rw")
    con = sqlite3.connect(db)
    try:
        integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
        logged = {row[0] for row in con.execute("select message_id from ocpp_messages where action = 'MeterValues'")}
    finally:
        con.close()
    report.equal("SQLite integrity check", integrity, "ok")
    answered = set(stored) | set(more)
    report.check(
        "every call answered with a CALLRESULT is in the store",
        answered <= logged,
        f"{len(answered & logged):,}/{len(answered):,}",
    )
