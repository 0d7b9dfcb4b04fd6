"""Idempotent deployment of Electra's contracts and the manifest that records it.

The manifest lives at ``<data_dir>/deployments/<chain_id>.json``. ``deploy`` reuses a deployment
whose contracts still have code on the chain; it deploys afresh only when there is none (or when
forced). A live deployment made before a later group of contracts existed gets that group added
(the payment contracts ElectraUSD and PaymentHub; SessionAnchor; StakingManager and
RewardsDistributor), keeping every other address.
Writing the manifest is atomic (temp file + rename).

**Genesis wiring.** Some settings belong to the timelock from the first block: the token's minters
(RewardsDistributor) and PaymentHub's commission hook (StakingManager). A fresh deployment starts
its timelock with a delay of 0 while the deployer still holds the timelock's admin role, schedules
and executes those calls through the timelock together with ``updateDelay`` to the configured
delay, and only then gives up its roles: every setting is made by the timelock, in events anyone
can read, and the deployer keeps no power. An older deployment that gets the staking group added
cannot be wired that way (its deployer has renounced); governance wires it with one proposal
(:func:`electra.chain.governance.wiring_calls`, ``electra dao wire``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from electra.chain import artifacts
from electra.chain.client import ChainClient
from electra.config import Settings
from electra.errors import DeploymentMissing

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
CONTRACTS = (
    "ElectraTimelock",
    "ElectraToken",
    "ElectraGovernor",
    "StationRegistry",
    "VehicleLedger",
    "ElectraUSD",
    "PaymentHub",
    "SessionAnchor",
    "StakingManager",
    "RewardsDistributor",
)
# Groups added after the first deployments; a live deployment without one gets it in place.
PAYMENT_CONTRACTS = ("ElectraUSD", "PaymentHub")
ANCHOR_CONTRACTS = ("SessionAnchor",)
STAKING_CONTRACTS = ("StakingManager", "RewardsDistributor")
# The protocol fee PaymentHub starts with: 1 %. Governance changes it (at most MAX_FEE_BPS, 10 %).
PROTOCOL_FEE_BPS = 100
ELC = 10**18
# The staking tiers StakingManager starts with: (minimum stake in ELC base units, share of the
# protocol fee waived in bps, discovery boost in bps). Governance replaces them (setTiers).
STAKING_TIERS = (
    (1_000 * ELC, 1_000, 500),  # tier 1: 10 % off the fee, +5 % ranking score
    (10_000 * ELC, 2_500, 1_500),  # tier 2: 25 % off, +15 %
    (100_000 * ELC, 5_000, 3_000),  # tier 3: half the fee, +30 %
)
# Longer than a dev governance cycle (60 + 600 + 120 s), so stake under a slashing proposal
# cannot leave before the proposal executes. Suggested on a public chain: 21 days.
UNBONDING_DELAY_S = 86_400
# Most one usage-mining epoch may pay out: 100,000 ELC (the token's cumulative cap is 10M ELC).
REWARD_EPOCH_CAP = 100_000 * ELC
GENESIS_SALT = b"electra.genesis.wiring.v1".ljust(32, b"\0")


@dataclass(frozen=True)
class Deployment:
    chain_id: int
    block_number: int
    deployer: str
    deployed_at: int
    addresses: dict[str, str]
    artifacts_digest: str
    parameters: dict[str, Any] = field(default_factory=dict)
    gas_used: dict[str, int] = field(default_factory=dict)

    def address(self, name: str) -> str:
        return self.addresses[name]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def artifacts_digest() -> str:
    """sha256 over the committed bytecode, to tell when a deployment predates the artifacts."""
    h = hashlib.sha256()
    for name in CONTRACTS:
        h.update(name.encode() + b"\0" + artifacts.load(name).bytecode.encode())
    return h.hexdigest()


def manifest_path(settings: Settings, chain_id: int) -> Path:
    return settings.deployments_dir / f"{chain_id}.json"


def load_deployment(settings: Settings, chain_id: int) -> Deployment:
    path = manifest_path(settings, chain_id)
    if not path.exists():
        raise DeploymentMissing(f"no Electra deployment for chain id {chain_id} (no {path})", "run `electra deploy`")
    try:
        data = json.loads(path.read_text())
        return Deployment(**data)
    except (ValueError, TypeError) as exc:
        raise DeploymentMissing(f"deployment manifest {path} is unreadable", "run `electra deploy --force`") from exc


def deployment_is_live(client: ChainClient, deployment: Deployment) -> bool:
    """True if every contract of the manifest has code on the connected chain."""
    return all(len(client.w3.eth.get_code(addr)) > 0 for addr in deployment.addresses.values())


def _write_manifest(path: Path, deployment: Deployment) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(deployment.to_json(), indent=2) + "\n")
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    tmp.replace(path)


def deploy(client: ChainClient, settings: Settings, force: bool = False) -> tuple[Deployment, bool]:
    """Deploys (or reuses) Electra on the connected chain. Returns (deployment, newly_deployed)."""
    path = manifest_path(settings, client.chain_id)
    if path.exists() and not force:
        existing = load_deployment(settings, client.chain_id)
        if deployment_is_live(client, existing):
            if all(name in existing.addresses for name in CONTRACTS):
                return existing, False
            deployment = _add_missing(client, existing)
            _write_manifest(path, deployment)
            return deployment, True
    deployment = _deploy_fresh(client, settings)
    _write_manifest(path, deployment)
    return deployment, True


def _deploy_fresh(client: ChainClient, settings: Settings) -> Deployment:
    me = client.account.address
    gas: dict[str, int] = {}
    start_block = int(client.w3.eth.block_number)

    # Delay 0 until the genesis wiring has run through it; then the configured delay (module doc).
    timelock_addr, r = client.deploy("ElectraTimelock", 0, [], [ZERO_ADDRESS], me)
    gas["ElectraTimelock"] = int(r["gasUsed"])
    token_addr, r = client.deploy("ElectraToken", timelock_addr, me, settings.genesis_supply, settings.reward_mint_cap)
    gas["ElectraToken"] = int(r["gasUsed"])
    governor_addr, r = client.deploy(
        "ElectraGovernor",
        token_addr,
        timelock_addr,
        settings.voting_delay_s,
        settings.voting_period_s,
        settings.proposal_threshold,
        settings.quorum_percent,
    )
    gas["ElectraGovernor"] = int(r["gasUsed"])
    registry_addr, r = client.deploy("StationRegistry", timelock_addr)
    gas["StationRegistry"] = int(r["gasUsed"])
    ledger_addr, r = client.deploy("VehicleLedger", timelock_addr)
    gas["VehicleLedger"] = int(r["gasUsed"])

    timelock = client.contract("ElectraTimelock", timelock_addr)
    proposer = client.call(timelock.functions.PROPOSER_ROLE())
    canceller = client.call(timelock.functions.CANCELLER_ROLE())
    admin = client.call(timelock.functions.DEFAULT_ADMIN_ROLE())
    client.transact(timelock.functions.grantRole(proposer, governor_addr))
    client.transact(timelock.functions.grantRole(canceller, governor_addr))
    # The genesis holder votes with its own balance; ERC20Votes counts only delegated votes.
    client.transact(client.contract("ElectraToken", token_addr).functions.delegate(me))

    addresses = {
        "ElectraTimelock": timelock_addr,
        "ElectraToken": token_addr,
        "ElectraGovernor": governor_addr,
        "StationRegistry": registry_addr,
        "VehicleLedger": ledger_addr,
    }
    payments = _deploy_payments(client, addresses)
    # The ledger tells the hub of every device change, so the hub may cache devices (saves about
    # 2,800 gas per settled session). Only a ledger deployed here can take it: an older ledger
    # (`_add_missing`) leaves the hub asking the ledger on every session.
    ledger = client.contract("VehicleLedger", ledger_addr)
    r = client.transact(ledger.functions.setDeviceObserver(payments.addresses["PaymentHub"]))
    gas["VehicleLedger.setDeviceObserver"] = int(r["gasUsed"])
    anchors = _deploy_anchors(client, addresses)
    staking = _deploy_staking(client, {**addresses, **payments.addresses})
    all_addresses = {**addresses, **payments.addresses, **anchors.addresses, **staking.addresses}
    gas["genesis wiring"] = _genesis_wiring(client, all_addresses, settings.timelock_delay_s)
    # From here on only governance can change roles: the deployer keeps no power over the timelock.
    client.transact(timelock.functions.revokeRole(proposer, me))
    client.transact(timelock.functions.renounceRole(admin, me))
    return Deployment(
        chain_id=client.chain_id,
        block_number=start_block,
        deployer=me,
        deployed_at=int(time.time()),
        addresses=all_addresses,
        artifacts_digest=artifacts_digest(),
        parameters={
            "voting_delay_s": settings.voting_delay_s,
            "voting_period_s": settings.voting_period_s,
            "timelock_delay_s": settings.timelock_delay_s,
            "quorum_percent": settings.quorum_percent,
            "proposal_threshold": str(settings.proposal_threshold),
            "genesis_supply": str(settings.genesis_supply),
            "reward_mint_cap": str(settings.reward_mint_cap),
            **payments.parameters,
            **anchors.parameters,
            **staking.parameters,
        },
        gas_used={**gas, **payments.gas_used, **anchors.gas_used, **staking.gas_used},
    )


def genesis_calls(addresses: dict[str, str], client: ChainClient) -> list[tuple[str, bytes]]:
    """The timelock's settings that a deployment needs before anyone can use staking and rewards:
    RewardsDistributor may mint ELC rewards; StakingManager is PaymentHub's commission hook."""
    token = client.contract("ElectraToken", addresses["ElectraToken"])
    hub = client.contract("PaymentHub", addresses["PaymentHub"])
    return [
        (token.address, _calldata(token.encode_abi("setMinter", args=[addresses["RewardsDistributor"], True]))),
        (hub.address, _calldata(hub.encode_abi("setCommissionHook", args=[addresses["StakingManager"]]))),
    ]


