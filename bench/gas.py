"""Gas per operation on a fresh anvil dev chain.

    make gas                      # prints the table and rewrites its section of docs/benchmarks.md
    uv run python bench/gas.py    # prints only

Gas is deterministic for the same code and inputs, so one run of each operation is exact; the
register operations are repeated to show the cost of the first and of later calls. The reference
column gives the original Electra contracts' figures measured on anvil (shared/TOOLCHAIN.md); the
plain ETH transfer is measured in this same run as the floor every transaction pays.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from benchlib import fresh_electra, write_section
from electra.chain.bindings import Electra
from electra.chain.governance import Dao, Support
from electra.chain.keys import dev_account
from electra.domain.rewards import RewardEpoch
from electra.domain.station import StationSpec
from electra.domain.vehicle import vin_hash

REFERENCE = {"register charger": 139_044, "register vehicle": 74_107}
REPEATS = 5
ELC = 10**18
REWARD_ACCOUNTS = 1_000
BEGIN, END = "<!-- gas:begin -->", "<!-- gas:end -->"


def measure() -> list[tuple[str, list[int], str]]:
    rows: list[tuple[str, list[int], str]] = []
    with fresh_electra() as e:
        client, deployment = e.client, e.deployment
        host, owner, relayer = dev_account(1), dev_account(2), dev_account(3)

        w3 = client.w3
        tx = {
            "to": owner.address,
            "value": 1,
            "gas": 21_000,
            "chainId": client.chain_id,
            "nonce": w3.eth.get_transaction_count(host.address),
            "maxFeePerGas": 10**10,
            "maxPriorityFeePerGas": 1,
        }
        h = w3.eth.send_raw_transaction(host.sign_transaction(tx).raw_transaction)
        rows.append(("ETH transfer (floor, same run)", [int(w3.eth.wait_for_transaction_receipt(h)["gasUsed"])], ""))

        gas = []
        for i in range(REPEATS):
            spec = StationSpec(
                f"CP-GAS-{i:04d}",
                52_520_008 + i,
                13_404_954,
                150_000,
                0b1010,
                3,
                b"DEELC",
                metadata_uri=f"ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi/{i}",
            )
            gas.append(e.stations.register(spec, Account.create(), owner=host)[1].gas_used)
        rows.append(("register charger", gas, "device-signed EIP-712, NFT mint, metadata on-chain"))

        gas = [
            e.vehicles.register(vin_hash(f"WVWZZZE1ZPP{i:06d}"), Account.create().address, owner=owner)[1].gas_used
            for i in range(REPEATS)
        ]
        rows.append(("register vehicle", gas, "owner sends"))

        gas = []
        for i in range(REPEATS):
            signed = e.vehicles.sign_onboarding(Account.create(), vin_hash(f"WVWZZZE1ZPR{i:06d}"), owner.address)
            gas.append(e.vehicles.relay_onboarding(signed, relayer=relayer)[1].gas_used)
        rows.append(("relayed vehicle onboarding", gas, "device signs, relayer pays"))

        rows.append(("ELC transfer", [e.token.transfer(owner.address, 10**18).gas_used], "ERC20Votes checkpoints"))

        dao = Dao(e)
        p = deployment.parameters
        pid, t = dao.propose_parameter([("reward-mint-cap", 2 * 10**25)], "gas bench: raise cap")
        rows.append(("propose", [t.gas_used], "one parameter change"))
        client.rpc("evm_increaseTime", p["voting_delay_s"] + 1)
        client.rpc("evm_mine")
        rows.append(("vote", [dao.vote(pid, Support.FOR).gas_used], "castVote"))
        client.rpc("evm_increaseTime", p["voting_period_s"] + 1)
        client.rpc("evm_mine")
        rows.append(("queue", [dao.queue(pid).gas_used], "into the timelock"))
        client.rpc("evm_increaseTime", p["timelock_delay_s"] + 1)
        client.rpc("evm_mine")
        rows.append(("execute", [dao.execute(pid).gas_used], "timelock calls setRewardMintCap"))
        rows += staking_rows(e, host)
        rows += rewards_rows(e, relayer)
        for name, g in deployment.gas_used.items():
            rows.append((f"deploy {name}", [g], "once per chain"))
    return rows


def staking_rows(e: Electra, host: LocalAccount) -> list[tuple[str, list[int], str]]:
    """Stake on the host's first chargers (one position each), add to one, unbond, withdraw."""
    staking, client = e.staking, e.client
    chargers = [i for i in range(1, e.stations.total() + 1) if e.stations.station(i).owner == host.address]
    amount = 10_000 * ELC
    e.token.transfer(host.address, (REPEATS + 1) * 2 * amount)
    approval = staking.approve(2**256 - 1, host)
    assert approval is not None
    rows = [("ELC approve for StakingManager", [approval.gas_used], "once per host")]
    gas = [staking.stake(c, amount, sender=host, approve=False).gas_used for c in chargers[:REPEATS]]
    rows.append(("stake", gas, "a new position on a charger (the first also creates the total)"))
    gas = [staking.stake(chargers[0], amount, sender=host, approve=False).gas_used for _ in range(REPEATS)]
    rows.append(("stake more (same position)", gas, "rewrites the position"))
    gas = [staking.request_unstake(c, amount, sender=host)[1].gas_used for c in chargers[:REPEATS]]
    rows.append(("requestUnstake", gas, "bonded to unbonding, one slot"))
    client.rpc("evm_increaseTime", staking.unbonding_delay() + 1)
    client.rpc("evm_mine")
    gas = [staking.withdraw(c, sender=host)[1].gas_used for c in chargers[:REPEATS]]
    rows.append(("withdraw (after the unbonding delay)", gas, "ELC transfer back"))
    return rows


