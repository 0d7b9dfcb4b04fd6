"""Lean OCPP 1.6J load generator, one worker process of bench/ocpp_load.py.

Each simulated charger is one raw `websockets` client connection (no `ocpp.ChargePoint`, no schema
validation on this side) that sends pre-serialised OCPP-J frames `[2,"<id>","<Action>",{...}]` and
matches the `[3,"<id>",{...}]` reply by its unique id. A charger never has more than one call
outstanding, as OCPP-J requires. The frames are schema-valid OCPP 1.6 (`frames()` gives one of each
so the orchestrator can check them against the `ocpp` library's schemas before a run).

Protocol with the orchestrator (one line each, with a JSON object):
    worker -> stdout  CONNECTED {...}   after all of its chargers connected and booted
    stdin  -> worker  GO {...}          a phase: its name, start (epoch seconds), length, intervals
    worker -> stdout  DONE {...}        once every call of that phase is answered: counts, errors,
                                        latencies in ms, how long answers trailed the window
    stdin  -> worker  CLOSE             close every connection
    worker -> stdout  CLOSED {...}
A phase thus starts on a server that has drained the previous one.

Phases, all chargers at once:
    steady  heartbeats every `heartbeat_s`; half of the chargers start a transaction and send
            MeterValues every `meter_s` (random phase offsets, so the load is spread out)
    paced   open loop at a fixed total offered rate (each charger every N/rate seconds)
    burst   closed loop: every charger sends its next call as soon as the previous one is answered
Paced and burst use the same realistic cycle per charger: StartTransaction, StatusNotification,
MeterValues (energy register in Wh, power, current), suspend/resume, StopTransaction.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import random
import resource
import sys
import time
from array import array
from time import monotonic, perf_counter
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

CALL_TIMEOUT_S = 30.0
CONNECT_ATTEMPTS = 3
TAG_POOL = 1000  # distinct RFID cards; drivers charge at many chargers, so cards repeat across chargers

# Payload templates, filled with % so no dict is built or serialised per call.
BOOT = (
    '{"chargePointVendor":"ElectraSim","chargePointModel":"AC22-T2","chargePointSerialNumber":"%s",'
    '"firmwareVersion":"2.8.1","meterType":"EM340","meterSerialNumber":"%s"}'
)
HEARTBEAT = "{}"
STATUS = '{"connectorId":1,"errorCode":"NoError","status":"%s","timestamp":"%s"}'
START = '{"connectorId":1,"idTag":"%s","meterStart":%d,"timestamp":"%s"}'
STOP = '{"transactionId":%d,"idTag":"%s","meterStop":%d,"timestamp":"%s","reason":"EVDisconnected"}'
_SAMPLES = (
    '"sampledValue":[{"value":"%d","context":"Sample.Periodic","measurand":"Energy.Active.Import.Register",'
    '"location":"Outlet","unit":"Wh"},{"value":"%d","context":"Sample.Periodic","measurand":"Power.Active.Import",'
    '"location":"Outlet","unit":"W"},{"value":"%.1f","context":"Sample.Periodic","measurand":"Current.Import",'
    '"location":"Outlet","unit":"A"}]'
)
METER_TX = '{"connectorId":1,"transactionId":%d,"meterValue":[{"timestamp":"%s",' + _SAMPLES + "}]}"
METER_NO_TX = '{"connectorId":1,"meterValue":[{"timestamp":"%s",' + _SAMPLES + "}]}"

# The per-charger cycle of the paced and burst phases.
CYCLE = (
    "start",
    "charging",
    "meter",
    "meter",
    "meter",
    "suspended",
    "meter",
    "charging",
    "meter",
    "meter",
    "stop",
    "available",
)
AFTER_START = CYCLE.index("start") + 2

_stamp_second = -1
_stamp = ""


def iso_now() -> str:
    """UTC timestamp with second precision, as most chargers send it; formatted once per second."""
    global _stamp_second, _stamp
    second = int(time.time())
    if second != _stamp_second:
        _stamp_second = second
        _stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
    return _stamp


def id_tag(index: int) -> str:
    """The RFID card used at charger `index`: a 7-byte ISO 14443 UID in hex, from a pool of TAG_POOL."""
    return f"{random.Random(index % TAG_POOL).getrandbits(56):014X}"


def id_tags() -> list[str]:
    """Every card of the pool, for a server that must know them to accept StartTransaction."""
    return [id_tag(i) for i in range(TAG_POOL)]


def raise_nofile() -> int:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Phase:
    """Counters of one phase; a call belongs to the phase in which it was sent."""

    __slots__ = ("by_action", "end", "errors", "in_window", "lat", "name", "offered", "ok", "sent", "start")

    def __init__(self, name: str, start: float = 0.0, end: float = float("inf")) -> None:
        self.name, self.start, self.end = name, start, end
        self.lat = array("d")
        self.by_action: dict[str, array[float]] = {}  # the same latencies, by the CALL's action
        self.ok = self.in_window = self.sent = self.offered = 0
        self.errors: dict[str, int] = {}

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def report(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "window_s": self.end - self.start if self.end != float("inf") else None,
            "offered": self.offered,
            "sent": self.sent,
            "ok": self.ok,
            "in_window": self.in_window,
            "errors": self.errors,
            "lat_ms": [round(x * 1000.0, 3) for x in self.lat],
            "lat_ms_by_action": {a: [round(x * 1000.0, 3) for x in lat] for a, lat in self.by_action.items()},
        }


class Charger:
    __slots__ = ("alive", "cid", "index", "meter_wh", "power_w", "rng", "seq", "step", "tag", "tx", "ws")

    def __init__(self, cid: str, index: int) -> None:
        self.cid = cid
        self.index = index
        self.rng = random.Random(index)
        self.ws: ClientConnection | None = None
        self.alive = False
        self.seq = 0
        self.tx: int | None = None
        self.step = 0
        self.tag = id_tag(index)
        self.meter_wh = self.rng.randrange(1_000_000, 9_000_000)  # lifetime import register
        self.power_w = self.rng.choice((7_400, 11_000, 22_000))


def frames(c: Charger) -> dict[str, str]:
    """One payload of each kind this generator sends, for schema checks."""
    ts = iso_now()
    return {
        "BootNotification": BOOT % (c.cid[-25:], c.cid[-25:]),
        "Heartbeat": HEARTBEAT,
        "StatusNotification": STATUS % ("Charging", ts),
        "StartTransaction": START % (c.tag, c.meter_wh, ts),
        "StopTransaction": STOP % (42, c.tag, c.meter_wh + 1500, ts),
        "MeterValues": METER_TX % (42, ts, c.meter_wh, c.power_w, c.power_w / 690.0),
        "MeterValues (no transaction)": METER_NO_TX % (ts, c.meter_wh, c.power_w, c.power_w / 690.0),
    }


class Worker:
    def __init__(self, url: str, ids: list[str], first_index: int, concurrency: int) -> None:
        self.url = url
        self.chargers = [Charger(cid, first_index + i) for i, cid in enumerate(ids)]
        self.concurrency = concurrency
        self.connect = Phase("connect")
        self.boot = Phase("boot")

    # -- one call ---------------------------------------------------------------------------
    async def call(self, c: Charger, action: str, payload: str, ph: Phase) -> str | None:
        """Send one CALL and wait for its CALLRESULT; None (and an error counted) otherwise."""
        ws = c.ws
        assert ws is not None
        c.seq += 1
        uid = str(c.seq)
        ok_prefix = '[3,"' + uid + '"'
        ph.sent += 1
        t0 = perf_counter()
        try:
            await ws.send('[2,"' + uid + '","' + action + '",' + payload + "]")
            async with asyncio.timeout(CALL_TIMEOUT_S):
                reply = await ws.recv()
                while not reply.startswith(ok_prefix):
                    if not await self._other_frame(c, reply, uid, action, ph):
                        return None
                    reply = await ws.recv()
        except TimeoutError:
            ph.error(f"timeout {action}")
            return None
        except ConnectionClosed:
            c.alive = False
            ph.error("connection closed")
            return None
        latency = perf_counter() - t0
        ph.lat.append(latency)
        by_action = ph.by_action.get(action)
        if by_action is None:
            by_action = ph.by_action[action] = array("d")
        by_action.append(latency)
        ph.ok += 1
        if monotonic() <= ph.end:
            ph.in_window += 1
        return str(reply)

    async def _other_frame(self, c: Charger, reply: Any, uid: str, action: str, ph: Phase) -> bool:
        """A frame that is not our CALLRESULT. True: keep waiting for it."""
        try:
            msg = json.loads(reply)
        except ValueError:
            ph.error("unparseable frame")
            return True
        if msg[0] == 4 and msg[1] == uid:
            ph.error(f"CallError {action} {msg[2]}")
            return False
        if msg[0] == 2:  # the server calls the charger; this simulator implements no such action
            ph.error(f"server CALL {msg[2]} answered NotImplemented")
            assert c.ws is not None
            await c.ws.send(json.dumps([4, msg[1], "NotImplemented", "", {}]))
            return True
        ph.error("unexpected frame")
        return True

    async def cycle_call(self, c: Charger, ph: Phase) -> None:
        kind = CYCLE[c.step % len(CYCLE)]
        c.step += 1
        ts = iso_now()
        if kind == "meter":
            c.meter_wh += c.power_w // 360  # ten seconds at this power
            amps = c.power_w / 690.0
            if c.tx is None:
                await self.call(c, "MeterValues", METER_NO_TX % (ts, c.meter_wh, c.power_w, amps), ph)
            else:
                await self.call(c, "MeterValues", METER_TX % (c.tx, ts, c.meter_wh, c.power_w, amps), ph)
        elif kind == "start":
            await self.start_transaction(c, ph)
        elif kind == "stop":
            if c.tx is None:  # the start was refused: nothing to stop; keep the message count
                await self.call(c, "StatusNotification", STATUS % ("Finishing", ts), ph)
            else:
                tx, c.tx = c.tx, None
                await self.call(c, "StopTransaction", STOP % (tx, c.tag, c.meter_wh, ts), ph)
        else:
            status = {"charging": "Charging", "suspended": "SuspendedEV", "available": "Available"}[kind]
            await self.call(c, "StatusNotification", STATUS % (status, ts), ph)

    async def start_transaction(self, c: Charger, ph: Phase) -> None:
        reply = await self.call(c, "StartTransaction", START % (c.tag, c.meter_wh, iso_now()), ph)
        c.tx = None
        if reply is not None:
            result = json.loads(reply)[2]
            if result.get("idTagInfo", {}).get("status") == "Accepted":
                c.tx = int(result["transactionId"])
            else:
                ph.error("StartTransaction not accepted")

    # -- connect ----------------------------------------------------------------------------
    async def open(self, c: Charger, sem: asyncio.Semaphore) -> None:
        for attempt in range(CONNECT_ATTEMPTS):
            t0 = perf_counter()
            try:
                async with sem:
                    c.ws = await connect(
                        self.url + c.cid,
                        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                        compression=None,
                        ping_interval=None,
                        max_queue=4,
                        open_timeout=CALL_TIMEOUT_S,
                        close_timeout=5,
                        proxy=None,
                        user_agent_header=None,
                    )
                    c.alive = True
                    reply = await self.call(c, "BootNotification", BOOT % (c.cid[-25:], c.cid[-25:]), self.boot)
                    if reply is None:
                        raise ConnectionError("no BootNotification result")
                    if '"status":"Accepted"' not in reply:
                        self.connect.error("BootNotification not accepted")
                        c.alive = False
                        return
                    await self.call(c, "StatusNotification", STATUS % ("Available", iso_now()), self.boot)
                self.connect.lat.append(perf_counter() - t0)
                self.connect.ok += 1
                return
            except (OSError, InvalidHandshake, TimeoutError, ConnectionClosed) as exc:
                self.connect.error(f"connect {type(exc).__name__}")
                c.alive = False
                if c.ws is not None:
                    await c.ws.close()
                    c.ws = None
                await asyncio.sleep(0.5 * (attempt + 1))
        self.connect.error("gave up connecting")

    async def open_all(self) -> dict[str, Any]:
        sem = asyncio.Semaphore(self.concurrency)
        cpu0, t0 = time.process_time(), perf_counter()
        await asyncio.gather(*(self.open(c, sem) for c in self.chargers))
        wall = perf_counter() - t0
        return {
            "connected": sum(c.alive for c in self.chargers),
            "connect_s": wall,
            "loadgen_cpu_s": time.process_time() - cpu0,
        }

    # -- phases -----------------------------------------------------------------------------
    async def steady(self, c: Charger, ph: Phase, heartbeat_s: float, meter_s: float) -> None:
        r = c.rng
        events: list[tuple[float, str]] = []
        t = ph.start + r.random() * heartbeat_s
        while t < ph.end:
            events.append((t, "heartbeat"))
            t += heartbeat_s
        if c.index % 2 == 0:  # half of the chargers are charging
            t = ph.start + r.random() * meter_s
            events.append((t, "start"))
            t += meter_s
            while t < ph.end:
                events.append((t, "meter"))
                t += meter_s
        events.sort()
        ph.offered += len(events) + (1 if c.index % 2 == 0 else 0)  # a start is two calls
        loop = asyncio.get_running_loop()
        for at, kind in events:
            delay = at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if not c.alive or loop.time() >= ph.end:
                return
            if kind == "heartbeat":
                await self.call(c, "Heartbeat", HEARTBEAT, ph)
            elif kind == "start":
                await self.start_transaction(c, ph)
                await self.call(c, "StatusNotification", STATUS % ("Charging", iso_now()), ph)
                c.step = AFTER_START
            else:
                c.meter_wh += int(c.power_w * meter_s / 3600)
                ts = iso_now()
                payload = (
                    METER_TX % (c.tx, ts, c.meter_wh, c.power_w, c.power_w / 690.0)
                    if c.tx is not None
                    else METER_NO_TX % (ts, c.meter_wh, c.power_w, c.power_w / 690.0)
                )
                await self.call(c, "MeterValues", payload, ph)

    async def paced(self, c: Charger, ph: Phase, interval_s: float) -> None:
        loop = asyncio.get_running_loop()
        slot = ph.start + c.rng.random() * interval_s
        ph.offered += max(0, math.ceil((ph.end - slot) / interval_s))
        while c.alive and slot < ph.end:
            delay = slot - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if loop.time() >= ph.end:
                return
            await self.cycle_call(c, ph)
            slot += interval_s

    async def burst(self, c: Charger, ph: Phase) -> None:
        loop = asyncio.get_running_loop()
        delay = ph.start - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        while c.alive and loop.time() < ph.end:
            await self.cycle_call(c, ph)

    async def run_phase(self, go: dict[str, Any]) -> dict[str, Any]:
        """One phase for all chargers; returns once every charger's last call of it is answered."""
        loop = asyncio.get_running_loop()
        start = go["t0"] + loop.time() - time.time()  # epoch seconds -> loop clock
        ph = Phase(go["phase"], start, start + go["length_s"])
        if ph.name == "steady":
            runs = [self.steady(c, ph, go["heartbeat_s"], go["meter_s"]) for c in self.chargers if c.alive]
        elif ph.name == "paced":
            runs = [self.paced(c, ph, go["interval_s"]) for c in self.chargers if c.alive]
        else:
            runs = [self.burst(c, ph) for c in self.chargers if c.alive]
        cpu0 = time.process_time()
        await asyncio.gather(*runs)
        report = ph.report()
        report["drain_s"] = max(0.0, loop.time() - ph.end)  # answers still outstanding at the window's end
        report["loadgen_cpu_s"] = time.process_time() - cpu0
        return report

    async def close_all(self) -> float:
        t0 = perf_counter()
        open_ = [c.ws for c in self.chargers if c.ws is not None]
        async with asyncio.timeout(60):
            await asyncio.gather(*(ws.close() for ws in open_))
        return perf_counter() - t0


