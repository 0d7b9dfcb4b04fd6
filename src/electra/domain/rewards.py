"""Usage-mining rewards: one Merkle tree per epoch, of what each account may claim.

A leaf is OpenZeppelin's StandardMerkleTree leaf of ``(epoch, account, amount)`` with the Solidity
types :data:`REWARD_LEAF_TYPES`: ``keccak256(keccak256(abi.encode(epoch, account, amount)))``, so
``@openzeppelin/merkle-tree`` builds the same tree and ``RewardsDistributor`` (``MerkleProof.sol``)
checks its proofs (docs/formats.md#usage-mining-rewards). The tree is :class:`electra.domain.merkle.MerkleTree`.

One leaf per account per epoch: the contract records a claim by (epoch, account), so two leaves of
one account could not both be claimed. :meth:`RewardEpoch.of` therefore takes a mapping. Amounts are
ELC base units. :func:`allocate` splits an epoch's emission over accounts in proportion to integer
weights (e.g. Wh delivered by each host's chargers), exactly, without floats.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from eth_abi.abi import encode
from eth_utils.address import is_address, to_checksum_address
from eth_utils.crypto import keccak

from electra.domain.merkle import MerkleTree
from electra.errors import InvalidInput

REWARD_LEAF_TYPES = (
    "uint256",  # epoch: RewardsDistributor's epoch number, from 1
    "address",  # account: who receives the reward
    "uint256",  # amount: ELC base units
)
MAX_AMOUNT = 2**96 - 1  # RewardsDistributor keeps an epoch's total in 96 bits


def checksum(account: str) -> str:
    """``account`` as a checksummed address; InvalidInput if it is not an address."""
    if not isinstance(account, str) or not is_address(account):
        raise InvalidInput(f"{account!r} is not an address", "give a 0x-prefixed 20-byte hex address")
    return str(to_checksum_address(account))


@dataclass(frozen=True)
class RewardClaim:
    """What an account needs to claim one epoch: its leaf's values and the proof."""

    epoch: int
    account: str
    amount: int
    proof: tuple[bytes, ...]

    def values(self) -> list[int | str]:
        return [self.epoch, self.account, self.amount]

    @property
    def leaf(self) -> bytes:
        return reward_leaf(self.epoch, self.account, self.amount)

    def to_json(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "account": self.account,
            "amount": str(self.amount),
            "leaf": "0x" + self.leaf.hex(),
            "proof": ["0x" + p.hex() for p in self.proof],
        }


def reward_leaf(epoch: int, account: str, amount: int) -> bytes:
    """The StandardMerkleTree leaf of one reward."""
    return bytes(keccak(keccak(encode(list(REWARD_LEAF_TYPES), [epoch, checksum(account), amount]))))


@dataclass(frozen=True)
class RewardEpoch:
    """One epoch's rewards: accounts in ascending address order with their amounts, and the tree."""

    epoch: int
    accounts: tuple[str, ...]
    amounts: tuple[int, ...]

    @classmethod
    def of(cls, epoch: int, amounts: Mapping[str, int]) -> RewardEpoch:
        if epoch < 1:
            raise InvalidInput(f"epoch {epoch}: epochs count from 1")
        merged: dict[str, int] = {}
        for account, amount in amounts.items():
            key = checksum(account)
            if key in merged:
                raise InvalidInput(f"{key} appears twice in epoch {epoch}", "give one amount per account")
            if not 0 < amount <= MAX_AMOUNT:
                raise InvalidInput(f"reward {amount} for {key} is not between 1 and 2^96 - 1 base units")
            merged[key] = amount
        if not merged:
            raise InvalidInput(f"epoch {epoch} rewards nobody", "give at least one account with an amount")
        order = sorted(merged, key=lambda a: int(a, 16))
        epoch_ = cls(epoch, tuple(order), tuple(merged[a] for a in order))
        if epoch_.total > MAX_AMOUNT:
            raise InvalidInput(f"epoch {epoch} pays {epoch_.total} in all, over 2^96 - 1 base units")
        return epoch_

    @property
    def total(self) -> int:
        return sum(self.amounts)

    @cached_property
    def tree(self) -> MerkleTree:
        return MerkleTree.of([reward_leaf(self.epoch, a, n) for a, n in zip(self.accounts, self.amounts, strict=True)])

    @property
    def root(self) -> bytes:
        return self.tree.root

    def amount_of(self, account: str) -> int:
        """The account's reward in this epoch (0 if none)."""
        key = checksum(account)
        return self.amounts[self.accounts.index(key)] if key in self.accounts else 0

    def claim(self, account: str) -> RewardClaim:
        key = checksum(account)
        if key not in self.accounts:
            raise InvalidInput(f"{key} has no reward in epoch {self.epoch}")
        i = self.accounts.index(key)
        return RewardClaim(self.epoch, key, self.amounts[i], tuple(self.tree.proof(i)))

    def to_json(self) -> dict[str, Any]:
        """What the publisher hands out so that every account can claim: root, total, each claim."""
        return {
            "epoch": self.epoch,
            "root": "0x" + self.root.hex(),
            "total": str(self.total),
            "leaf_encoding": list(REWARD_LEAF_TYPES),
            "claims": [self.claim(a).to_json() for a in self.accounts],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RewardEpoch:
        """Rebuilds an epoch from :meth:`to_json` and checks that its root is the one recorded."""
        try:
            epoch = int(data["epoch"])
            amounts = {str(c["account"]): int(c["amount"]) for c in data["claims"]}
            recorded = bytes.fromhex(str(data["root"]).removeprefix("0x"))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not a reward epoch document: {exc}") from exc
        rebuilt = cls.of(epoch, amounts)
        if rebuilt.root != recorded:
            raise InvalidInput(f"epoch {epoch}: the claims give root 0x{rebuilt.root.hex()}, not 0x{recorded.hex()}")
        return rebuilt


def allocate(emission: int, weights: Mapping[str, int]) -> dict[str, int]:
    """Splits ``emission`` base units over accounts in proportion to their integer ``weights``.

    Each account gets ``floor(emission * weight / total_weight)``; the base units that rounding
    leaves over go one each to the largest remainders (ties: the lower address first), so the
    shares add up to ``emission`` exactly. Accounts with weight 0 (and so share 0) are left out.
    """
    if emission < 0:
        raise InvalidInput(f"emission {emission} is negative")
    clean: dict[str, int] = {}
    for account, weight in weights.items():
        if weight < 0:
            raise InvalidInput(f"weight {weight} of {account} is negative")
        key = checksum(account)
        clean[key] = clean.get(key, 0) + weight
    total_weight = sum(clean.values())
    if total_weight == 0 or emission == 0:
        return {}
    shares = {a: emission * w // total_weight for a, w in clean.items()}
    left = emission - sum(shares.values())
    by_remainder = sorted(clean, key=lambda a: (-(emission * clean[a] % total_weight), int(a, 16)))
    for account in by_remainder[:left]:
        shares[account] += 1
    return {a: s for a, s in shares.items() if s > 0}
