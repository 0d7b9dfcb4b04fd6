"""StakingManager: hosts stake ELC on their chargers for a tier (lower commission, discovery boost).

Stake is keyed by (charger, staker). Only the charger's current holder adds stake, and only the
holder's own bonded stake counts for the tier; a previous holder's stake stays theirs to unbond and
withdraw. Leaving takes two steps: :meth:`StakingBinding.request_unstake`, then
:meth:`StakingBinding.withdraw` once the unbonding delay has passed. The contract is PaymentHub's
commission hook. Rules, roles and errors: docs/contracts.md#stakingmanager.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import astuple, dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3.logs import DISCARD

from electra.chain.bindings import TxResult
from electra.chain.client import ChainClient, explained_by
from electra.chain.payments import Erc20Binding
from electra.errors import ContractReverted, InvalidInput

BPS = 10_000
MAX_TIERS = 8  # StakingManager.MAX_TIERS
MAX_STAKE = 2**96 - 1  # a position's amounts are uint96


@dataclass(frozen=True)
class Tier:
    """StakingManager.Tier. ``discount_bps`` is the share of the protocol fee waived (10,000 = all);
    ``boost_bps`` is added to the charger's discovery ranking score."""

    min_stake: int
    discount_bps: int
    boost_bps: int

    def commission_bps(self, protocol_fee_bps: int) -> int:
        """The commission under this tier, rounded as the contract rounds (discount down)."""
        return protocol_fee_bps - protocol_fee_bps * self.discount_bps // BPS

    def to_json(self) -> dict[str, Any]:
        return {"min_stake": str(self.min_stake), "discount_bps": self.discount_bps, "boost_bps": self.boost_bps}


def check_tiers(tiers: Sequence[Tier]) -> list[Tier]:
    """The contract's rules for a tier table, checked before a proposal is made of it."""
    if len(tiers) > MAX_TIERS:
        raise InvalidInput(f"{len(tiers)} tiers, at most {MAX_TIERS}")
    previous = Tier(0, 0, 0)
    for i, t in enumerate(tiers, start=1):
        if not 0 <= t.discount_bps <= BPS or not 0 <= t.boost_bps <= BPS:
            raise InvalidInput(f"tier {i}: discount and boost are basis points from 0 to 10,000")
        if not previous.min_stake < t.min_stake <= MAX_STAKE:
            raise InvalidInput(f"tier {i}: minimum stakes must rise from tier to tier, above 0")
        if t.discount_bps < previous.discount_bps or t.boost_bps < previous.boost_bps:
            raise InvalidInput(f"tier {i}: a higher tier may not have a smaller discount or boost")
        previous = t
    return list(tiers)


@dataclass(frozen=True)
class StakePosition:
    """One staker's stake on one charger (ELC base units; ``release_at`` unix seconds, 0: none)."""

    charger_id: int
    staker: str
    bonded: int
    unbonding: int
    release_at: int

    def released(self, now: int) -> int:
        """What the staker may withdraw at ``now``."""
        return self.unbonding if self.unbonding and self.release_at <= now else 0


@dataclass(frozen=True)
class ChargerTier:
    """A charger's tier: what its current holder's bonded stake reaches (tier 0: none)."""

    charger_id: int
    holder: str
    bonded: int
    tier: int
    discount_bps: int
    boost_bps: int


def _fix(exc: ContractReverted) -> str | None:
    a = exc.error_args
    fixes = {
        "StakingManagerNotChargerHolder": "only the charger's current holder may stake on it",
        "StakingManagerZeroAmount": "give an amount above 0",
        "StakingManagerInsufficientStake": f"at most {a.get('bonded')} base units are bonded; unbond no more",
        "StakingManagerWithdrawFirst": "withdraw the released stake first (`electra stake withdraw CHARGER`)",
        "StakingManagerNothingToWithdraw": "request unbonding first (`electra stake withdraw CHARGER AMOUNT`)",
        "StakingManagerStillUnbonding": f"the stake is released at {a.get('releaseAt')} (unix time); wait until then",
        "StakingManagerNothingToSlash": "the staker holds no stake on this charger",
        "StakingManagerTierOutOfOrder": "tiers rise in minimum stake, and never fall in discount or boost",
        "StakingManagerStakeTooLarge": "a position holds at most 2^96 - 1 base units",
        "ERC721NonexistentToken": "no such charger; list them with `electra station list`",
        "ERC20InsufficientBalance": "the staker holds less ELC than that",
        "ERC20InsufficientAllowance": "approve StakingManager for the amount first",
        "OwnableUnauthorizedAccount": "only governance (the timelock) may do this; propose it with `electra dao`",
    }
    return fixes.get(exc.error, exc.fix)


def _explained() -> AbstractContextManager[None]:
    return explained_by(_fix)


GOVERNED_SETTERS = ("setTiers", "setUnbondingDelay", "setTreasury", "slash")


