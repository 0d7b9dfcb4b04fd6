"""The DAO end to end on a real anvil: propose, vote, queue, execute through the timelock."""

from __future__ import annotations

import pytest

from electra.chain.bindings import Electra
from electra.chain.governance import Dao, ProposalState, Support, parse_amount
from electra.chain.keys import dev_account
from electra.errors import ContractReverted, InvalidInput

ELC = 10**18


def advance(electra: Electra, seconds: int) -> None:
    electra.client.rpc("evm_increaseTime", seconds)
    electra.client.rpc("evm_mine")


def test_full_lifecycle_changes_the_reward_mint_cap(electra: Electra) -> None:
    dao = Dao(electra)
    params = electra.deployment.parameters
    before = electra.token.reward_mint_cap()
    new_cap = 20_000_000 * ELC
    assert before != new_cap

    pid, _ = dao.propose_parameter([("reward-mint-cap", new_cap)], "Raise the reward mint cap to 20M ELC")
    assert dao.status(pid).state == "pending"
    with pytest.raises(ContractReverted) as e:
        dao.vote(pid, Support.FOR)
    assert e.value.error == "GovernorUnexpectedProposalState"

    advance(electra, params["voting_delay_s"] + 1)
    assert dao.status(pid).state == "active"
    dao.vote(pid, Support.FOR, reason="more usage mining")
    dao.vote(pid, Support.AGAINST, voter=dev_account(5))  # holds no ELC: counts zero
    st = dao.status(pid)
    assert st.votes_for == electra.token.votes(dev_account(0).address) > 0
    assert st.votes_against == 0
    assert st.quorum == electra.token.votes(dev_account(0).address) * params["quorum_percent"] // 100

    with pytest.raises(ContractReverted):
        dao.queue(pid)  # still active
    advance(electra, params["voting_period_s"] + 1)
    assert dao.status(pid).state == "succeeded"
    dao.queue(pid)
    st = dao.status(pid)
    assert st.state == "queued"
    assert st.eta >= dao.chain_time() + params["timelock_delay_s"] - 2

    with pytest.raises(ContractReverted) as e:
        dao.execute(pid)
    assert e.value.error == "TimelockUnexpectedOperationState"
    assert electra.token.reward_mint_cap() == before

    advance(electra, params["timelock_delay_s"] + 1)
    dao.execute(pid)
    assert dao.status(pid).state == "executed"
    assert electra.token.reward_mint_cap() == new_cap
    assert dao.parameter_value("reward-mint-cap") == new_cap


def test_defeated_without_quorum(electra: Electra) -> None:
    dao = Dao(electra)
    params = electra.deployment.parameters
    pid, _ = dao.propose_parameter([("reward-mint-cap", 1)], "Cut the cap to 1 wei")
    advance(electra, params["voting_delay_s"] + 1)
    dao.vote(pid, Support.AGAINST)
    advance(electra, params["voting_period_s"] + 1)
    assert ProposalState[dao.status(pid).state.upper()] is ProposalState.DEFEATED
    with pytest.raises(ContractReverted):
        dao.queue(pid)


def test_timelock_is_the_only_admin(electra: Electra) -> None:
    tl = electra.client.contract("ElectraTimelock", electra.deployment.address("ElectraTimelock"))
    f = tl.functions
    admin, proposer = (
        electra.client.call(f.DEFAULT_ADMIN_ROLE()),
        electra.client.call(f.PROPOSER_ROLE()),
    )
    governor = electra.deployment.address("ElectraGovernor")
    assert electra.client.call(f.hasRole(proposer, governor))
    assert not electra.client.call(f.hasRole(admin, dev_account(0).address))
    assert electra.client.call(f.hasRole(admin, tl.address))
    for name in ("ElectraToken", "StationRegistry", "VehicleLedger"):
        c = electra.client.contract(name, electra.deployment.address(name))
        assert electra.client.call(c.functions.owner()) == tl.address


def test_proposal_input_checks(electra: Electra) -> None:
    dao = Dao(electra)
    with pytest.raises(InvalidInput, match="unknown parameter"):
        dao.propose_parameter([("protocol-fee", 1)], "x")
    with pytest.raises(InvalidInput, match="empty proposal description"):
        dao.propose_parameter([("reward-mint-cap", 1)], " ")
    with pytest.raises(InvalidInput, match="no proposal"):
        dao.status(12345)


def test_parse_amount() -> None:
    assert parse_amount("20000000 ELC") == 20_000_000 * ELC
    assert parse_amount("1.5ELC") == 15 * 10**17
    assert parse_amount("1_000") == 1000
    for bad in ("-1", "1.5", "lots", "0.0000000000000000001 ELC"):
        with pytest.raises(InvalidInput):
            parse_amount(bad)