def _calldata(encoded: str) -> bytes:
    return bytes.fromhex(encoded.removeprefix("0x"))


def _genesis_wiring(client: ChainClient, addresses: dict[str, str], delay_s: int) -> int:
    """Runs :func:`genesis_calls` and the final ``updateDelay`` through the timelock while its delay
    is 0 and the deployer is its admin (module doc). Returns the gas used."""
    me = client.account.address
    timelock = client.contract("ElectraTimelock", addresses["ElectraTimelock"])
    calls = [*genesis_calls(addresses, client)]
    calls.append((timelock.address, _calldata(timelock.encode_abi("updateDelay", args=[delay_s]))))
    targets, payloads = [t for t, _ in calls], [c for _, c in calls]
    values = [0] * len(calls)
    proposer = client.call(timelock.functions.PROPOSER_ROLE())
    gas = int(client.transact(timelock.functions.grantRole(proposer, me))["gasUsed"])
    fn = timelock.functions.scheduleBatch(targets, values, payloads, b"\0" * 32, GENESIS_SALT, 0)
    gas += int(client.transact(fn)["gasUsed"])
    fn = timelock.functions.executeBatch(targets, values, payloads, b"\0" * 32, GENESIS_SALT)
    gas += int(client.transact(fn)["gasUsed"])
    return gas


