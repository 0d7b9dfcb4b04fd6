"""RewardsDistributor on a real anvil: epochs published as StandardMerkleTree roots (built by
electra.domain.rewards and checked against @openzeppelin/merkle-tree), claims with proofs, double
claims, the epoch cap, the token's reward mint cap and governance-only setters; and the reward
epochs' pure logic (docs/contracts.md#rewardsdistributor, docs/formats.md#usage-mining-rewards)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from eth_account import Account
from hypothesis import given

from electra.chain.bindings import Electra
from electra.chain.deploy import REWARD_EPOCH_CAP
from electra.chain.governance import Dao
from electra.chain.keys import dev_account
from electra.chain.rewards import RewardsBinding, already_published
from electra.domain.rewards import REWARD_LEAF_TYPES, RewardClaim, RewardEpoch, allocate, reward_leaf
from electra.errors import ContractReverted, InvalidInput
from tests.test_payment_hub import as_timelock
from tests.test_staking import pass_proposal

ROOT = Path(__file__).resolve().parents[1]
ELC = 10**18
OPERATOR = dev_account(0)  # the publisher at deployment
HOST_A, HOST_B, HOST_C = dev_account(1), dev_account(2), dev_account(3)
STRANGER = dev_account(5)


def reverted(fn: Any, *args: Any, **kw: Any) -> ContractReverted:
    with pytest.raises(ContractReverted) as exc:
        fn(*args, **kw)
    return exc.value


@pytest.fixture
def rewards(electra: Electra) -> RewardsBinding:
    return electra.rewards


def epoch_of(n: int, **amounts: int) -> RewardEpoch:
    accounts = {"a": HOST_A, "b": HOST_B, "c": HOST_C, "s": STRANGER}
    return RewardEpoch.of(n, {accounts[k].address: v for k, v in amounts.items()})


def oz_tree(epoch: RewardEpoch) -> dict[str, Any]:
    """The same values through @openzeppelin/merkle-tree (tests/merkle_oz.js)."""
    node = shutil.which("node")
    assert node, "node runs the reference Merkle tree"
    values = [[str(epoch.epoch), a, str(n)] for a, n in zip(epoch.accounts, epoch.amounts, strict=True)]
    request = {"op": "tree", "types": list(REWARD_LEAF_TYPES), "values": values}
    proc = subprocess.run(
        [node, str(ROOT / "tests" / "merkle_oz.js")],
        input=json.dumps(request) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    answer: dict[str, Any] = json.loads(proc.stdout)
    return answer


# ---------------------------------------------------------------- deployment


def test_deployed_under_governance_as_a_minter(electra: Electra, rewards: RewardsBinding) -> None:
    assert rewards.owner() == electra.deployment.address("ElectraTimelock")
    assert rewards.publisher() == OPERATOR.address
    assert rewards.epoch_cap() == REWARD_EPOCH_CAP == int(electra.deployment.parameters["reward_epoch_cap"])
    assert rewards.token() == electra.token.address
    assert electra.client.call(electra.token.contract.functions.isMinter(rewards.address))
    assert rewards.last_epoch() == 0
    assert electra.client.call(rewards.contract.functions.FIRST_EPOCH()) == 1


# ---------------------------------------------------------------- publishing and claiming


def test_an_epoch_is_published_and_claimed_with_proofs(electra: Electra, rewards: RewardsBinding) -> None:
    epoch = epoch_of(1, a=1_500 * ELC, b=250 * ELC + 7, c=1)
    oz = oz_tree(epoch)
    assert oz["root"] == "0x" + epoch.root.hex()
    for account, proof in zip(epoch.accounts, oz["proofs"], strict=True):
        assert ["0x" + p.hex() for p in epoch.claim(account).proof] == proof

    minted_before = int(electra.client.call(electra.token.contract.functions.rewardMinted()))
    rewards.publish(epoch)
    assert rewards.last_epoch() == 1
    published = rewards.epoch(1)
    assert (published.root, published.total, published.claimed) == ("0x" + epoch.root.hex(), epoch.total, 0)
    assert electra.token.balance_of(rewards.address) == epoch.total
    assert int(electra.client.call(electra.token.contract.functions.rewardMinted())) == minted_before + epoch.total

    a = epoch.claim(HOST_A.address)
    assert rewards.leaf(1, HOST_A.address, a.amount) == a.leaf == reward_leaf(1, HOST_A.address.lower(), a.amount)
    assert rewards.verify(a) and not rewards.is_claimed(1, HOST_A.address)
    rewards.claim(a, sender=HOST_A)
    # Anyone may relay a claim; the reward goes to the account in the leaf.
    rewards.claim(epoch.claim(HOST_B.address), sender=STRANGER)
    assert electra.token.balance_of(HOST_A.address) == 1_500 * ELC
    assert electra.token.balance_of(HOST_B.address) == 250 * ELC + 7
    assert electra.token.balance_of(STRANGER.address) == 0
    assert rewards.is_claimed(1, HOST_A.address) and rewards.epoch(1).claimed == 1_750 * ELC + 7

    err = reverted(rewards.claim, a, sender=STRANGER)
    assert (err.error, err.error_args) == ("RewardsDistributorAlreadyClaimed", {"epoch": 1, "account": HOST_A.address})
    rewards.claim(epoch.claim(HOST_C.address))
    assert rewards.epoch(1).unclaimed == 0 == electra.token.balance_of(rewards.address)


def test_a_claim_beyond_the_epoch_cap_is_refused(electra: Electra, rewards: RewardsBinding) -> None:
    cap = rewards.epoch_cap()
    too_much = epoch_of(1, a=cap, b=1)
    err = reverted(rewards.publish, too_much)
    assert (err.error, err.error_args) == (
        "RewardsDistributorEpochCapExceeded",
        {"epoch": 1, "total": cap + 1, "epochCap": cap},
    )
    # A publisher that understates the total (a bug, or a stolen key) still cannot pay out more
    # than the published total, which the cap bounds; other epochs' funds are not touched.
    rewards.publish_root(1, too_much.root, cap)
    rewards.publish(epoch_of(2, c=5 * ELC))
    rewards.claim(too_much.claim(HOST_A.address))
    err = reverted(rewards.claim, too_much.claim(HOST_B.address))
    assert (err.error, err.error_args) == (
        "RewardsDistributorEpochExhausted",
        {"epoch": 1, "amount": 1, "remaining": 0},
    )
    assert electra.token.balance_of(rewards.address) == 5 * ELC
    rewards.claim(epoch_of(2, c=5 * ELC).claim(HOST_C.address))


def test_bad_claims_are_refused(rewards: RewardsBinding) -> None:
    one, two = epoch_of(1, a=10 * ELC, b=20 * ELC), epoch_of(2, a=10 * ELC, b=20 * ELC)
    rewards.publish(one)
    claim = one.claim(HOST_A.address)
    cases = [
        (RewardClaim(1, claim.account, claim.amount + 1, claim.proof), "RewardsDistributorInvalidProof"),
        (RewardClaim(1, HOST_C.address, claim.amount, claim.proof), "RewardsDistributorInvalidProof"),
        (RewardClaim(1, claim.account, claim.amount, ()), "RewardsDistributorInvalidProof"),
        (two.claim(HOST_A.address), "RewardsDistributorUnknownEpoch"),  # not published yet
        (RewardClaim(1, claim.account, 0, claim.proof), "RewardsDistributorZeroAmount"),
    ]
    for bad, error in cases:
        assert reverted(rewards.claim, bad).error == error
        assert not rewards.verify(bad)
    rewards.publish(two)
    # The epoch is in the leaf: epoch 2's proof is not epoch 1's, though the amounts are the same.
    assert reverted(rewards.claim, RewardClaim(1, claim.account, claim.amount, two.claim(HOST_A.address).proof))
    assert not rewards.is_claimed(1, HOST_A.address)
    assert reverted(rewards.epoch, 3).error == "RewardsDistributorUnknownEpoch"


def test_epochs_are_published_in_order_exactly_once(rewards: RewardsBinding) -> None:
    one, two = epoch_of(1, a=ELC), epoch_of(2, b=ELC)
    err = reverted(rewards.publish, two)
    assert (err.error, err.error_args) == ("RewardsDistributorEpochOutOfOrder", {"epoch": 2, "expectedEpoch": 1})
    rewards.publish(one)
    err = reverted(rewards.publish, one)
    assert already_published(err) and err.error_args == {"epoch": 1}
    assert "nothing to do" in (err.fix or "")
    err = reverted(rewards.publish, epoch_of(1, a=2 * ELC))  # another tree for a published epoch
    assert (err.error, err.error_args) == ("RewardsDistributorEpochOutOfOrder", {"epoch": 1, "expectedEpoch": 2})
    assert reverted(rewards.publish_root, 2, b"\0" * 32, ELC).error == "RewardsDistributorZeroRoot"
    assert reverted(rewards.publish_root, 2, two.root, 0).error == "RewardsDistributorZeroAmount"
    rewards.publish(two)
    assert rewards.last_epoch() == 2


def test_one_account_claims_several_epochs_in_one_transfer(electra: Electra, rewards: RewardsBinding) -> None:
    epochs = [epoch_of(n, a=n * ELC, b=ELC) for n in (1, 2, 3)]
    for epoch in epochs:
        rewards.publish(epoch)
    total, _ = rewards.claim_epochs([e.claim(HOST_A.address) for e in epochs], sender=STRANGER)
    assert total == 6 * ELC == electra.token.balance_of(HOST_A.address)
    assert all(rewards.is_claimed(n, HOST_A.address) for n in (1, 2, 3))
    err = reverted(rewards.claim_epochs, [epochs[0].claim(HOST_B.address), epochs[0].claim(HOST_B.address)])
    assert err.error == "RewardsDistributorAlreadyClaimed"  # a repeat inside the call: the whole call reverts
    assert not rewards.is_claimed(1, HOST_B.address)
    with pytest.raises(InvalidInput):
        rewards.claim_epochs([epochs[0].claim(HOST_B.address), epochs[0].claim(HOST_C.address)])


def test_publishing_stays_under_the_tokens_reward_mint_cap(electra: Electra, rewards: RewardsBinding) -> None:
    token = electra.token.contract.functions
    minted = int(electra.client.call(token.rewardMinted()))
    as_timelock(electra, token.setRewardMintCap(minted + 10 * ELC))
    err = reverted(rewards.publish, epoch_of(1, a=11 * ELC))
    assert (err.error, err.error_args) == (
        "ElectraTokenRewardMintCapExceeded",
        {"requested": 11 * ELC, "remaining": 10 * ELC},
    )
    assert "reward-mint-cap" in (err.fix or "")
    rewards.publish(epoch_of(1, a=10 * ELC))


# ---------------------------------------------------------------- roles and governance


def test_only_the_publisher_publishes_and_only_governance_sets(electra: Electra, rewards: RewardsBinding) -> None:
    err = reverted(rewards.publish, epoch_of(1, a=ELC), sender=STRANGER)
    assert (err.error, err.error_args) == ("RewardsDistributorUnauthorizedPublisher", {"account": STRANGER.address})
    for setter, args in [("setEpochCap", (1,)), ("setPublisher", (STRANGER.address,))]:
        for who in (OPERATOR, STRANGER):
            err = reverted(rewards.send_governed, setter, *args, sender=who)
            assert (err.error, err.error_args) == ("OwnableUnauthorizedAccount", {"account": who.address}), setter
    with pytest.raises(InvalidInput):
        rewards.governance_call("publishEpoch", 1, b"\1" * 32, 1)
    # Nobody but an allowed minter mints ELC, not even the publisher.
    err = reverted(electra.client.transact, electra.token.contract.functions.mint(OPERATOR.address, 1))
    assert err.error == "ElectraTokenUnauthorizedMinter"
    f = rewards.contract.functions
    assert reverted(as_timelock, electra, f.setEpochCap(2**96)).error == "RewardsDistributorEpochCapTooLarge"
    as_timelock(electra, f.setPublisher("0x" + "0" * 40))  # nobody publishes
    assert reverted(rewards.publish, epoch_of(1, a=ELC)).error == "RewardsDistributorUnauthorizedPublisher"


def test_epoch_cap_and_publisher_through_the_dao(electra: Electra, rewards: RewardsBinding) -> None:
    dao = Dao(electra)
    publisher = Account.create()
    electra.client.rpc("anvil_setBalance", publisher.address, hex(10**18))
    pid, _ = dao.propose_parameter(
        [
            ("reward-epoch-cap", 50 * ELC),
            ("rewards-publisher", publisher.address.lower()),  # any spelling: the parameter checksums it
        ],
        "Usage mining: 50 ELC per epoch, published by the rewards service",
    )
    pass_proposal(electra, pid)
    assert dao.parameter_value("reward-epoch-cap") == 50 * ELC == rewards.epoch_cap()
    assert dao.parameter_value("rewards-publisher") == publisher.address
    assert reverted(rewards.publish, epoch_of(1, a=ELC)).error == "RewardsDistributorUnauthorizedPublisher"
    assert reverted(rewards.publish, epoch_of(1, a=51 * ELC), sender=publisher).error == (
        "RewardsDistributorEpochCapExceeded"
    )
    rewards.publish(epoch_of(1, a=50 * ELC), sender=publisher)


# ---------------------------------------------------------------- the epochs' pure logic


def test_epoch_documents_round_trip_and_refuse_bad_input() -> None:
    epoch = epoch_of(7, a=3, b=2, c=1)
    assert epoch.accounts == tuple(sorted(epoch.accounts, key=lambda a: int(a, 16)))
    doc = json.loads(json.dumps(epoch.to_json()))
    assert RewardEpoch.from_json(doc) == epoch
    assert doc["total"] == "6" and doc["leaf_encoding"] == ["uint256", "address", "uint256"]
    doc["claims"][0]["amount"] = "4"
    with pytest.raises(InvalidInput, match="root"):
        RewardEpoch.from_json(doc)
    with pytest.raises(InvalidInput, match="twice"):
        RewardEpoch.of(1, {HOST_A.address: 1, HOST_A.address.lower(): 2})
    for bad in ({}, {HOST_A.address: 0}, {"0x1234": 1}, {HOST_A.address: 2**96}):
        with pytest.raises(InvalidInput):
            RewardEpoch.of(1, bad)
    with pytest.raises(InvalidInput):
        RewardEpoch.of(0, {HOST_A.address: 1})
    assert epoch.amount_of(STRANGER.address) == 0
    with pytest.raises(InvalidInput):
        epoch.claim(STRANGER.address)


ADDRESSES = [dev_account(i).address for i in range(8)]


@given(
    st.integers(0, 10**27),
    st.dictionaries(st.sampled_from(ADDRESSES), st.integers(0, 10**12), max_size=8),
)
def test_allocate_splits_exactly_and_in_proportion(emission: int, weights: dict[str, int]) -> None:
    shares = allocate(emission, weights)
    total_weight = sum(weights.values())
    if total_weight == 0:
        assert shares == {}
        return
    assert sum(shares.values()) == emission
    for account, weight in weights.items():
        exact = emission * weight // total_weight
        assert exact <= shares.get(account, 0) <= exact + 1
    assert allocate(emission, dict(reversed(list(weights.items())))) == shares  # order does not matter


def test_the_reward_example_in_docs_formats_holds() -> None:
    """docs/formats.md gives these values to outsiders who build or check reward trees."""
    doc = (ROOT / "docs" / "formats.md").read_text()
    a, b, c = (dev_account(i).address for i in (1, 2, 3))
    epoch = RewardEpoch.of(3, {a: 1_500 * ELC, b: 250 * ELC, c: 42})
    proof = epoch.claim(a).proof
    for shown in ("0x" + reward_leaf(3, a, 1_500 * ELC).hex(), "0x" + epoch.root.hex(), str(epoch.total)):
        assert shown in doc
    assert f"[0x{proof[0].hex()[:8]}...{proof[0].hex()[-8:]}, 0x{proof[1].hex()[:8]}...{proof[1].hex()[-8:]}]" in doc
    assert proof == (reward_leaf(3, b, 250 * ELC), reward_leaf(3, c, 42))
    assert oz_tree(epoch)["root"] == "0x" + epoch.root.hex()
