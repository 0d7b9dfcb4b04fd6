"""RewardsDistributor as a state machine on a real anvil: random epochs published (in order, out of
order, twice, over the cap), claims relayed by anyone (one at a time and in batches), double claims
and forged claims (another amount, another account), checked step by step against a model.

Invariants: the distributor holds exactly what was published and not yet claimed; the token's
supply is exactly what was published (it mints per epoch and nothing else); every account holds
exactly the rewards it claimed; per epoch, what was claimed never exceeds its total, and the
claimed bits are the model's. The distributor is a fresh one over a plain mintable test token
(contracts/test/ReentrantToken.sol, never armed), so the test needs no governance wiring."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from electra.chain.bindings import Electra
from electra.chain.keys import dev_account
from electra.chain.rewards import RewardsBinding
from electra.domain.rewards import RewardClaim, RewardEpoch
from electra.errors import ContractReverted

pytestmark = pytest.mark.security

ACCOUNTS = tuple(dev_account(i).address for i in (1, 2, 3, 4))
RELAYERS = (dev_account(5), dev_account(6))
CAP = 5_000_000

epoch_amounts = st.dictionaries(st.sampled_from(ACCOUNTS), st.integers(1, 2_000_000), min_size=1, max_size=4)


def _machine(e: Electra) -> type[RuleBasedStateMachine]:
    client = e.client
    me = client.account.address

    class RewardsMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.snapshot = client.rpc("evm_snapshot")
            token_address, _ = client.deploy("ReentrantToken")
            self.token = client.contract("ReentrantToken", token_address)
            address, _ = client.deploy("RewardsDistributor", me, token_address, me, CAP)
            self.rewards = RewardsBinding(client, address)
            self.epochs: list[RewardEpoch] = []
            self.claimed: dict[tuple[int, str], int] = {}
            self.held = dict.fromkeys(ACCOUNTS, 0)

        def teardown(self) -> None:
            assert client.rpc("evm_revert", self.snapshot) is True

        def reverts(self, error: str, fn: object, *args: object, **kw: object) -> None:
            try:
                fn(*args, **kw)  # type: ignore[operator]
            except ContractReverted as exc:
                assert exc.error == error, exc.one_line()
                return
            raise AssertionError(f"expected {error}")

        @rule(amounts=epoch_amounts, skip=st.sampled_from([0, 0, 0, 1]))
        def publish(self, amounts: dict[str, int], skip: int) -> None:
            n = len(self.epochs) + 1 + skip
            epoch = RewardEpoch.of(n, amounts)
            if skip:
                self.reverts("RewardsDistributorEpochOutOfOrder", self.rewards.publish_root, n, epoch.root, epoch.total)
            elif epoch.total > CAP:
                self.reverts(
                    "RewardsDistributorEpochCapExceeded", self.rewards.publish_root, n, epoch.root, epoch.total
                )
            else:
                self.rewards.publish(epoch)
                self.epochs.append(epoch)
            assert self.rewards.last_epoch() == len(self.epochs)

        @precondition(lambda self: self.epochs)
        @rule(i=st.integers(0, 50))
        def publish_again(self, i: int) -> None:
            epoch = self.epochs[i % len(self.epochs)]
            self.reverts("RewardsDistributorAlreadyPublished", self.rewards.publish, epoch)

        @precondition(lambda self: self.epochs)
        @rule(i=st.integers(0, 50), who=st.sampled_from(ACCOUNTS), relayer=st.sampled_from(RELAYERS))
        def claim(self, i: int, who: str, relayer: object) -> None:
            epoch = self.epochs[i % len(self.epochs)]
            if epoch.amount_of(who) == 0:
                forged = RewardClaim(epoch.epoch, who, 1, ())
                self.reverts("RewardsDistributorInvalidProof", self.rewards.claim, forged, sender=relayer)
                return
            c = epoch.claim(who)
            if (epoch.epoch, who) in self.claimed:
                self.reverts("RewardsDistributorAlreadyClaimed", self.rewards.claim, c, sender=relayer)
                return
            self.rewards.claim(c, sender=relayer)
            self.claimed[(epoch.epoch, who)] = c.amount
            self.held[who] += c.amount

        @precondition(lambda self: self.epochs)
        @rule(i=st.integers(0, 50), delta=st.sampled_from([-1, 1]))
        def claim_another_amount(self, i: int, delta: int) -> None:
            epoch = self.epochs[i % len(self.epochs)]
            who = epoch.accounts[i % len(epoch.accounts)]
            c = epoch.claim(who)
            forged = RewardClaim(c.epoch, c.account, c.amount + delta, c.proof)
            expected = (  # the contract refuses a zero amount before it looks at the claim
                "RewardsDistributorZeroAmount"
                if forged.amount == 0
                else (
                    "RewardsDistributorAlreadyClaimed"
                    if (epoch.epoch, who) in self.claimed
                    else "RewardsDistributorInvalidProof"
                )
            )
            self.reverts(expected, self.rewards.claim, forged)

        @precondition(lambda self: len(self.epochs) >= 2)
        @rule(who=st.sampled_from(ACCOUNTS))
        def claim_every_epoch(self, who: str) -> None:
            mine = [ep for ep in self.epochs if ep.amount_of(who) and (ep.epoch, who) not in self.claimed]
            if not mine:
                return
            total, _ = self.rewards.claim_epochs([ep.claim(who) for ep in mine])
            assert total == sum(ep.amount_of(who) for ep in mine)
            for ep in mine:
                self.claimed[(ep.epoch, who)] = ep.amount_of(who)
            self.held[who] += total

        @invariant()
        def everything_is_accounted_for(self) -> None:
            published = sum(ep.total for ep in self.epochs)
            claimed = sum(self.claimed.values())
            assert client.call(self.token.functions.totalSupply()) == published
            assert client.call(self.token.functions.balanceOf(self.rewards.address)) == published - claimed
            for who in ACCOUNTS:
                assert client.call(self.token.functions.balanceOf(who)) == self.held[who]

        @invariant()
        def each_epoch_pays_at_most_its_total(self) -> None:
            for ep in self.epochs:
                on_chain = self.rewards.epoch(ep.epoch)
                mine = sum(v for (n, _), v in self.claimed.items() if n == ep.epoch)
                assert on_chain.total == ep.total and on_chain.claimed == mine <= ep.total
                for who in ep.accounts:
                    assert self.rewards.is_claimed(ep.epoch, who) == ((ep.epoch, who) in self.claimed)

    return RewardsMachine


def test_rewards_distributor_pays_each_published_reward_once(electra: Electra) -> None:
    run_state_machine_as_test(
        _machine(electra),
        settings=settings(
            max_examples=12,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