class _Group(NamedTuple):
    """What deploying one group of contracts adds to a manifest."""

    addresses: dict[str, str]
    gas_used: dict[str, int]
    parameters: dict[str, Any]


def _deploy_payments(client: ChainClient, addresses: dict[str, str]) -> _Group:
    """ElectraUSD and PaymentHub, owned by the timelock; the operator mints, settles and may pause."""
    me = client.account.address
    timelock = addresses["ElectraTimelock"]
    usd_addr, r_usd = client.deploy("ElectraUSD", timelock, me)
    hub_addr, r_hub = client.deploy(
        "PaymentHub",
        timelock,
        timelock,
        addresses["VehicleLedger"],
        addresses["StationRegistry"],
        me,
        me,
        PROTOCOL_FEE_BPS,
        [addresses["ElectraToken"], usd_addr],
    )
    return _Group(
        {"ElectraUSD": usd_addr, "PaymentHub": hub_addr},
        {"ElectraUSD": int(r_usd["gasUsed"]), "PaymentHub": int(r_hub["gasUsed"])},
        {"protocol_fee_bps": PROTOCOL_FEE_BPS},
    )


def _deploy_anchors(client: ChainClient, addresses: dict[str, str]) -> _Group:
    """SessionAnchor, owned by the timelock; the operator anchors and may pause."""
    me = client.account.address
    anchor_addr, r = client.deploy("SessionAnchor", addresses["ElectraTimelock"], me, me)
    return _Group({"SessionAnchor": anchor_addr}, {"SessionAnchor": int(r["gasUsed"])}, {})


