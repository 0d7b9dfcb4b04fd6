"""Reentrancy on anvil: a malicious ERC-20 (contracts/test/ReentrantToken.sol) that calls back into
the contract moving it, from the very account whose position is being paid out, and a malicious
ERC-1271 wallet (contracts/test/ReentrantWallet.sol) that tries to re-enter PaymentHub while it is
asked whether it signed. PaymentHub is guarded (nonReentrant, STATICCALL for ERC-1271);
StakingManager and RewardsDistributor write their state before they transfer (checks, effects,
interactions): every re-entry fails, and every payout happens exactly once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_utils import keccak
from web3.contract import Contract

from electra.chain.bindings import Electra
from electra.chain.client import decode_revert
from electra.chain.keys import dev_account
from electra.chain.payments import ChargeAuthorization, Rejection, SessionCharge, SignedAuthorization
from electra.domain.station import StationSpec
from electra.domain.vehicle import vin_hash
from tests.test_payment_hub import as_timelock

pytestmark = pytest.mark.security

ME = dev_account(0)


@pytest.fixture
def token(electra: Electra) -> Iterator[Contract]:
    address, _ = electra.client.deploy("ReentrantToken")
    yield electra.client.contract("ReentrantToken", address)


def send(electra: Electra, fn: Any) -> None:
    electra.client.transact(fn)


def as_token(electra: Electra, token: Contract, target: Contract, fn_name: str, *args: Any) -> None:
    """``target.fn_name(*args)`` called by the token contract itself."""
    send(electra, token.functions.execute(target.address, target.encode_abi(fn_name, args=list(args))))


def arm(electra: Electra, token: Contract, target: Contract, fn_name: str, *args: Any) -> None:
    send(electra, token.functions.arm(target.address, target.encode_abi(fn_name, args=list(args))))


def reentry_error(electra: Electra, token: Contract) -> str:
    assert electra.client.call(token.functions.reentries()) >= 1
    assert electra.client.call(token.functions.lastSucceeded()) is False
    return decode_revert(bytes(electra.client.call(token.functions.lastReturn()))).error


def charger_for(electra: Electra, holder: str, charger_id: str) -> int:
    spec = StationSpec(charger_id, 52_520_008, 13_404_954, 22_000, 2, 1, b"DEELC")
    token_id, _ = electra.stations.register(spec, Account.create(), owner=ME)
    electra.client.transact(electra.stations.contract.functions.transferFrom(ME.address, holder, token_id))
    return token_id


def test_payment_hub_refuses_a_token_that_re_enters_deposit_withdraw_and_earnings(
    electra: Electra, token: Contract
) -> None:
    hub = electra.payments.contract
    as_timelock(electra, hub.functions.setAssetAllowed(token.address, True))
    device = Account.create()
    ledger = electra.vehicles.contract
    as_token(electra, token, ledger, "register", vin_hash("WVWZZZE1ZPPREENT1"), device.address)
    vid = electra.vehicles.vehicle_id_of_vin(vin_hash("WVWZZZE1ZPPREENT1"))
    assert electra.vehicles.vehicle(vid).owner == token.address  # the attacker owns the vehicle

    send(electra, token.functions.mint(ME.address, 1_000))
    send(electra, token.functions.approve(hub.address, 1_000))
    # deposit: transferFrom calls back into withdraw, as the vehicle's owner
    arm(electra, token, hub, "withdraw", vid, token.address, 500, token.address)
    send(electra, hub.functions.deposit(vid, token.address, 1_000))
    assert reentry_error(electra, token) == "ReentrancyGuardReentrantCall"
    assert electra.payments.balance(vid, token.address) == 1_000

    # withdraw: the payout calls back into withdraw again
    arm(electra, token, hub, "withdraw", vid, token.address, 500, token.address)
    as_token(electra, token, hub, "withdraw", vid, token.address, 300, token.address)
    assert reentry_error(electra, token) == "ReentrancyGuardReentrantCall"
    assert electra.payments.balance(vid, token.address) == 700
    assert electra.client.call(token.functions.balanceOf(token.address)) == 300

    # earnings: the token holds a charger; a session pays it; the payout re-enters withdrawEarnings
    charger = charger_for(electra, token.address, "CP-REENTER-1")
    auth = ChargeAuthorization(vid, charger, token.address, 200, electra.client.chain_time() + 3600, 1)
    signed = electra.payments.sign(device, auth)
    assert electra.payments.settle_batch(token.address, [SessionCharge(1, signed, 200, keccak(b"r1"))]).settled == [1]
    earned = electra.payments.earnings(token.address, token.address)
    assert 0 < earned <= 200
    arm(electra, token, hub, "withdrawEarnings", token.address, token.address)
    as_token(electra, token, hub, "withdrawEarnings", token.address, token.address)
    assert reentry_error(electra, token) == "ReentrancyGuardReentrantCall"
    assert electra.payments.earnings(token.address, token.address) == 0
    assert electra.client.call(token.functions.balanceOf(token.address)) == 300 + earned  # paid once


def test_staking_manager_pays_an_unbonded_stake_once_to_a_re_entering_token(electra: Electra, token: Contract) -> None:
    from electra.chain.deploy import STAKING_TIERS

    address, _ = electra.client.deploy(
        "StakingManager",
        ME.address,
        token.address,
        electra.stations.address,
        ME.address,
        60,
        [list(t) for t in STAKING_TIERS],
    )
    staking = electra.client.contract("StakingManager", address)
    charger = charger_for(electra, token.address, "CP-REENTER-2")
    send(electra, token.functions.mint(token.address, 10_000))
    as_token(electra, token, token, "approve", staking.address, 10_000)
    arm(electra, token, staking, "stake", charger, 1)  # stake's transferFrom re-enters stake
    as_token(electra, token, staking, "stake", charger, 10_000)
    # A re-entered stake finds the allowance spent: it cannot double-count the deposit.
    assert reentry_error(electra, token) in {"ERC20InsufficientAllowance", "SafeERC20FailedOperation"}
    assert electra.client.call(staking.functions.totalStaked()) == 10_000
    as_token(electra, token, staking, "requestUnstake", charger, 10_000)
    electra.client.rpc("evm_increaseTime", 61)
    electra.client.rpc("evm_mine")
    arm(electra, token, staking, "withdraw", charger)
    as_token(electra, token, staking, "withdraw", charger)
    assert reentry_error(electra, token) == "StakingManagerNothingToWithdraw"
    assert electra.client.call(token.functions.balanceOf(token.address)) == 10_000  # once, not twice
    assert electra.client.call(staking.functions.totalStaked()) == 0


def test_rewards_distributor_pays_a_claim_once_to_a_re_entering_token(electra: Electra, token: Contract) -> None:
    address, _ = electra.client.deploy("RewardsDistributor", ME.address, token.address, ME.address, 10**24)
    rewards = electra.client.contract("RewardsDistributor", address)
    amount = 5_000
    leaf = electra.client.call(rewards.functions.leaf(1, token.address, amount))
    send(electra, rewards.functions.publishEpoch(1, leaf, amount))  # a one-leaf tree: the root is the leaf
    arm(electra, token, rewards, "claim", 1, token.address, amount, [])
    send(electra, rewards.functions.claim(1, token.address, amount, []))
    assert reentry_error(electra, token) == "RewardsDistributorAlreadyClaimed"
    assert electra.client.call(token.functions.balanceOf(token.address)) == amount
    assert electra.client.call(token.functions.balanceOf(rewards.address)) == 0


def test_an_erc1271_wallet_cannot_re_enter_payment_hub_while_it_is_asked(electra: Electra) -> None:
    address, _ = electra.client.deploy("ReentrantWallet")
    wallet = electra.client.contract("ReentrantWallet", address)
    hub, coin = electra.payments, electra.stablecoin
    device = Account.create()
    send(
        electra,
        wallet.functions.execute(
            electra.vehicles.address,
            electra.vehicles.contract.encode_abi("register", args=[vin_hash("WVWZZZE1ZPPREENT4"), device.address]),
        ),
    )
    vid = electra.vehicles.vehicle_id_of_vin(vin_hash("WVWZZZE1ZPPREENT4"))
    coin.mint(ME.address, 100)
    hub.deposit(vid, coin.address, 100)
    # Asked about a signature, the wallet tries to take the vehicle's whole deposit for itself.
    send(
        electra,
        wallet.functions.arm(hub.address, hub.contract.encode_abi("withdraw", args=[vid, coin.address, 100, address])),
    )
    spec = StationSpec("CP-REENTER-4", 52_520_008, 13_404_954, 22_000, 2, 1, b"DEELC")
    charger, _ = electra.stations.register(spec, Account.create(), owner=dev_account(1))
    auth = ChargeAuthorization(vid, charger, coin.address, 40, electra.client.chain_time() + 3600, 1)
    by_wallet = SignedAuthorization(auth, b"\x01" * 65)  # not the device's: the owner wallet is asked
    result = hub.settle_batch(coin.address, [SessionCharge(7, by_wallet, 40, keccak(b"r7"))])
    assert result.settled == [7] and result.rejected == {}  # it said yes (it says yes to anything) ...
    assert hub.balance(vid, coin.address) == 60  # ... but its withdraw inside the STATICCALL did nothing
    assert coin.balance_of(address) == 0
    again = hub.settle_batch(coin.address, [SessionCharge(7, by_wallet, 40, keccak(b"r7"))])
    assert again.rejected == {7: Rejection.ALREADY_SETTLED} and hub.balance(vid, coin.address) == 60
