"""The central system as the fault scenarios run it: electra's real gateway and store in a process
of its own (so that it can be killed with SIGKILL), admitting a simulated fleet and raw load clients.

    python -m faults.csms_server --db URL --port P [--seed S --sim-chargers N] [--bench-chargers M]

Admission comes from an in-memory directory of those chargers (with the simulated chargers' device
keys, so their signed meter data is verified): registering thousands of charger NFTs on the dev
chain first would only slow every scenario down, and admission by NFT is tested elsewhere
(tests/test_ocpp_gateway.py). Prints ``READY {"port": ...}`` once it listens, logs warnings and
errors to stdout, and stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import resource
import signal
import sys

from electra.errors import ElectraError
from electra.ocpp.directory import ChargerAdmission, StaticChargerDirectory
from electra.ocpp.gateway import CentralSystem, CsmsStore, GcPolicy

BENCH_PREFIX = "BENCH-"


def bench_id(i: int) -> str:
    return f"{BENCH_PREFIX}{i:06d}"


def directory(seed: int, sim_chargers: int, bench_chargers: int) -> StaticChargerDirectory:
    from electra.sim.scenario import build_scenario, charger_account

    chargers: dict[str, ChargerAdmission] = {}
    if sim_chargers:
        for plan in build_scenario(seed, sim_chargers, 0).chargers:
            device = charger_account(seed, plan.index).address.lower()
            chargers[plan.charger_id] = ChargerAdmission(plan.charger_id, plan.index + 1, True, device)
    for i in range(bench_chargers):
        chargers[bench_id(i)] = ChargerAdmission(bench_id(i), 1_000_000 + i, True)
    return StaticChargerDirectory(chargers)


async def serve(args: argparse.Namespace) -> None:
    store = CsmsStore.open(args.db, meter_signing=args.meter_signing)
    system = CentralSystem(
        directory(args.seed, args.sim_chargers, args.bench_chargers),
        store,
        port=args.port,
        security_profile=0,
        heartbeat_interval_s=args.heartbeat_s,
        gc_policy=GcPolicy(),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await system.start()
    print("READY " + json.dumps({"port": system.port}), flush=True)
    await stop.wait()
    await system.stop()
    store.engine.dispose()
    print("STOPPED " + json.dumps({"received": system.messages_received}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True, help="SQLAlchemy URL of the store")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--seed", type=int, default=9)
    ap.add_argument("--sim-chargers", type=int, default=0, help="admit the scenario's first N chargers")
    ap.add_argument("--bench-chargers", type=int, default=0, help="admit BENCH-000000 ... for raw load clients")
    ap.add_argument("--heartbeat-s", type=int, default=3600)
    ap.add_argument("--meter-signing", default="required")
    args = ap.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    logging.basicConfig(stream=sys.stdout, level=logging.WARNING, format="LOG %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(args))
    except ElectraError as exc:  # like the CLI: one line with the cause and the fix, exit 1
        print(f"ERROR {exc.one_line()}", flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
