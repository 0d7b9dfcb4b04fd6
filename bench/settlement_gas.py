"""Gas per settled session on PaymentHub, against two baselines measured in the same run.

    make settlement-gas                        # prints the table, rewrites its section of docs/benchmarks.md
    uv run python bench/settlement_gas.py      # prints only

On a fresh anvil dev chain with Electra deployed, settleBatch is sent for batches of 1, 10, 100 and
500 sessions. Every session has its own vehicle (its own balance slot and device key), every
signature is a device's EIP-712 signature that the contract recovers and checks against
VehicleLedger, and every session id is new. The sessions go to a pool of chargers held by a few
hosts; two more batches of 100 put every session at a charger of its own, held by a host of its own
(the worst case for the per-charger and per-holder work; the first of them also pays for each new
holder's earnings slot). A warm-up batch first gives every pool host earnings and starts the session
bitmap, so the pool figures are the steady state. The same batches are also sent with an EIP-2930
access list (PaymentHubBinding.settle_batch(access_list=True)).

Baselines, each a small contract under contracts/bench/, measured on the same chain:
  (a) one transaction per session: the session record stored on-chain and ERC-20 transferFrom
      from the vehicle's wallet to the charger's owner (DirectChargeBaseline.charge);
  (b) a flat per-session charge from a prepaid balance, no signature, no metering, no record, in
      the style of the original Electra contracts' chargeVehicle (FlatChargeBaseline), next to the
      43,568 gas measured for the original (shared/TOOLCHAIN.md).
Gas is read from receipts and includes the 21,000 every transaction pays. Sessions per block is
30,000,000 / gas per session: a block filled with transactions of that kind.
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from benchlib import fresh_electra, write_section
from electra.chain import eip712
from electra.chain.bindings import Electra, station_input
from electra.chain.client import ChainClient
from electra.chain.deploy import PROTOCOL_FEE_BPS, ZERO_ADDRESS
from electra.chain.keys import dev_account
from electra.chain.payments import PaymentHubBinding, SessionCharge
from electra.domain.station import StationSpec
from electra.domain.vehicle import vin_hash

BATCH_SIZES = (1, 10, 100, 500)
ACCESS_LIST_SIZES = (100, 500)
POOL_CHARGERS = 20
POOL_HOSTS = 5
WORST_CASE_SIZE = 100
BASELINE_SESSIONS = 20
GOAL_GAS = 15_000
GOAL_BATCH = 100
BLOCK_GAS = 30_000_000
ORIGINAL_CHARGE_VEHICLE = 43_568
AMOUNT = 12_345_678  # 12.35 eUSD: a realistic price, so calldata has realistic non-zero bytes
MAX_AMOUNT = 50_000_000
BEGIN, END = "<!-- settlement:begin -->", "<!-- settlement:end -->"
METHOD = """\
A fresh anvil dev chain with Electra deployed; `settleBatch` on PaymentHub in eUSD (6 decimals) for
batches of 1, 10, 100 and 500 sessions. Every session has its own vehicle (its own balance slot and
device key), a new session id, and a device signature over its EIP-712 `ChargeAuthorization` that
the contract recovers and checks against the vehicle's device, which PaymentHub caches in the
vehicle's slot (VehicleLedger tells it of every device change; each vehicle's deposit filled the
cache). The "cache off" row settles the same kind of batch on a second PaymentHub that the ledger
does not notify, so every session asks VehicleLedger. The pool rows send sessions to 20 chargers
held by 5 hosts, after a warm-up batch (steady state: hosts already have earnings, the session
bitmap word exists). "Own chargers" sends every session to a charger of its own with a holder of its
own; its first batch also creates each holder's earnings slot. The access-list rows attach an
EIP-2930 access list from `eth_createAccessList`. Every row runs with StakingManager as PaymentHub's
commission hook (as `electra deploy` sets it; the second hub gets it too) and no stake, except two
pool rows: every pool charger's holder staked in the top tier, and the same batch with the hook
removed. Baselines on the same chain: (a) `DirectChargeBaseline.charge`, one transaction per session
that stores the session record and moves the amount with `transferFrom` from the vehicle's own
wallet; (b) `FlatChargeBaseline.chargeVehicle`, a flat charge from a prepaid balance with no
signature, metering or record, like the original Electra contracts' `chargeVehicle` (whose 43,568
gas from shared/TOOLCHAIN.md is the last row). Gas is from receipts and includes the 21,000 every
transaction pays; sessions per block is 30,000,000 / gas per session. Gas is deterministic for the
same code and inputs; random device keys move it by a few gas per run. Where the gas goes is in
[payments.md](payments.md#gas)."""


class Sender:
    """Sends many setup transactions from one account without waiting for each receipt."""

    def __init__(self, client: ChainClient, account: LocalAccount) -> None:
        self.client, self.account = client, account
        self.nonce = int(client.w3.eth.get_transaction_count(account.address, "pending"))
        self.last: Any = None

    def send(self, fn: Any, gas: int) -> None:
        tx = fn.build_transaction(
            {
                "from": self.account.address,
                "chainId": self.client.chain_id,
                "nonce": self.nonce,
                "gas": gas,
                "maxFeePerGas": 50 * 10**9,
                "maxPriorityFeePerGas": 10**9,
            }
        )
        self.last = self.client.w3.eth.send_raw_transaction(self.account.sign_transaction(tx).raw_transaction)
        self.nonce += 1

    def wait(self) -> None:
        if self.last is not None:
            receipt = self.client.w3.eth.wait_for_transaction_receipt(self.last, timeout=300)
            assert receipt["status"] == 1, "a setup transaction failed"


@dataclass
class Row:
    name: str
    sessions: int
    gas: int  # of the whole transaction(s)
    note: str

    @property
    def per_session(self) -> float:
        return self.gas / self.sessions


class Bench:
    def __init__(self, e: Electra, hub: PaymentHubBinding | None = None, first_session: int = 1) -> None:
        self.e, self.hub, self.client = e, hub or e.payments, e.client
        self.usd = e.stablecoin.address
        self.operator = self.client.account
        self.keys = (Account.from_key(keccak(text=f"electra-bench-device-{first_session}-{i}")) for i in range(10**6))
        self.session_ids = iter(range(first_session, 10**9))
        self.vins = iter(range(1 if first_session == 1 else 500_000, 10**6))

    def chargers(self, count: int, hosts: list[LocalAccount]) -> list[int]:
        first = self.e.stations.total() + 1
        senders = {h.address: Sender(self.client, h) for h in hosts}
        for i in range(count):
            host = hosts[i % len(hosts)]
            spec = StationSpec(f"CP-BENCH-{first + i:05d}", 52_520_008, 13_404_954, 150_000, 8, 3, b"DEELC")
            device = Account.create()
            typed = self.e.stations.registration_message(spec, host.address, device.address)
            sig = eip712.sign(device, typed)
            fn = self.e.stations.contract.functions.register(
                station_input(spec, device.address), typed["message"]["deadline"], sig
            )
            senders[host.address].send(fn, 600_000)
        for s in senders.values():
            s.wait()
        return list(range(first, first + count))

    def vehicles(self, count: int) -> list[tuple[int, LocalAccount]]:
        """Registers ``count`` vehicles, each with its own device key, and deposits for each."""
        first = self.e.vehicles.total() + 1
        owner = Sender(self.client, dev_account(4))
        devices = [next(self.keys) for _ in range(count)]
        for device in devices:
            vin = vin_hash(f"WVWZZZE1ZPB{next(self.vins):06d}")
            owner.send(self.e.vehicles.contract.functions.register(vin, device.address), 250_000)
        owner.wait()
        ids = list(range(first, first + count))
        assert self.e.vehicles.total() == first + count - 1
        operator = Sender(self.client, self.operator)
        for vid in ids:
            operator.send(self.hub.contract.functions.deposit(vid, self.usd, 100 * 10**6), 150_000)
        operator.wait()
        return list(zip(ids, devices, strict=True))

    def charges(self, vehicles: list[tuple[int, LocalAccount]], chargers: list[int]) -> list[SessionCharge]:
        expiry = self.hub.chain_time() + 86_400
        out = []
        for i, (vid, device) in enumerate(vehicles):
            auth = self.hub.authorization(
                vid, chargers[i % len(chargers)], self.usd, MAX_AMOUNT, expiry=expiry, nonce=1
            )
            sid = next(self.session_ids)
            out.append(SessionCharge(sid, self.hub.sign(device, auth), AMOUNT, keccak(text=f"bench-record-{sid}")))
        return out

    def settle(self, charges: list[SessionCharge], access_list: bool = False) -> int:
        result = self.hub.settle_batch(self.usd, charges, access_list=access_list)
        assert result.settled == [c.session_id for c in charges], result.rejected
        return result.tx.gas_used


def measure() -> tuple[list[Row], dict[str, Any]]:
    rows: list[Row] = []
    facts: dict[str, Any] = {}
    with fresh_electra() as e:
        client, deployment = e.client, e.deployment
        facts["anvil"] = client.w3.client_version
        b = Bench(e)
        e.stablecoin.mint(b.operator.address, 10**15)
        e.stablecoin.approve(b.hub.address, 2**256 - 1)
        hosts = [dev_account(1 + i) for i in range(POOL_HOSTS)]
        pool = b.chargers(POOL_CHARGERS, hosts)
        need = len(pool) + sum(BATCH_SIZES) + sum(ACCESS_LIST_SIZES) + 2 * WORST_CASE_SIZE + 2 * (GOAL_BATCH + 1)
        vehicles = b.vehicles(need)
        take = iter(vehicles)

        b.settle(b.charges([next(take) for _ in pool], pool))  # warm-up: every pool charger once
        for n in BATCH_SIZES:
            gas = b.settle(b.charges([next(take) for _ in range(n)], pool))
            rows.append(Row(f"PaymentHub.settleBatch, {n}", n, gas, f"{POOL_CHARGERS} chargers, {POOL_HOSTS} hosts"))
        for n in ACCESS_LIST_SIZES:
            gas = b.settle(b.charges([next(take) for _ in range(n)], pool), access_list=True)
            rows.append(
                Row(f"… with an EIP-2930 access list, {n}", n, gas, f"{POOL_CHARGERS} chargers, {POOL_HOSTS} hosts")
            )

        # Worst case: every session at a charger of its own, held by a host of its own.
        lone = b.chargers(WORST_CASE_SIZE, hosts)
        movers = {h.address: Sender(client, h) for h in hosts}
        registry = e.stations.contract.functions
        for i, charger in enumerate(lone):
            host = hosts[i % len(hosts)]
            movers[host.address].send(registry.transferFrom(host.address, Account.create().address, charger), 120_000)
        for s in movers.values():
            s.wait()
        # The first batch makes each of those holders' earnings slot; later ones find it in use.
        first = b.settle(b.charges([next(take) for _ in range(WORST_CASE_SIZE)], lone))
        gas = b.settle(b.charges([next(take) for _ in range(WORST_CASE_SIZE)], lone))
        rows.append(
            Row(
                f"PaymentHub.settleBatch, {WORST_CASE_SIZE}, own chargers",
                WORST_CASE_SIZE,
                gas,
                "every session at a charger of its own, each held by a host of its own",
            )
        )
        rows.append(
            Row(
                f"… the same, holders paid for the first time, {WORST_CASE_SIZE}",
                WORST_CASE_SIZE,
                first,
                "each holder's earnings slot is new: 20,000 gas once per holder",
            )
        )

        # The same batch on a second hub that VehicleLedger does not notify of device changes:
        # its device cache is off, so every session asks the ledger (the cost before the cache).
        d = deployment.addresses
        hub2, _ = client.deploy(
            "PaymentHub",
            b.operator.address,  # its governance, so that it gets the same commission hook as the first
            d["ElectraTimelock"],
            d["VehicleLedger"],
            d["StationRegistry"],
            b.operator.address,
            b.operator.address,
            PROTOCOL_FEE_BPS,
            [b.usd],
        )
        client.transact(client.contract("PaymentHub", hub2).functions.setCommissionHook(d["StakingManager"]))
        b2 = Bench(e, PaymentHubBinding(client, hub2), first_session=10**8)
        e.stablecoin.approve(hub2, 2**256 - 1)
        uncached = iter(b2.vehicles(len(pool) + WORST_CASE_SIZE))
        b2.settle(b2.charges([next(uncached) for _ in pool], pool))  # warm-up, as for the first hub
        gas = b2.settle(b2.charges([next(uncached) for _ in range(WORST_CASE_SIZE)], pool))
        rows.append(
            Row(
                f"… device cache off, {WORST_CASE_SIZE}",
                WORST_CASE_SIZE,
                gas,
                f"a second hub the ledger does not notify; {POOL_CHARGERS} chargers, {POOL_HOSTS} hosts",
            )
        )

        rows += commission_hook(b, hosts, pool, take)
        rows += baselines(b, hosts)
    return rows, facts


def commission_hook(b: Bench, hosts: list[LocalAccount], pool: list[int], take: Any) -> list[Row]:
    """What the commission hook (StakingManager, PaymentHub's hook from genesis) costs: the pool batch
    with every pool charger's holder staked in the top tier (the most tier slots read), and the same
    batch with no hook at all (the flat fee, as before staking)."""
    e = b.e
    top = e.staking.tiers()[-1]
    per_host = -(-len(pool) // len(hosts)) * top.min_stake
    for host in hosts:
        e.token.transfer(host.address, per_host)
        e.staking.approve(per_host, host)
    for i, charger in enumerate(pool):
        e.staking.stake(charger, top.min_stake, sender=hosts[i % len(hosts)], approve=False)
    assert all(e.staking.tier_of(c).tier == len(e.staking.tiers()) for c in pool)
    _align(b, take, pool)
    rows = [
        Row(
            f"… every pool charger in the top staking tier, {GOAL_BATCH}",
            GOAL_BATCH,
            b.settle(b.charges([next(take) for _ in range(GOAL_BATCH)], pool)),
            f"the hook reads the holder's stake and the tier table; fee {top.commission_bps(PROTOCOL_FEE_BPS)} bps",
        )
    ]
    _as_timelock(e, e.payments.contract.functions.setCommissionHook(ZERO_ADDRESS))
    _align(b, take, pool)
    rows.append(
        Row(
            f"… no commission hook, {GOAL_BATCH}",
            GOAL_BATCH,
            b.settle(b.charges([next(take) for _ in range(GOAL_BATCH)], pool)),
            "the flat protocol fee, no StakingManager lookups (the figure before staking)",
        )
    )
    _as_timelock(e, e.payments.contract.functions.setCommissionHook(e.staking.address))
    return rows


def _align(b: Bench, take: Any, pool: list[int]) -> None:
    """Starts the next session ids at a new word of the hub's session bitmap (256 sessions a slot)
    and settles one session there, so that the next batch finds its word in use, like the plain
    pool rows do: otherwise a batch that happens to start a word pays 20,000 gas more."""
    current = next(b.session_ids)
    b.session_ids = iter(range((current // 256 + 1) * 256, 10**9))
    b.settle(b.charges([next(take)], pool[:1]))


def _as_timelock(e: Electra, fn: Any) -> None:
    """A governed call sent as the timelock (anvil impersonation), for the measurement only."""
    timelock = e.deployment.address("ElectraTimelock")
    e.client.rpc("anvil_impersonateAccount", timelock)
    e.client.rpc("anvil_setBalance", timelock, hex(10**18))
    try:
        receipt = e.client.w3.eth.wait_for_transaction_receipt(fn.transact({"from": timelock}))
        assert receipt["status"] == 1, "a governed call failed"
    finally:
        e.client.rpc("anvil_stopImpersonatingAccount", timelock)


def baselines(b: Bench, hosts: list[LocalAccount]) -> list[Row]:
    client, e = b.client, b.e
    rows = []

    # (a) one transaction per session: record + transferFrom from the vehicle's own wallet.
    direct_addr, _ = client.deploy("DirectChargeBaseline")
    direct = client.contract("DirectChargeBaseline", direct_addr)
    payers = [Account.from_key(keccak(text=f"electra-bench-payer-{i}")) for i in range(BASELINE_SESSIONS + 1)]
    funder = Sender(client, b.operator)
    for p in payers:
        client.rpc("anvil_setBalance", p.address, hex(10**18))
        funder.send(e.stablecoin.contract.functions.transfer(p.address, 100 * 10**6), 100_000)
    funder.wait()
    for p in payers:
        e.stablecoin.approve(direct_addr, 2**256 - 1, sender=p)
    gas = []
    for i, payer in enumerate(payers):
        sid = next(b.session_ids)
        fn = direct.functions.charge(
            b.usd, payer.address, hosts[i % len(hosts)].address, sid, i + 1, 1, AMOUNT, keccak(text=f"direct-{sid}")
        )
        gas.append(int(client.transact(fn)["gasUsed"]))
    mean = round(statistics.mean(gas[1:]))  # the first pays for a host's first token balance
    rows.append(
        Row(
            "(a) one tx per session: record + transferFrom",
            1,
            mean,
            "DirectChargeBaseline, mean of 20, distinct payers",
        )
    )

    # (b) a flat chargeVehicle from a prepaid balance.
    flat_addr, _ = client.deploy("FlatChargeBaseline", 10**15)
    flat = client.contract("FlatChargeBaseline", flat_addr)
    for vid in range(1, BASELINE_SESSIONS + 2):
        client.transact(flat.functions.fund(vid), value=10**17)
    gas = [
        int(client.transact(flat.functions.chargeVehicle(vid, 1 + vid % 5))["gasUsed"])
        for vid in range(1, BASELINE_SESSIONS + 2)
    ]
    mean = round(statistics.mean(gas[5:]))  # the first call per station starts its earnings slot
    rows.append(
        Row("(b) flat chargeVehicle, one tx per session", 1, mean, "FlatChargeBaseline, mean over warm stations")
    )
    return rows


def table(rows: list[Row]) -> str:
    out = [
        "| what | sessions per tx | gas per tx | gas per session | sessions per 30M-gas block | note |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        per_block = int(BLOCK_GAS // r.per_session)
        out.append(f"| {r.name} | {r.sessions} | {r.gas:,} | {r.per_session:,.0f} | {per_block:,} | {r.note} |")
    out.append(
        f"| original Electra chargeVehicle (reference) | 1 | {ORIGINAL_CHARGE_VEHICLE:,} | "
        f"{ORIGINAL_CHARGE_VEHICLE:,} | {BLOCK_GAS // ORIGINAL_CHARGE_VEHICLE:,} | "
        "shared/TOOLCHAIN.md, not re-measured |"
    )
    return "\n".join(out)


def verdict(rows: list[Row]) -> str:
    plain = next(r for r in rows if r.name == f"PaymentHub.settleBatch, {GOAL_BATCH}")
    listed = next(r for r in rows if r.name == f"… with an EIP-2930 access list, {GOAL_BATCH}")
    a = next(r for r in rows if r.name.startswith("(a)"))
    flat = next(r for r in rows if r.name.startswith("(b)"))
    parts = []
    off = next(r for r in rows if r.name.startswith("… device cache off"))
    staked = next(r for r in rows if r.name.startswith("… every pool charger in the top staking tier"))
    no_hook = next(r for r in rows if r.name.startswith("… no commission hook"))
    for label, r in (
        ("plain", plain),
        ("with an access list", listed),
        ("device cache off", off),
        ("every charger staked", staked),
        ("no commission hook", no_hook),
    ):
        status = "meets" if r.per_session <= GOAL_GAS else "misses"
        parts.append(f"{label}: {r.per_session:,.0f} gas per session, which {status} the goal")
    return (
        f"Goal: at most {GOAL_GAS:,} gas per settled session at a batch of {GOAL_BATCH}. "
        + "; ".join(parts)
        + f". Per session, baseline (a) costs {a.per_session / plain.per_session:.1f}x and baseline (b)"
        + f" {flat.per_session / plain.per_session:.1f}x as much as a batch of {GOAL_BATCH}."
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", type=Path, help="rewrite the settlement section of this markdown file")
    args = ap.parse_args()
    rows, facts = measure()
    md = table(rows)
    summary = verdict(rows)
    print(md)
    print()
    print(summary)
    if args.write:
        command = "python bench/settlement_gas.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        block = "\n".join(
            [
                BEGIN,
                "## Settlement gas",
                "",
                f"Command: `{command.strip()}` (or `make settlement-gas`)  ",
                f"Run: {datetime.date.today().isoformat()}, {facts['anvil']}.",
                "",
                METHOD,
                "",
                md,
                "",
                summary,
                END,
            ]
        )
        write_section(args.write, BEGIN, END, block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