def rewards_rows(e: Electra, relayer: LocalAccount) -> list[tuple[str, list[int], str]]:
    """Epochs of REWARD_ACCOUNTS accounts (proofs of about log2 of that many nodes), published by the
    operator; claims relayed for fresh accounts (each gets a new ELC balance slot)."""
    rewards = e.rewards
    claimers = [Account.create().address for _ in range(REPEATS)]
    epochs = []
    for n in range(1, REPEATS + 1):
        amounts = {Account.create().address: 10**18 + i for i in range(REWARD_ACCOUNTS - REPEATS)}
        amounts.update({a: 5 * 10**18 for a in claimers})
        epochs.append(RewardEpoch.of(n, amounts))
    gas = [rewards.publish(epoch).gas_used for epoch in epochs]
    rows = [("publish reward epoch", gas, f"root + total, mints the total; {REWARD_ACCOUNTS:,} accounts")]
    depth = len(epochs[0].claim(claimers[0]).proof)
    gas = [rewards.claim(epochs[0].claim(a), sender=relayer).gas_used for a in claimers]
    rows.append(("claim reward", gas, f"proof of {depth} nodes, relayed, to an account with no ELC yet"))
    gas = [rewards.claim(epochs[1].claim(a), sender=relayer).gas_used for a in claimers]
    rows.append(("claim reward, account already holds ELC", gas, f"proof of {depth} nodes"))
    claims = [epochs[n].claim(claimers[0]) for n in (2, 3, 4)]
    rows.append(("claimEpochs, 3 epochs", [rewards.claim_epochs(claims, sender=relayer)[1].gas_used], "one transfer"))
    return rows


def table(rows: list[tuple[str, list[int], str]]) -> str:
    out = [
        "| operation | gas (first) | gas (mean of later) | reference | ratio to reference | note |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, gas, note in rows:
        later = f"{statistics.mean(gas[1:]):,.0f}" if len(gas) > 1 else ""
        ref = REFERENCE.get(name)
        ratio = f"{gas[-1] / ref:.2f}x" if ref else ""
        out.append(f"| {name} | {gas[0]:,} | {later} | {f'{ref:,}' if ref else ''} | {ratio} | {note} |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", type=Path, help="rewrite the gas section of this markdown file")
    args = ap.parse_args()
    md = table(measure())
    print(md)
    if args.write:
        write_section(args.write, BEGIN, END, f"{BEGIN}\n{md}\n{END}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