def emit(tag: str, obj: dict[str, Any]) -> None:
    sys.stdout.write(f"{tag} {json.dumps(obj)}\n")
    sys.stdout.flush()


async def read_line() -> str:
    """A line from the orchestrator; the event loop keeps serving the connections meanwhile."""
    return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def main_async(args: argparse.Namespace) -> None:
    ids = [f"{args.prefix}{i:06d}" for i in range(args.first, args.first + args.count)]
    worker = Worker(args.url, ids, args.first, args.concurrency)
    connected = await worker.open_all()
    emit("CONNECTED", connected | {"connect": worker.connect.report(), "boot": worker.boot.report()})
    gc.collect()
    gc.freeze()  # thousands of long-lived connection objects: keep them out of the collector's scans
    while (line := await read_line()).startswith("GO "):
        emit("DONE", await worker.run_phase(json.loads(line[3:])))
    if line.strip() != "CLOSE":
        raise SystemExit(f"expected GO or CLOSE, got {line!r}")
    emit("CLOSED", {"close_s": await worker.close_all(), "alive": sum(c.alive for c in worker.chargers)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True, help="websocket URL prefix; the charger id is appended")
    ap.add_argument("--prefix", default="BENCH-", help="charger ids are PREFIX + 6-digit index")
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--concurrency", type=int, default=64, help="handshakes in flight while connecting")
    args = ap.parse_args()
    raise_nofile()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