def _deploy_staking(client: ChainClient, addresses: dict[str, str]) -> _Group:
    """StakingManager and RewardsDistributor, owned by the timelock; the operator publishes reward
    epochs; slashed stake goes to the timelock (the treasury). Wiring them to the token and the hub
    is the timelock's job (module doc)."""
    me = client.account.address
    timelock = addresses["ElectraTimelock"]
    token = addresses["ElectraToken"]
    staking_addr, r_staking = client.deploy(
        "StakingManager",
        timelock,
        token,
        addresses["StationRegistry"],
        timelock,
        UNBONDING_DELAY_S,
        [list(t) for t in STAKING_TIERS],
    )
    rewards_addr, r_rewards = client.deploy("RewardsDistributor", timelock, token, me, REWARD_EPOCH_CAP)
    return _Group(
        {"StakingManager": staking_addr, "RewardsDistributor": rewards_addr},
        {"StakingManager": int(r_staking["gasUsed"]), "RewardsDistributor": int(r_rewards["gasUsed"])},
        {
            "unbonding_delay_s": UNBONDING_DELAY_S,
            "staking_tiers": [[str(m), d, b] for m, d, b in STAKING_TIERS],
            "reward_epoch_cap": str(REWARD_EPOCH_CAP),
        },
    )


# In dependency order: a group deploys from the addresses before it.
_LATER_GROUPS = (
    (PAYMENT_CONTRACTS, _deploy_payments),
    (ANCHOR_CONTRACTS, _deploy_anchors),
    (STAKING_CONTRACTS, _deploy_staking),
)


def _add_missing(client: ChainClient, existing: Deployment) -> Deployment:
    """Deploys every later group the deployment lacks a contract of (the whole group, so that its
    contracts point at each other), keeping every other address."""
    missing = [name for name in CONTRACTS if name not in existing.addresses]
    addable = {name for names, _ in _LATER_GROUPS for name in names}
    if any(name not in addable for name in missing):
        raise DeploymentMissing(
            f"the deployment on chain id {existing.chain_id} lacks {', '.join(missing)}",
            "run `electra deploy --force` for a fresh deployment",
        )
    addresses = dict(existing.addresses)
    gas_used = dict(existing.gas_used)
    parameters = dict(existing.parameters)
    for names, deploy_group in _LATER_GROUPS:
        if all(name in existing.addresses for name in names):
            continue
        for name in names:
            addresses.pop(name, None)
        group = deploy_group(client, addresses)
        addresses.update(group.addresses)
        gas_used.update(group.gas_used)
        parameters.update(group.parameters)
    return replace(
        existing,
        addresses=addresses,
        artifacts_digest=artifacts_digest(),
        parameters=parameters,
        gas_used=gas_used,
    )
