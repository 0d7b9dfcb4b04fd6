"""StakingManager on a real anvil: tiers that change the commission in real PaymentHub settlement,
unbonding, slashing through a DAO proposal, NFT transfers that leave stake where it is, and
governance-only setters (docs/contracts.md#stakingmanager)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from web3.logs import DISCARD

from electra.chain.bindings import Electra
from electra.chain.deploy import STAKING_CONTRACTS, STAKING_TIERS, UNBONDING_DELAY_S, deploy, manifest_path
from electra.chain.governance import Dao, Support, parse_tiers, wiring_calls
from electra.chain.keys import dev_account
from electra.chain.staking import StakingBinding, Tier
from electra.config import Settings, load_settings
from electra.errors import ContractReverted, DeploymentMissing, InvalidInput
from tests.test_payment_hub import HOST_A, HOST_B, HOST_C, OPERATOR, STRANGER, USD, World, as_timelock, reverted
from tests.test_payment_hub import w as w  # the fixture

ELC = 10**18
HOST_D = dev_account(6)
TIER_1, TIER_2, TIER_3 = (Tier(*t) for t in STAKING_TIERS)
FLAT_BPS = 100  # deploy's protocol fee


def fund(w: World, host: LocalAccount, amount: int) -> None:
    """ELC for a host, from the genesis holder (the operator)."""
    w.e.token.transfer(host.address, amount)


def staked_charger(w: World, host: LocalAccount, amount: int) -> int:
    charger = w.charger(host)
    if amount:
        fund(w, host, amount)
        w.e.staking.stake(charger, amount, sender=host)
    return charger


def advance(e: Electra, seconds: int) -> None:
    e.client.rpc("evm_increaseTime", seconds)
    e.client.rpc("evm_mine")


def pass_proposal(e: Electra, pid: int) -> None:
    """Votes a proposal through with the genesis holder's votes and executes it."""
    dao, p = Dao(e), e.deployment.parameters
    advance(e, p["voting_delay_s"] + 1)
    dao.vote(pid, Support.FOR)
    advance(e, p["voting_period_s"] + 1)
    dao.queue(pid)
    advance(e, p["timelock_delay_s"] + 1)
    dao.execute(pid)
    assert dao.status(pid).state == "executed"


def fee(gross: int, tier: Tier | None) -> int:
    bps = tier.commission_bps(FLAT_BPS) if tier else FLAT_BPS
    return gross * bps // 10_000


# ---------------------------------------------------------------- deployment


def test_deployed_wired_and_governed(w: World, chain_settings: Settings) -> None:
    e, staking = w.e, w.e.staking
    timelock = e.deployment.address("ElectraTimelock")
    assert staking.owner() == timelock and staking.treasury() == timelock
    assert staking.token() == e.token.address
    assert e.client.call(staking.contract.functions.stationRegistry()) == e.stations.address
    assert staking.tiers() == [TIER_1, TIER_2, TIER_3]
    assert staking.unbonding_delay() == UNBONDING_DELAY_S == e.deployment.parameters["unbonding_delay_s"]
    assert w.hub.commission_hook() == staking.address
    assert wiring_calls(e) == []
    # The genesis wiring ran through the timelock; its delay is the configured one afterwards and
    # the deployer holds none of its roles.
    tl = e.client.contract("ElectraTimelock", timelock).functions
    assert e.client.call(tl.getMinDelay()) == chain_settings.timelock_delay_s
    for role in (tl.PROPOSER_ROLE(), tl.CANCELLER_ROLE(), tl.DEFAULT_ADMIN_ROLE()):
        assert not e.client.call(tl.hasRole(e.client.call(role), OPERATOR.address))


# ---------------------------------------------------------------- tiers and commission


