"""RewardsDistributor: usage-mining epochs published as Merkle roots, claimed with proofs.

The publisher builds an epoch with :class:`electra.domain.rewards.RewardEpoch` (the leaves are
StandardMerkleTree leaves of ``(epoch, account, amount)``) and publishes its root and total;
publishing mints the total into the distributor under the token's reward mint cap and the
distributor's epoch cap. Anyone may then claim an account's reward with its proof; the tokens go to
the account. Rules, roles and errors: docs/contracts.md#rewardsdistributor.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3.logs import DISCARD

from electra.chain.bindings import TxResult
from electra.chain.client import ChainClient, explained_by
from electra.domain.rewards import RewardClaim, RewardEpoch
from electra.errors import ContractReverted, InvalidInput

FIRST_EPOCH = 1
ALREADY_PUBLISHED = "RewardsDistributorAlreadyPublished"


@dataclass(frozen=True)
class PublishedEpoch:
    """RewardsDistributor.Epoch, as stored."""

    epoch: int
    root: str  # 0x-prefixed hex
    total: int
    claimed: int
    published_at: int

    @property
    def unclaimed(self) -> int:
        return self.total - self.claimed


def _fix(exc: ContractReverted) -> str | None:
    a = exc.error_args
    fixes = {
        "RewardsDistributorUnauthorizedPublisher": "governance sets the publisher (DAO parameter rewards-publisher)",
        "RewardsDistributorEpochOutOfOrder": f"the next epoch to publish is {a.get('expectedEpoch')}",
        ALREADY_PUBLISHED: "nothing to do: this epoch is published",
        "RewardsDistributorEpochCapExceeded": "pay out less, or have governance raise epoch-cap",
        "RewardsDistributorUnknownEpoch": "the epoch is not published yet",
        "RewardsDistributorAlreadyClaimed": "nothing to do: this reward was claimed",
        "RewardsDistributorInvalidProof": "the proof, amount or account does not match the epoch's root",
        "RewardsDistributorEpochExhausted": "the epoch's published total is paid out; the tree pays more than it",
        "ElectraTokenRewardMintCapExceeded": "governance must raise reward-mint-cap before more rewards are minted",
        "ElectraTokenUnauthorizedMinter": "governance must make RewardsDistributor an ELC minter (`electra dao wire`)",
        "OwnableUnauthorizedAccount": "only governance (the timelock) may do this; propose it with `electra dao`",
    }
    return fixes.get(exc.error, exc.fix)


def _explained() -> AbstractContextManager[None]:
    return explained_by(_fix)


def already_published(exc: ContractReverted) -> bool:
    """Whether ``exc`` says this very epoch (same root and total) is published already."""
    return exc.error == ALREADY_PUBLISHED


GOVERNED_SETTERS = ("setEpochCap", "setPublisher", "setRules")


def _hex(b: bytes) -> str:
    return "0x" + bytes(b).hex()


class RewardsBinding:
    def __init__(self, client: ChainClient, address: str) -> None:
        self.client = client
        self.contract = client.contract("RewardsDistributor", address)
        self.address = self.contract.address

    # ------------------------------------------------------------ publishing and claiming

    def publish(self, epoch: RewardEpoch, sender: LocalAccount | None = None) -> TxResult:
        """Publishes an epoch's root and total (the publisher only)."""
        return self.publish_root(epoch.epoch, epoch.root, epoch.total, sender=sender)

    def publish_root(self, epoch: int, root: bytes, total: int, sender: LocalAccount | None = None) -> TxResult:
        if len(root) != 32:
            raise InvalidInput(f"a root is 32 bytes, not {len(root)}")
        with _explained():
            fn = self.contract.functions.publishEpoch(epoch, root, total)
            return TxResult.of(self.client.transact(fn, sender=sender))

    def claim(self, claim: RewardClaim, sender: LocalAccount | None = None) -> TxResult:
        """Claims one epoch's reward for ``claim.account``; anyone may send it."""
        fn = self.contract.functions.claim(claim.epoch, claim.account, claim.amount, list(claim.proof))
        with _explained():
            return TxResult.of(self.client.transact(fn, sender=sender))

    def claim_epochs(self, claims: Sequence[RewardClaim], sender: LocalAccount | None = None) -> tuple[int, TxResult]:
        """Claims one account's rewards of several epochs in one transfer; returns (sum, tx)."""
        accounts = {c.account for c in claims}
        if len(accounts) != 1:
            raise InvalidInput("claim_epochs takes the claims of one account", "send one call per account")
        fn = self.contract.functions.claimEpochs(accounts.pop(), [(c.epoch, c.amount, list(c.proof)) for c in claims])
        with _explained():
            receipt = self.client.transact(fn, sender=sender)
        logs = self.contract.events.RewardClaimed().process_receipt(receipt, errors=DISCARD)
        return sum(int(lg["args"]["amount"]) for lg in logs), TxResult.of(receipt)

    # ------------------------------------------------------------ reading

    def epoch(self, epoch: int) -> PublishedEpoch:
        with _explained():
            root, total, claimed, published_at = self.client.call(self.contract.functions.publishedEpoch(epoch))
        return PublishedEpoch(epoch, _hex(root), int(total), int(claimed), int(published_at))

    def last_epoch(self) -> int:
        return int(self.client.call(self.contract.functions.lastEpoch()))

    def is_claimed(self, epoch: int, account: str) -> bool:
        return bool(self.client.call(self.contract.functions.isClaimed(epoch, account)))

    def verify(self, claim: RewardClaim) -> bool:
        fn = self.contract.functions.verify(claim.epoch, claim.account, claim.amount, list(claim.proof))
        return bool(self.client.call(fn))

    def leaf(self, epoch: int, account: str, amount: int) -> bytes:
        return bytes(self.client.call(self.contract.functions.leaf(epoch, account, amount)))

    def epoch_cap(self) -> int:
        return int(self.client.call(self.contract.functions.epochCap()))

    def rules(self) -> bytes:
        """The governed usage-mining rules digest (32 zero bytes: the documented defaults)."""
        return bytes(self.client.call(self.contract.functions.rules()))

    def publisher(self) -> str:
        return str(self.client.call(self.contract.functions.publisher()))

    def owner(self) -> str:
        return str(self.client.call(self.contract.functions.owner()))

    def token(self) -> str:
        return str(self.client.call(self.contract.functions.token()))

    # ------------------------------------------------------------ governance

    def governance_call(self, setter: str, *args: Any) -> tuple[str, bytes]:
        """(target, calldata) of a governed setter: setEpochCap(amount), setPublisher(address), setRules(bytes32)."""
        if setter not in GOVERNED_SETTERS:
            names = ", ".join(GOVERNED_SETTERS)
            raise InvalidInput(f"{setter} is not a governed RewardsDistributor setter", f"one of {names}")
        return self.address, bytes(HexBytes(self.contract.encode_abi(setter, args=list(args))))

    def send_governed(self, setter: str, *args: Any, sender: LocalAccount | None = None) -> TxResult:
        """Sends a governed setter directly: only the timelock succeeds."""
        self.governance_call(setter, *args)
        with _explained():
            return TxResult.of(self.client.transact(getattr(self.contract.functions, setter)(*args), sender=sender))