class StakingBinding:
    def __init__(self, client: ChainClient, address: str) -> None:
        self.client = client
        self.contract = client.contract("StakingManager", address)
        self.address = self.contract.address

    # ------------------------------------------------------------ staking

    def approve(self, amount: int, sender: LocalAccount | None = None) -> TxResult | None:
        """Approves StakingManager for ``amount`` ELC if the allowance is short; None if it is not."""
        staker = sender or self.client.account
        elc = Erc20Binding(self.client, self.token())
        if elc.allowance(staker.address, self.address) >= amount:
            return None
        return elc.approve(self.address, amount, sender=staker)

    def stake(self, charger_id: int, amount: int, sender: LocalAccount | None = None, approve: bool = True) -> TxResult:
        """Stakes ``amount`` ELC base units on a charger ``sender`` holds (approving first if needed)."""
        staker = sender or self.client.account
        if approve:
            self.approve(amount, staker)
        with _explained():
            return TxResult.of(self.client.transact(self.contract.functions.stake(charger_id, amount), sender=staker))

    def request_unstake(self, charger_id: int, amount: int, sender: LocalAccount | None = None) -> tuple[int, TxResult]:
        """Starts unbonding; returns (release time, tx). The amount stops counting for the tier at once."""
        with _explained():
            receipt = self.client.transact(self.contract.functions.requestUnstake(charger_id, amount), sender=sender)
        args = self.contract.events.UnstakeRequested().process_receipt(receipt, errors=DISCARD)[0]["args"]
        return int(args["releaseAt"]), TxResult.of(receipt)

    def withdraw(self, charger_id: int, sender: LocalAccount | None = None) -> tuple[int, TxResult]:
        """Withdraws released unbonding stake to ``sender``; returns (amount, tx)."""
        with _explained():
            receipt = self.client.transact(self.contract.functions.withdraw(charger_id), sender=sender)
        args = self.contract.events.Withdrawn().process_receipt(receipt, errors=DISCARD)[0]["args"]
        return int(args["amount"]), TxResult.of(receipt)

    # ------------------------------------------------------------ reading

    def position(self, charger_id: int, staker: str) -> StakePosition:
        bonded, unbonding, release_at = self.client.call(self.contract.functions.positionOf(charger_id, staker))
        return StakePosition(charger_id, staker, int(bonded), int(unbonding), int(release_at))

    def tier_of(self, charger_id: int) -> ChargerTier:
        with _explained():
            holder, bonded, tier, discount, boost = self.client.call(self.contract.functions.tierOf(charger_id))
        return ChargerTier(charger_id, str(holder), int(bonded), int(tier), int(discount), int(boost))

    def discovery_boost_bps(self, charger_id: int) -> int:
        with _explained():
            return int(self.client.call(self.contract.functions.discoveryBoostBps(charger_id)))

    def tiers(self) -> list[Tier]:
        return [Tier(int(m), int(d), int(b)) for m, d, b in self.client.call(self.contract.functions.tiers())]

    def tier_for_stake(self, bonded: int) -> int:
        return int(self.client.call(self.contract.functions.tierForStake(bonded)))

    def commission_bps(self, charger_id: int, payee: str, asset: str, protocol_fee_bps: int) -> int:
        """What PaymentHub asks the hook: the commission of ``payee``'s sessions at the charger."""
        fn = self.contract.functions.commissionBps(charger_id, payee, asset, protocol_fee_bps)
        return int(self.client.call(fn))

    def unbonding_delay(self) -> int:
        return int(self.client.call(self.contract.functions.unbondingDelay()))

    def total_staked(self) -> int:
        return int(self.client.call(self.contract.functions.totalStaked()))

    def treasury(self) -> str:
        return str(self.client.call(self.contract.functions.treasury()))

    def owner(self) -> str:
        return str(self.client.call(self.contract.functions.owner()))

    def token(self) -> str:
        return str(self.client.call(self.contract.functions.token()))

    def stakers(self, charger_id: int, from_block: int = 0) -> list[str]:
        """Every account that ever staked on the charger, in order of their first stake (from the
        ``Staked`` events): the current holder and any previous holders with stake left."""
        logs = self.contract.events.Staked().get_logs(
            from_block=from_block, to_block="latest", argument_filters={"chargerId": charger_id}
        )
        seen: dict[str, None] = {}
        for log in logs:
            seen.setdefault(str(log["args"]["staker"]), None)
        return list(seen)

    # ------------------------------------------------------------ governance

    def governance_call(self, setter: str, *args: Any) -> tuple[str, bytes]:
        """(target, calldata) of a governed function, for a proposal through the governor and timelock.

        setTiers([Tier | (minStake, discountBps, boostBps), ...]), setUnbondingDelay(seconds),
        setTreasury(address), slash(chargerId, staker, amount, evidence bytes32).
        """
        if setter not in GOVERNED_SETTERS:
            raise InvalidInput(
                f"{setter} is not a governed StakingManager function", f"one of {', '.join(GOVERNED_SETTERS)}"
            )
        return self.address, bytes(HexBytes(self.contract.encode_abi(setter, args=_abi_args(setter, args))))

    def send_governed(self, setter: str, *args: Any, sender: LocalAccount | None = None) -> TxResult:
        """Sends a governed function directly: only the timelock succeeds, anyone else gets
        ContractReverted(OwnableUnauthorizedAccount)."""
        self.governance_call(setter, *args)
        fn = getattr(self.contract.functions, setter)(*_abi_args(setter, args))
        with _explained():
            return TxResult.of(self.client.transact(fn, sender=sender))


def _abi_args(setter: str, args: Sequence[Any]) -> list[Any]:
    if setter == "setTiers":
        (tiers,) = args
        return [[astuple(t) if isinstance(t, Tier) else tuple(t) for t in tiers]]
    return list(args)