def test_only_the_holder_stakes_and_the_tier_follows_the_stake(w: World) -> None:
    staking = w.e.staking
    charger = w.charger(HOST_A)
    fund(w, HOST_A, 20_000 * ELC)
    fund(w, STRANGER, 20_000 * ELC)
    err = reverted(staking.stake, charger, ELC, sender=STRANGER)
    assert (err.error, err.error_args) == (
        "StakingManagerNotChargerHolder",
        {"chargerId": charger, "account": STRANGER.address},
    )
    assert reverted(staking.stake, charger, 0, sender=HOST_A).error == "StakingManagerZeroAmount"
    assert reverted(staking.stake, 4242, ELC, sender=HOST_A).error == "ERC721NonexistentToken"
    assert staking.tier_of(charger).tier == 0
    assert not staking.client.call(staking.contract.functions.everStaked(charger))

    staking.stake(charger, TIER_1.min_stake - 1, sender=HOST_A)
    assert staking.client.call(staking.contract.functions.everStaked(charger))
    assert not staking.client.call(staking.contract.functions.everStaked(charger + 1))
    assert staking.tier_of(charger).tier == 0
    assert staking.commission_bps(charger, HOST_A.address, w.usd, FLAT_BPS) == FLAT_BPS
    staking.stake(charger, 1, sender=HOST_A)
    t = staking.tier_of(charger)
    assert (t.holder, t.bonded, t.tier, t.discount_bps, t.boost_bps) == (
        HOST_A.address,
        TIER_1.min_stake,
        1,
        TIER_1.discount_bps,
        TIER_1.boost_bps,
    )
    assert staking.commission_bps(charger, HOST_A.address, w.usd, FLAT_BPS) == 90
    assert staking.commission_bps(charger, STRANGER.address, w.usd, FLAT_BPS) == FLAT_BPS  # not the staker
    assert staking.discovery_boost_bps(charger) == TIER_1.boost_bps
    staking.stake(charger, TIER_2.min_stake - TIER_1.min_stake, sender=HOST_A)
    assert staking.tier_of(charger).tier == 2
    assert [staking.tier_for_stake(n) for n in (0, TIER_3.min_stake - 1, TIER_3.min_stake, 10**30)] == [0, 2, 3, 3]
    assert staking.total_staked() == TIER_2.min_stake == w.e.token.balance_of(staking.address)
    assert staking.stakers(charger) == [HOST_A.address]


def test_tiers_change_the_commission_in_settlement(w: World) -> None:
    plain = w.charger(HOST_A)
    bronze = staked_charger(w, HOST_B, TIER_1.min_stake)
    silver = staked_charger(w, HOST_C, TIER_2.min_stake + 5 * ELC)
    gold = staked_charger(w, HOST_D, TIER_3.min_stake)
    vehicles = [w.vehicle(100 * USD) for _ in range(4)]
    gross = 40 * USD + 3  # not a round number: the fee rounds down per charger
    batch = [w.charge(d, v, c, gross) for (v, d), c in zip(vehicles, (plain, bronze, silver, gold), strict=True)]
    result = w.hub.settle_batch(w.usd, batch)
    assert result.credits == {
        HOST_A.address: gross - fee(gross, None),
        HOST_B.address: gross - fee(gross, TIER_1),
        HOST_C.address: gross - fee(gross, TIER_2),
        HOST_D.address: gross - fee(gross, TIER_3),
    }
    assert [fee(gross, t) for t in (None, TIER_1, TIER_2, TIER_3)] == [400_000, 360_000, 300_000, 200_000]
    assert result.fee_amount == 1_260_000

    # Governance replaces the table with the most tiers allowed (1,000 ELC doubling up to 128,000;
    # the top one waives the whole fee), and the hook still answers within PaymentHub's gas allowance.
    eight = [Tier(1_000 * ELC << i, 10_000 if i == 7 else 1_000 * (i + 1), 100 * i) for i in range(8)]
    as_timelock(
        w.e, w.e.staking.contract.functions.setTiers([(t.min_stake, t.discount_bps, t.boost_bps) for t in eight])
    )
    assert w.e.staking.tiers() == eight
    assert [w.e.staking.tier_of(c).tier for c in (plain, bronze, silver, gold)] == [0, 1, 4, 7]
    fund(w, HOST_D, 28_000 * ELC)
    w.e.staking.stake(gold, 28_000 * ELC, sender=HOST_D)  # 128,000 ELC: tier 8
    assert w.e.staking.tier_of(gold).tier == 8
    batch = [
        w.charge(d, v, c, gross, nonce=2) for (v, d), c in zip(vehicles, (plain, bronze, silver, gold), strict=True)
    ]
    result = w.hub.settle_batch(w.usd, batch)
    assert result.credits == {
        HOST_A.address: gross - gross * 100 // 10_000,
        HOST_B.address: gross - gross * 90 // 10_000,
        HOST_C.address: gross - gross * 60 // 10_000,
        HOST_D.address: gross,  # 10,000 bps off: no fee
    }


def test_a_higher_commission_never_comes_from_the_hook(w: World) -> None:
    """The hook only discounts: a zero fee stays zero, whatever the tier."""
    charger = staked_charger(w, HOST_A, TIER_3.min_stake)
    assert w.e.staking.commission_bps(charger, HOST_A.address, w.usd, 0) == 0
    assert w.e.staking.commission_bps(charger, HOST_A.address, w.usd, 1_000) == 500
    assert w.e.staking.commission_bps(charger, HOST_A.address, w.usd, 1) == 1  # the discount rounds down


