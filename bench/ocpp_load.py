"""OCPP central-system load: electra's gateway and a plain `ocpp` baseline, measured in the same run.

    .venv/bin/python bench/ocpp_load.py                                 # 1,000 / 5,000 / 10,000 chargers
    .venv/bin/python bench/ocpp_load.py --write docs/benchmarks.md      # and rewrite its table there
    .venv/bin/python bench/ocpp_load.py --quick                         # 200 chargers, a few seconds
    .venv/bin/python bench/ocpp_load.py --ours-rev HEAD                 # ours as committed, not the tree
    .venv/bin/python bench/ocpp_load.py --only ours --chargers 200 --steady-s 0 --paced-s 0 \
        --burst-s 20 --profile /tmp/ours.prof                           # where the server's CPU goes

For each N and each server: the server runs alone in its own process pinned to core 0; the load
generator (bench/loadgen.py: raw websockets clients with pre-serialised OCPP 1.6J frames) runs in
other processes pinned to the other core, and so does this orchestrator. The chargers connect in
waves and boot, then go through three phases, each starting once the previous one is drained:
steady (scaled Heartbeat and MeterValues intervals), paced (open loop at `--paced-rate` calls/s in
total) and burst (closed loop, one outstanding call per charger, as OCPP-J allows). Latency is
measured at the client from sending a CALL to receiving its CALLRESULT. Calls/s counts answered
calls from the window's start to the last answer. The server's CPU, peak RSS and the load other
processes put on its core come from /proc; its GC pauses from `gc.callbacks`.

Ours is `electra.ocpp.gateway.CentralSystem`, started by `start_electra_server` below with an
in-memory charger directory that admits the N bench charger ids (admission from the chain is not
what is measured here), persisting into a SQLite file in a temporary directory. The baseline is
bench/baseline_csms.py, run in the same harness (`--serve baseline` imports it).

Both servers are started by this file (`--serve`), which takes commands on stdin (OPEN/CLOSE a
measurement window, STOP). `--profile FILE` runs cProfile, with a per-thread CPU clock, on the event
loop thread and on the default executor's threads (where the `ocpp` library validates messages when
`ASYNC_VALIDATION` is on and where ours commits) during one phase, and prints a summary. The
experiments `--validation async|sync|off` (`ocpp.messages.ASYNC_VALIDATION`, or no schema
validation at all), `--gc freeze` (`gc.freeze()` once the chargers are connected) and `--loop asyncio`
(ours on asyncio's event loop instead of uvloop) change the server process only, to measure what
those cost.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime as dt
import gc
import json
import logging
import os
import platform
import pstats
import queue
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path
from typing import Any

import loadgen

BENCH = Path(__file__).resolve().parent
BEGIN, END = "<!-- ocpp:begin -->", "<!-- ocpp:end -->"
TABLE_BEGIN, TABLE_END = "<!-- ocpp:table:begin -->", "<!-- ocpp:table:end -->"
SERVER_CORE = 0
PREFIX = "BENCH-"
SERVERS = ("ours", "baseline")
PHASES = ("steady", "paced", "burst")

# ------------------------------------------------------------------------------------------------
# Ours: the server side. Keep this one function the only place that knows CentralSystem's shape.


async def start_electra_server(
    charger_ids: list[str],
    port: int,
    data_dir: Path,
    gc_mode: str = "electra",
    gc_young: int = 0,
    meter_signing: str = "required",
) -> tuple[Any, dict[str, str]]:
    """Start electra's central system on 127.0.0.1:port, admitting exactly `charger_ids`.

    `data_dir` is a private temporary directory for what the server persists. Returns the started
    system (with `.port` and an async `.stop()`) and a note of how it was configured.
    """
    import inspect

    from electra.ocpp.directory import ChargerAdmission, StaticChargerDirectory
    from electra.ocpp.gateway import CentralSystem

    directory = StaticChargerDirectory({cid: ChargerAdmission(cid, i + 1, True) for i, cid in enumerate(charger_ids)})
    if "store" not in inspect.signature(CentralSystem).parameters:  # the gateway before it persisted
        system = CentralSystem(directory, host="127.0.0.1", port=port)
        await system.start()
        return system, {"store": "none (this gateway persists nothing)", "auth": "none"}
    from electra.ocpp.gateway import CsmsStore

    db = data_dir / "electra.db"
    signing = "meter_signing" in inspect.signature(CsmsStore.open).parameters
    store = (
        CsmsStore.open(f"sqlite:///{db}", meter_signing=meter_signing) if signing else CsmsStore.open(f"sqlite:///{db}")
    )
    for i, tag in enumerate(loadgen.id_tags()):  # the drivers' cards, so StartTransaction is Accepted
        store.tokens.issue(tag, owner=f"0x{i + 1:040x}")
    kwargs: dict[str, Any] = {}
    if gc_mode == "electra" and "gc_policy" in inspect.signature(CentralSystem).parameters:
        from electra.ocpp.gateway import GcPolicy

        kwargs["gc_policy"] = GcPolicy(young=gc_young) if gc_young else GcPolicy()
    system = CentralSystem(directory, store, host="127.0.0.1", port=port, security_profile=0, **kwargs)
    await system.start()
    return system, {
        "store": f"SQLite (WAL) file via CsmsStore, {loadgen.TAG_POOL:,} id tags issued",
        "auth": "security profile 0 (no Basic auth)",
        **({"meter signing": f"{meter_signing} (the load's frames are unsigned)"} if signing else {}),
    }


def count_persisted(data_dir: Path, exact: bool = False) -> int | None:
    """OCPP messages ours has committed to its message log in `data_dir`; None without a log.

    The default reads the newest row id (O(log n), cheap enough to call while the server runs);
    `exact` counts the rows.
    """
    db = data_dir / "electra.db"
    if not db.exists():
        return None
    sql = "SELECT count(*) FROM ocpp_messages" if exact else "SELECT coalesce(max(id), 0) FROM ocpp_messages"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    finally:
        conn.close()


# ------------------------------------------------------------------------------------------------
# Server process entry for ours (also used for profiling and the validation experiments).


class _ThreadProfiles:
    """cProfile for the default executor's threads: one profile per thread, on only during work."""

    def __init__(self) -> None:
        self.enabled = False
        self.profiles: list[cProfile.Profile] = []
        self._local = threading.local()
        self._lock = threading.Lock()

    def wrap(self, fn: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            if not self.enabled:
                return fn(*args, **kwargs)
            prof = getattr(self._local, "prof", None)
            if prof is None:
                prof = self._local.prof = cProfile.Profile(time.thread_time)
                with self._lock:
                    self.profiles.append(prof)
            prof.enable()
            try:
                return fn(*args, **kwargs)
            finally:
                prof.disable()

        return run


class _ProfiledExecutor(ThreadPoolExecutor):
    def __init__(self, profiles: _ThreadProfiles) -> None:
        super().__init__(max_workers=min(32, (os.cpu_count() or 1) + 4))  # asyncio's default size
        self._profiles = profiles

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        return super().submit(self._profiles.wrap(fn), *args, **kwargs)


def _set_validation(mode: str) -> None:
    """The schema-validation experiments, inside a server process (`as-is` changes nothing)."""
    import ocpp.charge_point
    import ocpp.messages

    if mode == "sync":  # the library validates in the event loop
        ocpp.messages.ASYNC_VALIDATION = False
    elif mode == "async":  # the library validates in the default thread pool (its default)
        ocpp.messages.ASYNC_VALIDATION = True
    elif mode == "off":  # no validation at all: what it costs, not a way to run

        async def no_validation(message: Any, ocpp_version: str) -> None:
            return None

        ocpp.charge_point.validate_payload = no_validation  # type: ignore[assignment]
        try:
            import electra.ocpp.frames as frames
        except ImportError:  # a gateway from before the frame guard
            return
        frames.schema_check = lambda version, action, payload: None  # type: ignore[assignment]
    elif mode != "as-is":
        raise SystemExit(f"unknown validation mode {mode!r}")


class _Windows:
    """Measurement windows the orchestrator opens and closes (OPEN, CLOSE on stdin) around each phase.
    Each closed window prints `WINDOW {...}` with the cyclic GC's pauses in it; the window numbered
    `profile_window` also runs cProfile (per-thread CPU clock) on the event loop thread and on the
    default executor's threads, and dumps the stats to `profile_path`."""

    def __init__(self, profile_path: str | None, profile_window: int, freeze_gc: bool = False) -> None:
        self.freeze_gc = freeze_gc
        self.profile_path = profile_path
        self.profile_window = profile_window
        self.count = 0
        self.threads = _ThreadProfiles()
        self.executor = _ProfiledExecutor(self.threads) if profile_path else None
        self.main: cProfile.Profile | None = None
        self.gc: dict[int, dict[str, float]] = {}
        self._gc_t0 = 0.0
        # The server's own counters (ours: group-commit batches and writes), reported per window.
        self.counters: Any = None
        self._counted: dict[str, int] = {}
        gc.callbacks.append(self._gc_callback)

    def _gc_callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_t0 = time.perf_counter()
            return
        pause = time.perf_counter() - self._gc_t0
        entry = self.gc.setdefault(info["generation"], {"runs": 0, "total_s": 0.0, "max_s": 0.0, "collected": 0})
        entry["runs"] += 1
        entry["collected"] += info["collected"]
        entry["total_s"] += pause
        entry["max_s"] = max(entry["max_s"], pause)

    def open(self) -> None:
        self.count += 1
        if self.count == 1 and self.freeze_gc:  # chargers are connected: park their objects for good
            gc.collect()
            gc.freeze()
        self.gc = {}
        self._counted = self.counters() if self.counters is not None else {}
        if self.profile_path and self.count == self.profile_window:
            self.threads.enabled = True
            self.main = cProfile.Profile(time.thread_time)
            self.main.enable()

    def close(self) -> None:
        profiled = None
        if self.main is not None:
            self.main.disable()
            self.threads.enabled = False
            stats = pstats.Stats(self.main)
            for prof in self.threads.profiles:
                stats.add(prof)
            assert self.profile_path is not None
            stats.dump_stats(self.profile_path)
            profiled, self.main = self.profile_path, None
        counted = self.counters() if self.counters is not None else {}
        counters = {k: v - self._counted.get(k, 0) for k, v in counted.items()}
        print(f"WINDOW {json.dumps({'gc': self.gc, 'profiled': profiled, 'counters': counters})}", flush=True)


def _start_control(loop: asyncio.AbstractEventLoop, windows: _Windows, stop: Any) -> None:
    """Commands from the orchestrator on stdin: OPEN and CLOSE a window, STOP (or end of input).
    Not signals: asyncio learns of a signal through its wakeup pipe, and when a busy loop lets that
    pipe fill up (one byte per thread-pool completion) the signal is lost."""

    def read() -> None:
        for line in sys.stdin:
            command = line.strip()
            if command == "OPEN":
                loop.call_soon_threadsafe(windows.open)
            elif command == "CLOSE":
                loop.call_soon_threadsafe(windows.close)
            elif command == "STOP":
                break
        loop.call_soon_threadsafe(stop)

    threading.Thread(target=read, name="bench control", daemon=True).start()


async def _serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    windows = _Windows(args.profile, args.profile_window, args.gc == "freeze")
    if windows.executor is not None:
        loop.set_default_executor(windows.executor)
    if args.serve == "baseline":
        import baseline_csms

        _set_validation(args.validation)
        task = asyncio.ensure_future(baseline_csms.main("127.0.0.1", args.port))  # prints READY
        _start_control(loop, windows, task.cancel)
        await asyncio.wait([task])
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
        return
    ids = [f"{PREFIX}{i:06d}" for i in range(args.serve_chargers)]
    system, config = await start_electra_server(
        ids, args.port, Path(args.data_dir), args.gc, args.gc_young, args.meter_signing
    )
    writer = getattr(getattr(system, "store", None), "writer", None)
    if writer is not None:
        windows.counters = lambda: {"commit_batches": writer.batches, "writes": writer.writes}
    _set_validation(args.validation)  # after start: the gateway sets the library's flag as it starts
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    _start_control(loop, windows, stop.set)
    print(f"READY {json.dumps({'port': system.port, 'loop': args.loop} | config)}", flush=True)
    await stop.wait()
    await system.stop()


def serve(args: argparse.Namespace) -> None:
    """A server process: ours, or the baseline under the same measurement harness. Ours runs on the
    event loop `electra csms` runs on (`--loop`, as ELECTRA_EVENT_LOOP); the baseline, as the
    library documents it, on asyncio's."""
    loadgen.raise_nofile()
    logging.basicConfig(level=logging.WARNING)
    if args.serve == "ours":
        try:
            from electra import eventloop
        except ImportError:  # a gateway from before the event-loop setting: asyncio's loop
            args.loop = "asyncio"
        else:
            args.loop = eventloop.loop_in_use(args.loop)
            eventloop.run(_serve(args), args.loop)
            return
    else:
        args.loop = "asyncio"
    asyncio.run(_serve(args))


# ------------------------------------------------------------------------------------------------
# Orchestration.

ALL_CORES = frozenset(os.sched_getaffinity(0))  # before this process pins itself


class Child:
    """A child process that speaks in lines: `TAG {json}` on stdout, commands on stdin. A thread
    reads its stdout so that every wait for a line has a timeout."""

    def __init__(self, what: str, cmd: list[str], stderr: Any = None, env: dict[str, str] | None = None) -> None:
        self.what = what
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, name=f"{what} stdout", daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def expect(self, tag: str, timeout_s: float) -> Any:
        """The JSON value after `tag` on the next line of stdout that starts with it."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"{self.what}: no {tag} within {timeout_s:.0f} s") from None
            if line is None:
                raise RuntimeError(f"{self.what} exited (code {self.proc.wait()}) before it printed {tag}")
            if line.startswith(tag + " "):
                return json.loads(line[len(tag) + 1 :])
            sys.stderr.write(f"[{self.what}] {line}")

    def tell(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self, grace_s: float = 60, command: str | None = None) -> None:
        """Ask it to stop (a command line if given, SIGTERM otherwise); kill it after grace_s."""
        if self.proc.poll() is None:
            try:
                if command is not None:
                    self.tell(command)
                else:
                    self.proc.terminate()
            except BrokenPipeError:
                self.proc.terminate()
        try:
            self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            sys.stderr.write(f"[{self.what}] did not stop within {grace_s:.0f} s; killed\n")
            self.proc.kill()
            self.proc.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) in kB from /proc (psutil is not a dependency)."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def _proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _core_busy_s(core: int) -> float:
    """CPU seconds core `core` spent on anything but idle since boot (/proc/stat)."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in line.split()[1:9])
            return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    raise RuntimeError(f"no cpu{core} in /proc/stat")


def _pin(pid: int, cores: set[int] | frozenset[int]) -> None:
    if len(ALL_CORES) > 1 and cores and cores <= ALL_CORES:
        os.sched_setaffinity(pid, cores)


def check_frames() -> None:
    """Every frame the load generator sends must pass the `ocpp` library's OCPP 1.6 schemas."""
    from ocpp.messages import Call, validate_payload

    sample = loadgen.Charger(f"{PREFIX}000000", 0)
    for name, payload in loadgen.frames(sample).items():
        action = name.split(" ", 1)[0]
        asyncio.run(validate_payload(Call("1", action, json.loads(payload)), "1.6"))


def start_server(server: str, n: int, data_dir: Path, args: argparse.Namespace, log: Any) -> tuple[Child, str, Any]:
    port = _free_port()
    env = dict(os.environ)
    cmd = [sys.executable, str(BENCH / "ocpp_load.py"), "--serve", server, "--port", str(port)]
    cmd += ["--serve-chargers", str(n), "--data-dir", str(data_dir), "--validation", args.validation]
    cmd += ["--gc", args.gc, "--gc-young", str(args.gc_young), "--loop", args.loop]
    cmd += ["--meter-signing", args.meter_signing]
    if args.profile:
        phases = [name for name in PHASES if getattr(args, f"{name}_s") > 0]
        window = phases.index(args.profile_phase) + 1
        cmd += ["--profile", str(Path(args.profile).resolve()), "--profile-window", str(window)]
    if server == "ours" and args.ours_src:
        paths = [str(Path(args.ours_src).resolve()), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    url = f"ws://127.0.0.1:{port}/ocpp/" if server == "ours" else f"ws://127.0.0.1:{port}/"
    child = Child(f"{server} server", cmd, stderr=log, env=env)
    _pin(child.pid, {SERVER_CORE})
    return child, url, child.expect("READY", 300)


def run_one(server: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"ocpp-load-{server}-") as tmp:
        data_dir = Path(tmp)
        log_path = data_dir / "server.log"
        workers: list[Child] = []
        srv: Child | None = None
        with open(log_path, "w") as log:
            try:
                srv, url, ready = start_server(server, n, data_dir, args, log)
                result = _drive(server, n, url, srv, workers, data_dir, args)
                result["config"] = ready if isinstance(ready, dict) else {"store": "none", "auth": "none"}
                return result
            finally:
                for w in workers:
                    w.stop(20)
                if srv is not None:
                    srv.stop(60, "STOP")
                tail = [line[:300] for line in log_path.read_text().splitlines()[-12:]]
                if tail:
                    print(f"[{server} server log, last lines]\n" + "\n".join(tail), file=sys.stderr)


def _drive(
    server: str, n: int, url: str, srv: Child, workers: list[Child], data_dir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    load_cores = ALL_CORES - {SERVER_CORE} or ALL_CORES
    per = -(-n // args.procs)
    for first in range(0, n, per):
        cmd = [sys.executable, str(BENCH / "loadgen.py"), "--url", url, "--prefix", PREFIX]
        cmd += ["--first", str(first), "--count", str(min(per, n - first)), "--concurrency", str(args.concurrency)]
        w = Child(f"loadgen {first}", cmd)
        _pin(w.pid, load_cores)
        workers.append(w)

    cpu0 = _proc_cpu_s(srv.pid)
    connected = [w.expect("CONNECTED", 900) for w in workers]
    out: dict[str, Any] = {
        "server": server,
        "chargers": n,
        "connected": sum(c["connected"] for c in connected),
        "connect_s": max(c["connect_s"] for c in connected),
        "connect": merge([c["connect"] for c in connected]),
        "server_cpu_connect_s": _proc_cpu_s(srv.pid) - cpu0,
        "rss_connected_mb": _proc_status(srv.pid).get("VmRSS", 0) / 1024,
        "phases": {},
        "errors": {},
        "loadgen_cpu_s": {"connect": sum(c["loadgen_cpu_s"] for c in connected)},
    }
    merge([c["boot"] for c in connected], out["errors"])
    merge([c["connect"] for c in connected], out["errors"])

    plans = {
        "steady": {"heartbeat_s": args.heartbeat_s or args.steady_s / 2, "meter_s": args.meter_s or args.steady_s / 4},
        "paced": {"interval_s": n / args.paced_rate if args.paced_rate else 0.0},
        "burst": {},
    }
    for name, extra in plans.items():
        length = getattr(args, f"{name}_s")
        if length <= 0:
            continue
        t0 = time.time() + 0.5
        go = "GO " + json.dumps({"phase": name, "t0": t0, "length_s": length} | extra)
        for w in workers:
            w.tell(go)
        time.sleep(max(0.0, t0 - time.time()))
        srv.tell("OPEN")  # the server opens a measurement window
        c0, k0, p0 = _proc_cpu_s(srv.pid), _core_busy_s(SERVER_CORE), count_persisted(data_dir)
        time.sleep(max(0.0, t0 + length - time.time()))
        cpu = (_proc_cpu_s(srv.pid) - c0) / length
        others = (_core_busy_s(SERVER_CORE) - k0) / length - cpu  # other processes on the server's core
        done = [w.expect("DONE", 600) for w in workers]  # every call of the phase answered
        p1 = count_persisted(data_dir)
        srv.tell("CLOSE")
        window = srv.expect("WINDOW", 600)
        drain = max(d["drain_s"] for d in done)
        ph = merge(done, out["errors"], busy_s=length + drain)
        ph |= extra | {"server_cpu": cpu, "others_on_server_core": max(0.0, others), "gc": window["gc"]}
        ph["server_counters"] = window.get("counters", {})
        ph["drain_s"] = drain
        if p0 is not None and p1 is not None:
            ph["persisted"], ph["persisted_rate"] = p1 - p0, (p1 - p0) / (length + drain)
        out["phases"][name] = ph
        out["loadgen_cpu_s"][name] = sum(d["loadgen_cpu_s"] for d in done)

    out["rss_peak_mb"] = _proc_status(srv.pid).get("VmHWM", 0) / 1024
    for w in workers:
        w.tell("CLOSE")
    closed = [w.expect("CLOSED", 300) for w in workers]
    out["close_s"] = max(c["close_s"] for c in closed)
    srv.stop(120, "STOP")  # ours commits what is queued
    out["persisted_total"] = count_persisted(data_dir, exact=True)
    out["answered_total"] = sum(ph["ok"] for ph in out["phases"].values()) + 2 * out["connected"]
    return out


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values.sort()
    return values[min(len(values) - 1, int(q * len(values)))]


def merge(parts: list[dict[str, Any]], errors: dict[str, int] | None = None, busy_s: float = 0.0) -> dict[str, Any]:
    """One phase's reports from all workers as one: counts added, latencies pooled, errors tallied.

    `rate` is calls answered per second from the window's start until the last answer of the phase
    (`busy_s`, the window plus the drain): calls are only sent inside the window, and a saturated
    server works on them until the drain ends. Counting only answers inside the window would
    understate it when one round of N calls takes longer than the window (10,000 chargers at a few
    hundred calls/s)."""
    lat: list[float] = []
    by_action: dict[str, list[float]] = {}
    out: dict[str, Any] = {"offered": 0, "sent": 0, "ok": 0, "in_window": 0}
    for p in parts:
        lat.extend(p["lat_ms"])
        for action, values in p.get("lat_ms_by_action", {}).items():
            by_action.setdefault(action, []).extend(values)
        for k in ("offered", "sent", "ok", "in_window"):
            out[k] += p[k]
        if errors is not None:
            for kind, count in p["errors"].items():
                errors[kind] = errors.get(kind, 0) + count
    out["window_s"] = parts[0]["window_s"]
    out["p50_ms"], out["p99_ms"], out["max_ms"] = _pct(lat, 0.50), _pct(lat, 0.99), max(lat, default=None)
    out["by_action"] = {
        action: {"calls": len(v), "p50_ms": _pct(v, 0.50), "p99_ms": _pct(v, 0.99), "max_ms": max(v)}
        for action, v in sorted(by_action.items())
    }
    out["rate"] = out["ok"] / busy_s if busy_s else None
    out["offered_rate"] = out["offered"] / out["window_s"] if out["window_s"] else None
    return out


# ------------------------------------------------------------------------------------------------
# Reporting.


def _f(x: float | None, spec: str = ",.0f") -> str:
    return "" if x is None else format(x, spec)


def _lat(ph: dict[str, Any] | None) -> str:
    if not ph or ph["p50_ms"] is None:
        return ""
    return f"{_f(ph['p50_ms'], '.1f')} / {_f(ph['p99_ms'], '.1f')}"


COLUMNS = (
    "chargers",
    "server",
    "connected",
    "connect s",
    "steady calls/s (offered)",
    "steady p50 / p99 ms",
    "paced calls/s (offered)",
    "paced p50 / p99 ms",
    "burst calls/s",
    "burst persisted/s",
    "burst p50 / p99 ms",
    "peak RSS MB",
    "errors",
)
SERVER_COLUMNS = (
    "chargers",
    "server",
    "server CPU steady / paced / burst",
    "other load on its core",
    "GC in burst: runs, total s, longest pause s",
    "burst drain s",
    "RSS connected MB",
)


def _rate(ph: dict[str, Any] | None, offered: bool = False) -> str:
    if not ph:
        return ""
    return f"{_f(ph['rate'])} ({_f(ph['offered_rate'])})" if offered else _f(ph["rate"])


def rows(results: list[dict[str, Any]]) -> list[list[str]]:
    out = []
    for r in results:
        if "failed" in r:
            out.append([f"{r['chargers']:,}", r["server"], f"failed: {r['failed']}"] + [""] * (len(COLUMNS) - 3))
            continue
        ph = r["phases"]
        burst = ph.get("burst")
        persisted = "not persisted" if r["persisted_total"] is None else _f(burst and burst.get("persisted_rate"))
        out.append(
            [
                f"{r['chargers']:,}",
                r["server"],
                f"{r['connected']:,}",
                _f(r["connect_s"], ".1f"),
                _rate(ph.get("steady"), offered=True),
                _lat(ph.get("steady")),
                _rate(ph.get("paced"), offered=True),
                _lat(ph.get("paced")),
                _rate(burst),
                persisted,
                _lat(burst),
                _f(r["rss_peak_mb"]),
                f"{sum(r['errors'].values()):,}",
            ]
        )
    return out


def server_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    out = []
    for r in results:
        if "failed" in r:
            continue
        ph = r["phases"]
        burst = ph.get("burst", {})
        cpu = " / ".join(f"{ph[k]['server_cpu']:.0%}" if k in ph else "-" for k in PHASES)
        others = max((p["others_on_server_core"] for p in ph.values()), default=0.0)
        gcs = burst.get("gc", {}).values()
        gc_cell = (
            f"{sum(int(g['runs']) for g in gcs):,}, {sum(g['total_s'] for g in gcs):.2f}, "
            f"{max((g['max_s'] for g in gcs), default=0.0):.2f}"
            if burst
            else ""
        )
        out.append(
            [
                f"{r['chargers']:,}",
                r["server"],
                cpu,
                f"up to {others:.0%}",
                gc_cell,
                _f(burst.get("drain_s"), ".1f"),
                _f(r["rss_connected_mb"]),
            ]
        )
    return out


def markdown(results: list[dict[str, Any]], args: argparse.Namespace, command: str) -> str:
    right = {"chargers", "connected", "connect s", "peak RSS MB", "errors"} | {c for c in COLUMNS if "/s" in c}
    ok = [r for r in results if "failed" not in r]
    steady = next((r["phases"]["steady"] for r in ok if "steady" in r["phases"]), None)
    configs = sorted(
        {
            f"{r['server']}: store {r['config']['store']}, auth {r['config']['auth']}"
            + f", event loop {r['config'].get('loop', 'asyncio')}"
            + (f", meter signing {r['config']['meter signing']}" if r["config"].get("meter signing") else "")
            + (f", {r['config']['code']}" if r["config"].get("code") else "")
            for r in ok
        }
    )
    lines = [
        f"Command: `{command}`  ",
        f"Run: {dt.date.today().isoformat()}, {machine()}.  ",
        f"Phases: steady {args.steady_s:g} s"
        + (
            f" (Heartbeat every {steady['heartbeat_s']:g} s; half of the chargers start a transaction and send "
            f"MeterValues every {steady['meter_s']:g} s)"
            if steady
            else ""
        )
        + f", paced {args.paced_s:g} s at {args.paced_rate:,} calls/s offered in total, burst {args.burst_s:g} s "
        f"closed loop. Load generator: {args.procs} process(es) on the other core, {args.concurrency} handshakes "
        "in flight, websocket compression off.  ",
        "Servers: " + "; ".join(configs) + ".",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "| " + " | ".join("---:" if c in right else "---" for c in COLUMNS) + " |",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows(results)]
    lines += ["", "| " + " | ".join(SERVER_COLUMNS) + " |", "| --- | --- |" + " ---: |" * (len(SERVER_COLUMNS) - 2)]
    lines += ["| " + " | ".join(row) + " |" for row in server_rows(results)]
    notes = []
    for r in results:
        if r.get("errors"):
            kinds = ", ".join(f"{k}: {v:,}" for k, v in sorted(r["errors"].items(), key=lambda kv: -kv[1]))
            notes.append(f"- {r['server']} at {r['chargers']:,}: {kinds}")
    if notes:
        lines += ["", "Errors by kind:", "", *notes]
    return "\n".join(lines)


def machine() -> str:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return (
        f"{os.cpu_count()} cores ({model}), Linux {platform.release()}, Python {platform.python_version()}, "
        f"ocpp {version('ocpp')}, websockets {version('websockets')}"
    )


def print_table(results: list[dict[str, Any]]) -> None:
    """Both tables on the terminal: rich is a dependency of the CLI, so it is there."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=240)
    for title, columns, body in (
        ("OCPP central system under load", COLUMNS, rows(results)),
        ("Server side", SERVER_COLUMNS, server_rows(results)),
    ):
        table = Table(title=title)
        for c in columns:
            table.add_column(c, justify="left" if c == "server" else "right")
        for row in body:
            table.add_row(*row)
        console.print(table)


def write_section(path: Path, generated: str) -> None:
    text = path.read_text() if path.exists() else ""
    block = f"{TABLE_BEGIN}\n{generated}\n{TABLE_END}"
    if TABLE_BEGIN in text and TABLE_END in text:
        text = re.sub(re.escape(TABLE_BEGIN) + ".*?" + re.escape(TABLE_END), lambda _: block, text, flags=re.S)
    elif BEGIN in text and END in text:
        section = f"{BEGIN}\n## OCPP central system under load\n\n{block}\n{END}"
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n## OCPP central system under load\n\n{block}\n{END}\n"
    path.write_text(text)


def profile_summary(path: str, top: int = 25) -> str:
    """CPU seconds by package and the top functions by own time, from a --profile stats file."""
    stats = pstats.Stats(path)
    groups: dict[str, float] = {}
    total = 0.0
    funcs = []
    for (file, line, name), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        total += tt
        groups[_package(file, name)] = groups.get(_package(file, name), 0.0) + tt
        funcs.append((tt, ct, nc, f"{_short(file)}:{line}({name})"))
    out = [f"profiled CPU: {total:.2f} s (per-thread CPU clock, one phase)", "", "own time by package:"]
    for pkg, tt in sorted(groups.items(), key=lambda kv: -kv[1]):
        out.append(f"  {tt / total:6.1%}  {tt:7.2f} s  {pkg}")
    out += ["", f"top {top} functions by own time (own s, cumulative s, calls):"]
    for tt, ct, nc, where in sorted(funcs, reverse=True)[:top]:
        out.append(f"  {tt:7.2f} {ct:7.2f} {nc:9,}  {where}")
    return "\n".join(out)


def _short(file: str) -> str:
    for marker in ("site-packages/", "python3.11/", "src/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def _package(file: str, name: str) -> str:
    if file == "~":  # C builtins: group by what they are
        for key, label in (
            ("json", "json (C)"),
            ("socket", "socket I/O (C)"),
            ("epoll", "epoll (C)"),
            ("select", "epoll (C)"),
            ("sqlite3", "sqlite3 (C)"),
            ("re.Pattern", "re (C)"),
            ("thread", "thread/GIL handoff (C)"),
            ("acquire", "thread/GIL handoff (C)"),
        ):
            if key in name:
                return label
        return "other builtins"
    short = _short(file)
    top = short.split("/", 1)[0]
    if top in ("asyncio", "concurrent", "threading.py", "queue.py", "selectors.py"):
        return "asyncio + executor"
    if top in ("json",):
        return "json (Python)"
    if top.endswith(".py") and "/" not in short:
        return f"stdlib {top}"
    return top


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=BENCH.parent, capture_output=True, text=True, check=True).stdout.strip()


def export_ours(rev: str, into: Path) -> str:
    """Writes src/ of git revision `rev` under `into`; returns the full commit id."""
    commit = _git("rev-parse", "--verify", f"{rev}^{{commit}}")
    archive = subprocess.run(["git", "archive", commit, "src"], cwd=BENCH.parent, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return commit


def ours_provenance(args: argparse.Namespace, commit: str | None) -> str:
    if commit:
        changed = _git("log", "-1", "--format=%h", commit, "--", "src")
        return f"commit {commit[:12]} (src/ last changed in {changed})"
    if args.ours_src:
        return f"sources from {args.ours_src}"
    head = _git("rev-parse", "HEAD")[:12]
    dirty = _git("status", "--porcelain", "--", "src")
    return f"working tree at {head}" + (" with uncommitted changes in src/" if dirty else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chargers", default="1000,5000,10000", help="comma-separated charger counts")
    ap.add_argument("--only", choices=SERVERS, help="run one server only")
    ap.add_argument("--steady-s", type=float, default=24.0)
    ap.add_argument("--paced-s", type=float, default=12.0, help="0 skips the paced phase")
    ap.add_argument("--paced-rate", type=int, default=3000, help="offered calls/s in total in the paced phase")
    ap.add_argument("--burst-s", type=float, default=18.0)
    ap.add_argument("--heartbeat-s", type=float, help="steady heartbeat interval (default steady-s / 2)")
    ap.add_argument("--meter-s", type=float, help="steady MeterValues interval (default steady-s / 4)")
    ap.add_argument("--procs", type=int, default=1, help="load generator processes")
    ap.add_argument("--concurrency", type=int, default=64, help="handshakes in flight per load generator")
    ap.add_argument(
        "--validation",
        choices=("as-is", "async", "sync", "off"),
        default="as-is",
        help="experiment: ocpp.messages.ASYNC_VALIDATION on or off, or no schema validation at all",
    )
    ap.add_argument(
        "--gc",
        choices=("electra", "python", "freeze"),
        default="electra",
        help="experiment: ours with its GcPolicy (the default), with Python's default collector settings, or"
        " with those and gc.freeze() once the chargers are connected",
    )
    ap.add_argument(
        "--gc-young",
        type=int,
        default=0,
        help="experiment: ours' GcPolicy with this young-generation threshold (0: GcPolicy's default)",
    )
    ap.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="ours' event loop (ELECTRA_EVENT_LOOP; the default is electra's); the baseline runs on asyncio's",
    )
    ap.add_argument(
        "--meter-signing",
        choices=("required", "optional"),
        default="required",
        help="ours' ELECTRA_METER_SIGNING (default: required, as deployed); the load's frames carry no signed"
        " meter data, so under required every session ends flagged meter_data_unverified",
    )
    ap.add_argument("--profile", help="cProfile the server during one phase into this file (with --only)")
    ap.add_argument("--profile-phase", choices=("steady", "paced", "burst"), default="burst")
    ap.add_argument("--ours-src", help="run ours from this src directory instead of the working tree")
    ap.add_argument("--ours-rev", help="run ours from this git revision (exported to a temporary directory)")
    ap.add_argument("--quick", action="store_true", help="200 chargers, a few seconds per phase")
    ap.add_argument("--write", type=Path, help="rewrite the ocpp section of this markdown file")
    ap.add_argument("--json", type=Path, help="write the full results here")
    ap.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    ap.add_argument("--profile-window", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--serve-chargers", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args)
        return 0
    if args.quick:
        args.chargers, args.steady_s, args.paced_s, args.burst_s, args.paced_rate = "200", 4.0, 3.0, 3.0, 400
    if args.profile and not args.only:
        ap.error("--profile profiles one server: add --only ours or --only baseline")
    if args.profile and getattr(args, f"{args.profile_phase}_s") <= 0:
        ap.error(f"--profile-phase {args.profile_phase}: that phase is skipped")
    loadgen.raise_nofile()
    _pin(0, ALL_CORES - {SERVER_CORE})  # this process too keeps off the server's core
    check_frames()
    with tempfile.TemporaryDirectory(prefix="ocpp-load-src-") as src_tmp:
        commit = None
        if args.ours_rev:
            commit = export_ours(args.ours_rev, Path(src_tmp))
            args.ours_src = str(Path(src_tmp) / "src")
        provenance = ours_provenance(args, commit)
        results = run_all(args)
    for r in results:
        if r["server"] == "ours" and "config" in r:
            r["config"]["code"] = provenance
    print_table(results)
    command = "python bench/ocpp_load.py " + " ".join(sys.argv[1:])
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    if args.profile:
        print(profile_summary(args.profile))
    if args.write:
        write_section(args.write, markdown(results, args, command))
    return 0


def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    counts = [int(x) for x in args.chargers.split(",")]
    results: list[dict[str, Any]] = []
    for n in counts:
        for server in SERVERS:
            if args.only and server != args.only:
                continue
            print(f"== {server}, {n:,} chargers", file=sys.stderr, flush=True)
            try:
                r = run_one(server, n, args)
            except RuntimeError as exc:  # a run that hangs or dies is a result too; go on with the next
                print(f"   failed: {exc}", file=sys.stderr, flush=True)
                results.append({"server": server, "chargers": n, "failed": str(exc)})
                continue
            results.append(r)
            print(f"   {' | '.join(rows([r])[0])}", file=sys.stderr, flush=True)
    return results


if __name__ == "__main__":
    sys.exit(main())
