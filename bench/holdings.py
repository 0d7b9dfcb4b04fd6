"""What finding a host's chargers and a driver's vehicles costs as the network grows.

    .venv/bin/python bench/holdings.py                              # prints the table
    .venv/bin/python bench/holdings.py --write docs/benchmarks.md   # and rewrites its section there
    .venv/bin/python bench/holdings.py --quick                      # a smaller network, under a minute

A fresh anvil with Electra deployed gets a network of chargers and vehicles spread over many hosts
and drivers; one host holds a single wallbox and one driver a single car. The host and driver pages
(``/host``, ``/driver``) and the API's roles look those up. Measured, alternating, the median of
the rounds: the lookup from the indexed Transfer and VehicleRegistered logs
(``StationRegistryBinding.held_by``, ``VehicleLedgerBinding.owned_by``) against the baseline, a scan
of the whole registry that reads every token's owner, as the web pages did before.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import documented_section, fresh_electra, write_section
from electra.chain.bindings import Electra
from electra.chain.keys import dev_account
from electra.domain.station import StationSpec
from electra.domain.vehicle import vin_hash

BEGIN, END = "<!-- holdings:begin -->", "<!-- holdings:end -->"


@dataclass(frozen=True)
class Sizes:
    chargers: int = 2_000
    vehicles: int = 2_000
    rounds: int = 5


QUICK = Sizes(chargers=200, vehicles=200, rounds=3)


def scan_chargers(e: Electra, owner: str) -> list[str]:
    owner_of = e.stations.contract.functions.ownerOf
    return [
        e.stations.station(t).charger_id
        for t in range(1, e.stations.total() + 1)
        if str(e.client.call(owner_of(t))).lower() == owner.lower()
    ]


def scan_vehicles(e: Electra, owner: str) -> list[int]:
    return [v for v in range(1, e.vehicles.total() + 1) if e.vehicles.vehicle(v).owner.lower() == owner.lower()]


def build(e: Electra, z: Sizes) -> tuple[str, str]:
    """The network; returns the one-wallbox host and the one-car driver (the last registered)."""
    hosts = [dev_account(i) for i in range(1, 6)]
    for n in range(z.chargers - 1):
        spec = StationSpec(
            charger_id=f"NET-{n:05d}",
            latitude_e6=52_000_000 + n,
            longitude_e6=13_000_000 + n,
            max_power_w=22_000,
            connector_types=0b10,
            ocpp_versions=1,
            operator_id=b"DEELC",
        )
        e.stations.register(spec, Account.create(), owner=hosts[n % len(hosts)])
    wallbox_host = dev_account(7)
    wallbox = StationSpec(
        charger_id="HOME-0001",
        latitude_e6=52_500_000,
        longitude_e6=13_400_000,
        max_power_w=11_000,
        connector_types=0b10,
        ocpp_versions=1,
        operator_id=b"DEELC",
    )
    e.stations.register(wallbox, Account.create(), owner=wallbox_host)
    fleet = dev_account(6)
    for n in range(z.vehicles - 1):
        e.vehicles.register(vin_hash(f"WVWZZZE1ZPP{n:06d}"), Account.create().address, owner=fleet)
    driver = dev_account(8)
    e.vehicles.register(vin_hash("WVWZZZE1ZPR000001"), Account.create().address, owner=driver)
    return wallbox_host.address, driver.address


def median_ms(fn: Callable[[], object], rounds: int) -> tuple[float, object]:
    times, last = [], None
    for _ in range(rounds):
        t0 = time.perf_counter()
        last = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), last


def measure(z: Sizes) -> list[tuple[str, float, float]]:
    with fresh_electra() as e:
        t0 = time.perf_counter()
        host, driver = build(e, z)
        print(f"network of {z.chargers} chargers and {z.vehicles} vehicles built in {time.perf_counter() - t0:.0f} s")
        start = e.deployment.block_number
        rows = []
        for what, ours, base in [
            (
                f"a host's chargers (1 of {z.chargers:,})",
                lambda: [r.charger_id for r in e.stations.held_by(host, start)],
                lambda: scan_chargers(e, host),
            ),
            (
                f"a driver's vehicles (1 of {z.vehicles:,})",
                lambda: e.vehicles.owned_by(driver, start),
                lambda: scan_vehicles(e, driver),
            ),
        ]:
            ours_ms, got = median_ms(ours, z.rounds)
            base_ms, want = median_ms(base, z.rounds)
            assert got == want and len(got) == 1, (got, want)  # both find the same one thing
            rows.append((what, ours_ms, base_ms))
        return rows


def table(rows: list[tuple[str, float, float]]) -> str:
    lines = [
        "| lookup | from indexed logs (ours) | scan of the registry (baseline) | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [f"| {what} | {ours:.1f} ms | {base:.1f} ms | {ours / base:.4f}x |" for what, ours, base in rows]
    return "\n".join(lines)


NOTE = """The scan is one or two RPC calls per token, so it grows with the network; the log lookup is
one `eth_getLogs` on an indexed topic plus one read per token the account ever received, so it
grows with what the account holds. On a public RPC endpoint `eth_getLogs` may be limited to a range
of blocks; the roles cache (10 s) keeps it to one query per signed-in account per 10 s."""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--quick", action="store_true", help="a smaller network (not for the record)")
    ap.add_argument("--write", type=Path, help="rewrite this section of the given Markdown file")
    args = ap.parse_args()
    z = QUICK if args.quick else Sizes()
    md = table(measure(z))
    print(md)
    if args.write:
        title = "## Finding an account's chargers and vehicles"
        write_section(args.write, BEGIN, END, documented_section(BEGIN, END, title, __doc__, md, NOTE))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
