"""Raw OCPP 1.6J chargers for the reconnect storm: one process holds ``--count`` connections (the
lean clients of bench/loadgen.py: pre-serialised frames, no schema validation on this side).

Each charger connects and boots (BootNotification, StatusNotification). When its connection drops
it reconnects as a charger does: after a random delay within ``--jitter-s``, then with backoff
(0.5 s doubling to 4 s) while it is refused, and boots again. Protocol on stdin/stdout:

    -> CONNECTED {"connected": n, ...}     every charger connected and booted once
    <- RESTARTED {"at": epoch seconds}     when the central system listens again
    -> RECONNECTED {"booted": n, "after_s": [...], "errors": {...}}   every charger booted again
                                           (or --give-up-s passed), seconds after RESTARTED's time
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import loadgen


class StormCharger(loadgen.Charger):
    __slots__ = ("booted_at", "dropped_at")

    def __init__(self, cid: str, index: int) -> None:
        super().__init__(cid, index)
        self.booted_at: float | None = None
        self.dropped_at: float | None = None


class Storm(loadgen.Worker):
    def __init__(self, url: str, ids: list[str], first: int, concurrency: int, jitter_s: float) -> None:
        super().__init__(url, ids, first, concurrency)
        self.chargers = [StormCharger(cid, first + i) for i, cid in enumerate(ids)]
        self.jitter_s = jitter_s
        self.rounds: dict[str, int] = {}
        self.phase = loadgen.Phase("storm")

    async def connect_and_boot(self, c: StormCharger, ph: loadgen.Phase) -> bool:
        c.ws = await connect(
            self.url + c.cid,
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            compression=None,
            ping_interval=None,
            max_queue=4,
            open_timeout=loadgen.CALL_TIMEOUT_S,
            close_timeout=2,
            proxy=None,
            user_agent_header=None,
        )
        c.alive = True
        reply = await self.call(c, "BootNotification", loadgen.BOOT % (c.cid[-25:], c.cid[-25:]), ph)
        if reply is None or '"status":"Accepted"' not in reply:
            ph.error("BootNotification not accepted")
            return False
        await self.call(c, "StatusNotification", loadgen.STATUS % ("Available", loadgen.iso_now()), ph)
        c.booted_at = time.time()
        return True

    async def first_connect(self, c: StormCharger, sem: asyncio.Semaphore) -> None:
        async with sem:
            for attempt in range(5):
                try:
                    if await self.connect_and_boot(c, self.boot):
                        return
                except (OSError, InvalidHandshake, TimeoutError) as exc:
                    self.connect.error(f"connect {type(exc).__name__}")
                await asyncio.sleep(0.5 * (attempt + 1))

    async def live(self, c: StormCharger) -> None:
        """Holds the connection; when it drops, reconnects as a charger does, until booted again."""
        assert c.ws is not None
        await c.ws.wait_closed()
        c.alive = False
        c.dropped_at = time.time()
        c.booted_at = None
        await asyncio.sleep(random.Random(c.index).uniform(0, self.jitter_s))
        backoff = 0.5
        while True:
            try:
                if await self.connect_and_boot(c, self.phase):
                    return
            except (OSError, InvalidHandshake, TimeoutError, ConnectionClosed) as exc:
                kind = type(exc).__name__
                self.rounds[kind] = self.rounds.get(kind, 0) + 1
            await asyncio.sleep(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, 4.0)


async def main_async(args: argparse.Namespace) -> None:
    ids = [f"{args.prefix}{i:06d}" for i in range(args.first, args.first + args.count)]
    storm = Storm(args.url, ids, args.first, args.concurrency, args.jitter_s)
    sem = asyncio.Semaphore(args.concurrency)
    t0 = time.monotonic()
    await asyncio.gather(*(storm.first_connect(c, sem) for c in storm.chargers))  # type: ignore[arg-type]
    booted = [c for c in storm.chargers if c.booted_at is not None]  # type: ignore[attr-defined]
    loadgen.emit(
        "CONNECTED", {"connected": len(booted), "connect_s": time.monotonic() - t0, "errors": storm.connect.errors}
    )
    lives = [asyncio.create_task(storm.live(c)) for c in booted]  # type: ignore[arg-type]
    line = await loadgen.read_line()
    if not line.startswith("RESTARTED "):
        raise SystemExit(f"expected RESTARTED, got {line!r}")
    restarted_at = float(json.loads(line[len("RESTARTED ") :])["at"])
    _, pending = await asyncio.wait(lives, timeout=args.give_up_s)
    for t in pending:
        t.cancel()
    after = sorted(c.booted_at - restarted_at for c in booted if c.booted_at is not None)  # type: ignore[attr-defined]
    report: dict[str, Any] = {
        "chargers": len(booted),
        "booted": len(after),
        "after_s": [round(x, 3) for x in after],
        "refused_rounds": storm.rounds,
        "errors": storm.phase.errors,
    }
    loadgen.emit("RECONNECTED", report)
    await asyncio.gather(*(c.ws.close() for c in storm.chargers if c.ws is not None), return_exceptions=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True, help="websocket URL prefix; the charger id is appended")
    ap.add_argument("--prefix", default="BENCH-")
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--concurrency", type=int, default=64, help="handshakes in flight for the first connect")
    ap.add_argument("--jitter-s", type=float, default=10.0, help="a dropped charger waits up to this long")
    ap.add_argument("--give-up-s", type=float, default=120.0)
    args = ap.parse_args()
    loadgen.raise_nofile()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