# ---------------------------------------------------------------- unbonding


def test_unbonding_delay_is_enforced_and_unbonding_stake_does_not_count(w: World) -> None:
    staking, e = w.e.staking, w.e
    charger = staked_charger(w, HOST_A, TIER_2.min_stake)
    err = reverted(staking.request_unstake, charger, TIER_2.min_stake + 1, sender=HOST_A)
    assert err.error == "StakingManagerInsufficientStake" and err.error_args["bonded"] == TIER_2.min_stake
    assert reverted(staking.withdraw, charger, sender=HOST_A).error == "StakingManagerNothingToWithdraw"

    release_at, _ = staking.request_unstake(charger, 9_500 * ELC, sender=HOST_A)
    assert release_at == w.hub.chain_time() + UNBONDING_DELAY_S
    assert staking.position(charger, HOST_A.address).bonded == 500 * ELC
    assert staking.tier_of(charger).tier == 0  # the unbonding part no longer counts
    vid, device = w.vehicle(10 * USD)
    assert w.hub.settle_batch(w.usd, [w.charge(device, vid, charger, 5 * USD)]).fee_amount == 5 * USD // 100

    err = reverted(staking.withdraw, charger, sender=HOST_A)
    assert (err.error, err.error_args["releaseAt"]) == ("StakingManagerStillUnbonding", release_at)
    advance(e, UNBONDING_DELAY_S - 60)
    assert reverted(staking.withdraw, charger, sender=HOST_A).error == "StakingManagerStillUnbonding"
    # A second request unbonds everything again from now: the earlier part waits with it.
    later, _ = staking.request_unstake(charger, 200 * ELC, sender=HOST_A)
    assert later > release_at
    assert staking.position(charger, HOST_A.address).unbonding == 9_700 * ELC
    advance(e, UNBONDING_DELAY_S - 60 + 1)
    assert reverted(staking.withdraw, charger, sender=HOST_A).error == "StakingManagerStillUnbonding"
    advance(e, 60)

    # Released stake must be withdrawn before more is unbonded, so it is never locked up again.
    err = reverted(staking.request_unstake, charger, 100 * ELC, sender=HOST_A)
    assert (err.error, err.error_args["released"]) == ("StakingManagerWithdrawFirst", 9_700 * ELC)
    before = e.token.balance_of(HOST_A.address)
    assert reverted(staking.withdraw, charger, sender=STRANGER).error == "StakingManagerNothingToWithdraw"
    amount, _ = staking.withdraw(charger, sender=HOST_A)
    assert amount == 9_700 * ELC == e.token.balance_of(HOST_A.address) - before
    assert staking.position(charger, HOST_A.address) == replace(
        staking.position(charger, HOST_A.address), bonded=300 * ELC, unbonding=0, release_at=0
    )
    assert staking.total_staked() == 300 * ELC == e.token.balance_of(staking.address)
    assert reverted(staking.withdraw, charger, sender=HOST_A).error == "StakingManagerNothingToWithdraw"


def test_an_nft_transfer_does_not_move_stake(w: World) -> None:
    staking, e = w.e.staking, w.e
    charger = staked_charger(w, HOST_A, TIER_2.min_stake)
    registry = e.stations.contract.functions
    e.client.transact(registry.transferFrom(HOST_A.address, HOST_B.address, charger), sender=HOST_A)

    # The new holder neither inherits the stake nor its tier ...
    t = staking.tier_of(charger)
    assert (t.holder, t.bonded, t.tier) == (HOST_B.address, 0, 0)
    vid, device = w.vehicle(20 * USD)
    result = w.hub.settle_batch(w.usd, [w.charge(device, vid, charger, 10 * USD)])
    assert result.credits == {HOST_B.address: 10 * USD - 10 * USD // 100}
    # ... nor controls it: it has none of its own to unbond or withdraw.
    assert reverted(staking.request_unstake, charger, ELC, sender=HOST_B).error == "StakingManagerInsufficientStake"
    assert reverted(staking.withdraw, charger, sender=HOST_B).error == "StakingManagerNothingToWithdraw"
    assert staking.position(charger, HOST_A.address).bonded == TIER_2.min_stake

    # The previous holder can no longer add to it, but can take it out.
    fund(w, HOST_A, ELC)
    assert reverted(staking.stake, charger, ELC, sender=HOST_A).error == "StakingManagerNotChargerHolder"
    staking.request_unstake(charger, 4_000 * ELC, sender=HOST_A)

    # The new holder's own stake counts, and only that.
    fund(w, HOST_B, TIER_1.min_stake)
    staking.stake(charger, TIER_1.min_stake, sender=HOST_B)
    assert (staking.tier_of(charger).tier, staking.tier_of(charger).bonded) == (1, TIER_1.min_stake)
    assert staking.stakers(charger) == [HOST_A.address, HOST_B.address]

    advance(e, UNBONDING_DELAY_S)
    assert staking.withdraw(charger, sender=HOST_A)[0] == 4_000 * ELC
    # Back with the previous holder, its remaining bonded stake counts again.
    e.client.transact(registry.transferFrom(HOST_B.address, HOST_A.address, charger), sender=HOST_B)
    assert (staking.tier_of(charger).holder, staking.tier_of(charger).bonded) == (HOST_A.address, 6_000 * ELC)
    assert staking.tier_of(charger).tier == 1


# ---------------------------------------------------------------- slashing and governance


def test_slashing_through_a_dao_proposal(w: World) -> None:
    staking, e = w.e.staking, w.e
    charger = staked_charger(w, HOST_A, 10_000 * ELC)
    staking.request_unstake(charger, 4_000 * ELC, sender=HOST_A)  # trying to leave before the vote
    evidence = bytes.fromhex("ab" * 32)
    treasury = staking.treasury()
    before = e.token.balance_of(treasury)
    dao = Dao(e)
    pid, _ = dao.propose_action(
        "slash", [charger, HOST_A.address, 7_000 * ELC, evidence], "Slash HOST_A: forged meter data"
    )
    # The stake cannot leave while the proposal runs: the unbonding delay outlasts the cycle.
    assert reverted(staking.withdraw, charger, sender=HOST_A).error == "StakingManagerStillUnbonding"
    pass_proposal(e, pid)

    # 6,000 bonded first, then 1,000 of the unbonding 4,000.
    p = staking.position(charger, HOST_A.address)
    assert (p.bonded, p.unbonding) == (0, 3_000 * ELC)
    assert e.token.balance_of(treasury) - before == 7_000 * ELC
    assert staking.total_staked() == 3_000 * ELC == e.token.balance_of(staking.address)
    logs = staking.contract.events.Slashed().get_logs(from_block=e.client.w3.eth.block_number - 1)
    assert [(lg["args"]["amount"], bytes(lg["args"]["evidence"])) for lg in logs] == [(7_000 * ELC, evidence)]

    # A slash of more than is left takes what is left (so a proposal still executes).
    as_timelock(e, staking.contract.functions.slash(charger, HOST_A.address, 10**30, evidence))
    assert staking.position(charger, HOST_A.address) == replace(p, bonded=0, unbonding=0, release_at=0)
    err = reverted(as_timelock, e, staking.contract.functions.slash(charger, HOST_A.address, 1, evidence))
    assert err.error == "StakingManagerNothingToSlash"


def test_staking_parameters_through_the_dao(w: World) -> None:
    e, dao = w.e, Dao(w.e)
    tiers = parse_tiers("500 ELC:500:100, 5000 ELC:3000:2000")
    pid, _ = dao.propose_parameter(
        [("staking-tiers", tiers), ("unbonding-delay-s", 7 * 86_400)], "Cheaper tier 1, a week to unbond"
    )
    pass_proposal(e, pid)
    assert dao.parameter_value("staking-tiers") == tiers == e.staking.tiers()
    assert dao.parameter_value("unbonding-delay-s") == 7 * 86_400
    with pytest.raises(InvalidInput, match="rise"):
        parse_tiers("5000 ELC:1:1,500 ELC:2:2")
    with pytest.raises(InvalidInput, match="basis points"):
        dao.propose_parameter([("staking-tiers", [Tier(1, 10_001, 0)])], "too much")


def test_only_governance_sets_tiers_delay_treasury_and_slashes(w: World) -> None:
    staking = w.e.staking
    charger = staked_charger(w, HOST_A, ELC)
    for setter, args in [
        ("setTiers", ([],)),
        ("setUnbondingDelay", (0,)),
        ("setTreasury", (STRANGER.address,)),
        ("slash", (charger, HOST_A.address, ELC, b"\0" * 32)),
    ]:
        for who in (OPERATOR, STRANGER, HOST_A):
            err = reverted(staking.send_governed, setter, *args, sender=who)
            assert (err.error, err.error_args) == ("OwnableUnauthorizedAccount", {"account": who.address}), setter
    with pytest.raises(InvalidInput):
        staking.governance_call("stake", charger, 1)

    f = staking.contract.functions
    too_many = [(i + 1, 0, 0) for i in range(9)]
    cases = [
        (f.setTiers(too_many), "StakingManagerTooManyTiers"),
        (f.setTiers([(2, 0, 0), (2, 0, 0)]), "StakingManagerTierOutOfOrder"),
        (f.setTiers([(0, 0, 0)]), "StakingManagerTierOutOfOrder"),
        (f.setTiers([(1, 500, 0), (2, 400, 0)]), "StakingManagerTierOutOfOrder"),
        (f.setTiers([(1, 10_001, 0)]), "StakingManagerDiscountTooHigh"),
        (f.setTiers([(1, 0, 10_001)]), "StakingManagerBoostTooHigh"),
        (f.setUnbondingDelay(365 * 86_400 + 1), "StakingManagerUnbondingDelayTooLong"),
        (f.setTreasury("0x" + "0" * 40), "StakingManagerZeroAddress"),
    ]
    for fn, error in cases:
        assert reverted(as_timelock, w.e, fn).error == error
    as_timelock(w.e, f.setTiers([]))  # an empty table: no tiers, the flat fee for everyone
    assert staking.tiers() == [] and staking.tier_of(charger).tier == 0
    assert reverted(staking.client.call, f.tier(1)).error == "StakingManagerUnknownTier"
    as_timelock(w.e, f.setTreasury(STRANGER.address))
    assert staking.treasury() == STRANGER.address


# ---------------------------------------------------------------- older deployments


def test_deploy_adds_staking_to_an_older_deployment_and_the_dao_wires_it(
    w: World, chain_settings: Settings, tmp_path: Path
) -> None:
    e = w.e
    settings = load_settings(data_dir=tmp_path, dev_chain_port=chain_settings.dev_chain_port)
    older = replace(
        e.deployment, addresses={k: v for k, v in e.deployment.addresses.items() if k not in STAKING_CONTRACTS}
    )
    with pytest.raises(DeploymentMissing, match="predates StakingManager"):
        _ = Electra.of(e.client, older).staking
    path = manifest_path(settings, older.chain_id)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(older.to_json()))
    upgraded, fresh = deploy(e.client, settings)
    assert fresh
    assert {k: upgraded.addresses[k] for k in older.addresses} == older.addresses
    assert all(upgraded.addresses[k] != e.deployment.addresses[k] for k in STAKING_CONTRACTS)
    again, fresh = deploy(e.client, settings)
    assert not fresh and again.addresses == upgraded.addresses

    added = Electra.of(e.client, again)
    assert added.staking.owner() == older.addresses["ElectraTimelock"]
    assert added.rewards.publisher() == OPERATOR.address
    # The deployer cannot wire the added contracts any more: governance does, in one proposal.
    assert len(wiring_calls(added)) == 2
    pid, _ = Dao(added).propose_wiring("Wire staking and rewards")
    pass_proposal(added, pid)
    assert wiring_calls(added) == []
    assert added.payments.commission_hook() == added.staking.address
    with pytest.raises(InvalidInput, match="wired already"):
        Dao(added).propose_wiring("again")
    charger = staked_charger(World(added, added.payments, w.usd, w.elc, w.sessions), HOST_C, TIER_3.min_stake)
    assert StakingBinding(e.client, added.staking.address).tier_of(charger).tier == 3


def test_staked_events_carry_the_new_bonded_amount(w: World) -> None:
    charger = staked_charger(w, HOST_A, 3 * ELC)
    fund(w, HOST_A, 2 * ELC)
    tx = w.e.staking.stake(charger, 2 * ELC, sender=HOST_A)
    receipt = w.e.client.w3.eth.get_transaction_receipt(tx.tx_hash)
    (log,) = w.e.staking.contract.events.Staked().process_receipt(receipt, errors=DISCARD)
    assert dict(log["args"]) == {"chargerId": charger, "staker": HOST_A.address, "amount": 2 * ELC, "bonded": 5 * ELC}


def test_contract_errors_come_with_a_fix(w: World) -> None:
    charger = w.charger(HOST_A)
    with pytest.raises(ContractReverted) as exc:
        w.e.staking.withdraw(charger, sender=HOST_A)
    assert "electra stake withdraw CHARGER AMOUNT" in (exc.value.fix or "")
