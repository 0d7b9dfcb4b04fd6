"""PaymentHub on a real anvil: deposits, signed charge authorizations, batched settlement, fees,
governance. The batch policy under test: a bad entry is skipped and reported with its reason, the
single-entry `settle` reverts with the matching custom error (docs/payments.md)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import astuple, dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD

from electra.chain import eip712
from electra.chain.bindings import Electra
from electra.chain.client import decode_revert
from electra.chain.deploy import PAYMENT_CONTRACTS, PROTOCOL_FEE_BPS, deploy, manifest_path
from electra.chain.governance import Dao, Support
from electra.chain.keys import dev_account
from electra.chain.payments import (
    ChargeAuthorization,
    PaymentHubBinding,
    Rejection,
    SessionCharge,
    SignedAuthorization,
)
from electra.config import Settings, load_settings
from electra.domain.station import StationSpec
from electra.domain.tariff import Tariff, TariffBounds
from electra.domain.vehicle import vin_hash
from electra.errors import ContractReverted, DeploymentMissing, InvalidInput
from electra.payments.tariffs import TariffBook, governed_bounds
from electra.store.db import make_engine, migrate

OPERATOR = dev_account(0)  # deployer: settler, stablecoin minter, pause guardian
HOST_A, HOST_B, HOST_C = dev_account(1), dev_account(2), dev_account(3)
OWNER = dev_account(4)  # owns the vehicles
STRANGER = dev_account(5)
USD = 10**6  # ElectraUSD has 6 decimals
_vins = itertools.count(1)
_chargers = itertools.count(1)


@dataclass
class World:
    e: Electra
    hub: PaymentHubBinding
    usd: str
    elc: str
    sessions: Iterator[int]

    def charger(self, host: LocalAccount) -> int:
        spec = StationSpec(f"CP-PAY-{next(_chargers):04d}", 52_520_008, 13_404_954, 22_000, 2, 1, b"DEELC")
        token_id, _ = self.e.stations.register(spec, Account.create(), owner=host)
        return token_id

    def vehicle(self, funds: int = 0, owner: LocalAccount = OWNER) -> tuple[int, LocalAccount]:
        device = Account.create()
        vid, _ = self.e.vehicles.register(vin_hash(f"WVWZZZE1ZPP{next(_vins):06d}"), device.address, owner=owner)
        if funds:
            self.fund(vid, funds)
        return vid, device

    def fund(self, vehicle_id: int, amount: int) -> None:
        self.e.stablecoin.mint(OPERATOR.address, amount)
        self.hub.deposit(vehicle_id, self.usd, amount)

    def charge(
        self,
        signer: LocalAccount,
        vehicle_id: int,
        charger_id: int,
        amount: int,
        max_amount: int | None = None,
        session_id: int | None = None,
        **kw: Any,
    ) -> SessionCharge:
        signed = self.hub.authorize(
            signer, vehicle_id, charger_id, self.usd, max_amount if max_amount is not None else amount, **kw
        )
        sid = session_id if session_id is not None else next(self.sessions)
        return SessionCharge(sid, signed, amount, keccak(text=f"session-record-{sid}"))


@pytest.fixture
def w(electra: Electra) -> World:
    return World(
        electra,
        electra.payments,
        electra.stablecoin.address,
        electra.token.address,
        itertools.count(1000 + next(_vins) * 1000),
    )


def as_timelock(e: Electra, fn: ContractFunction) -> None:
    """Sends a governed call as the timelock (anvil impersonation); the DAO path is tested once below."""
    timelock = e.deployment.address("ElectraTimelock")
    e.client.rpc("anvil_impersonateAccount", timelock)
    e.client.rpc("anvil_setBalance", timelock, hex(10**18))
    try:
        tx = fn.transact({"from": timelock})
        assert e.client.w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
    except ContractLogicError as exc:
        raise decode_revert(exc.data if isinstance(exc.data, str) else None) from exc
    finally:
        e.client.rpc("anvil_stopImpersonatingAccount", timelock)


def reverted(fn: Any, *args: Any, **kw: Any) -> ContractReverted:
    with pytest.raises(ContractReverted) as exc:
        fn(*args, **kw)
    return exc.value


# ---------------------------------------------------------------- deployment


def test_deployed_under_governance_with_both_assets(w: World) -> None:
    hub, e = w.hub, w.e
    timelock = e.deployment.address("ElectraTimelock")
    assert e.client.call(hub.contract.functions.owner()) == timelock
    assert hub.treasury() == timelock
    assert hub.is_settler(OPERATOR.address) and not hub.is_settler(STRANGER.address)
    assert hub.guardian() == OPERATOR.address
    assert hub.is_asset_allowed(w.usd) and hub.is_asset_allowed(w.elc)
    assert hub.protocol_fee_bps() == PROTOCOL_FEE_BPS == 100
    assert hub.max_fee_bps() == 1_000
    # StakingManager is the hook from genesis (deploy's genesis wiring); tests/test_staking.py.
    assert hub.commission_hook() == e.deployment.address("StakingManager")
    usd = e.stablecoin.contract.functions
    assert e.client.call(usd.decimals()) == 6
    assert e.client.call(usd.hasRole(e.client.call(usd.MINTER_ROLE()), OPERATOR.address))
    assert e.client.call(usd.hasRole(e.client.call(usd.DEFAULT_ADMIN_ROLE()), timelock))
    assert not e.client.call(usd.hasRole(e.client.call(usd.DEFAULT_ADMIN_ROLE()), OPERATOR.address))


def test_only_the_minter_mints_the_stablecoin(w: World) -> None:
    w.e.stablecoin.mint(HOST_A.address, 5 * USD, b"\x01" * 32)
    assert w.e.stablecoin.balance_of(HOST_A.address) == 5 * USD
    err = reverted(w.e.stablecoin.mint, HOST_A.address, 1, sender=HOST_A)
    assert err.error == "AccessControlUnauthorizedAccount"


def test_deploy_adds_the_payment_contracts_to_an_older_deployment(
    w: World, chain_settings: Settings, tmp_path: Path
) -> None:
    """A dev chain deployed before PaymentHub existed gets ElectraUSD and PaymentHub in place."""
    settings = load_settings(data_dir=tmp_path, dev_chain_port=chain_settings.dev_chain_port)
    older = replace(
        w.e.deployment,
        addresses={k: v for k, v in w.e.deployment.addresses.items() if k not in PAYMENT_CONTRACTS},
    )
    path = manifest_path(settings, older.chain_id)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(older.to_json()))
    upgraded, fresh = deploy(w.e.client, settings)
    assert fresh
    assert {k: upgraded.addresses[k] for k in older.addresses} == older.addresses
    assert set(PAYMENT_CONTRACTS) <= set(upgraded.addresses)
    assert upgraded.addresses["PaymentHub"] != w.e.deployment.addresses["PaymentHub"]
    again, fresh = deploy(w.e.client, settings)
    assert not fresh and again.addresses == upgraded.addresses
    hub = Electra.of(w.e.client, again).payments
    assert hub.address == upgraded.addresses["PaymentHub"]
    assert w.e.client.call(hub.contract.functions.vehicleLedger()) == older.addresses["VehicleLedger"]
    assert w.e.client.call(hub.contract.functions.owner()) == older.addresses["ElectraTimelock"]
    with pytest.raises(DeploymentMissing, match="predates PaymentHub"):
        _ = Electra.of(w.e.client, older).payments


# ---------------------------------------------------------------- deposits and withdrawals


def test_anyone_deposits_and_only_the_owner_withdraws(w: World) -> None:
    vid, _ = w.vehicle()
    w.e.stablecoin.mint(STRANGER.address, 30 * USD)
    w.hub.deposit(vid, w.usd, 30 * USD, sender=STRANGER)
    assert w.hub.account(vid, w.usd) == (30 * USD, 0)
    assert w.e.stablecoin.balance_of(w.hub.address) == 30 * USD

    err = reverted(w.hub.withdraw, vid, w.usd, 1, owner=STRANGER)
    assert err.error == "PaymentHubNotVehicleOwner"
    err = reverted(w.hub.withdraw, vid, w.usd, 31 * USD, owner=OWNER)
    assert err.error == "PaymentHubInsufficientBalance"
    assert err.error_args["balance"] == 30 * USD

    w.hub.withdraw(vid, w.usd, 12 * USD, owner=OWNER, to=HOST_C.address)
    assert w.hub.balance(vid, w.usd) == 18 * USD
    assert w.e.stablecoin.balance_of(HOST_C.address) == 12 * USD


def test_deposit_checks(w: World) -> None:
    vid, _ = w.vehicle()
    w.e.stablecoin.mint(OPERATOR.address, 10 * USD)
    assert reverted(w.hub.deposit, 999_999, w.usd, USD).error == "PaymentHubUnknownVehicle"
    assert reverted(w.hub.deposit, 0, w.usd, USD).error == "PaymentHubUnknownVehicle"
    assert reverted(w.hub.deposit, vid, w.usd, 0).error == "PaymentHubZeroAmount"
    other = w.e.client.deploy("ElectraUSD", OPERATOR.address, OPERATOR.address)[0]
    err = reverted(w.hub.deposit, vid, other, USD)
    assert (err.error, err.error_args) == ("PaymentHubAssetNotAllowed", {"asset": other})


def test_deposit_elc_with_a_permit(w: World) -> None:
    vid, _ = w.vehicle()
    elc = 10**18
    w.e.token.transfer(HOST_B.address, 7 * elc)
    w.hub.deposit_with_permit(vid, w.elc, 7 * elc, owner=HOST_B)
    assert w.hub.balance(vid, w.elc) == 7 * elc
    assert w.e.token.balance_of(HOST_B.address) == 0


# ---------------------------------------------------------------- settlement


def test_settle_batch_nets_per_holder_and_takes_the_fee(w: World) -> None:
    a1, a2, b1 = w.charger(HOST_A), w.charger(HOST_A), w.charger(HOST_B)
    (v1, d1), (v2, d2), (v3, d3) = (w.vehicle(100 * USD) for _ in range(3))
    charges = [
        w.charge(d1, v1, a1, 12_340_000),
        w.charge(d2, v2, a2, 7_000_001),
        w.charge(d3, v3, b1, 3_000_000, max_amount=5_000_000),
        w.charge(d1, v1, b1, 1_500_000, nonce=2),  # the same vehicle again, next nonce
    ]
    result = w.hub.settle_batch(w.usd, charges)

    assert [o.reason for o in result.outcomes] == [Rejection.NONE] * 4
    assert result.settled == [c.session_id for c in charges]
    assert all(w.hub.is_settled(c.session_id) for c in charges)
    assert w.hub.account(v1, w.usd) == (100 * USD - 13_840_000, 2)
    assert w.hub.balance(v3, w.usd) == 97 * USD

    # The fee is taken on each charger's total in the batch, rounded down (1 %).
    fee_a = 12_340_000 * 100 // 10_000 + 7_000_001 * 100 // 10_000
    fee_b = 4_500_000 * 100 // 10_000
    assert result.gross_amount == 23_840_001
    assert result.fee_amount == fee_a + fee_b == w.hub.fees_accrued(w.usd)
    assert result.credits == {HOST_A.address: 19_340_001 - fee_a, HOST_B.address: 4_500_000 - fee_b}
    assert w.hub.earnings(HOST_A.address, w.usd) == 19_340_001 - fee_a

    # One EarningsCredited per holder, however many chargers and sessions it had.
    receipt = w.e.client.w3.eth.get_transaction_receipt(result.tx.tx_hash)
    credited = w.hub.contract.events.EarningsCredited().process_receipt(receipt, errors=DISCARD)
    assert sorted(ev["args"]["payee"] for ev in credited) == sorted([HOST_A.address, HOST_B.address])

    paid, _ = w.hub.withdraw_earnings(w.usd, HOST_A)
    assert paid == 19_340_001 - fee_a == w.e.stablecoin.balance_of(HOST_A.address)
    assert w.hub.earnings(HOST_A.address, w.usd) == 0
    assert reverted(w.hub.withdraw_earnings, w.usd, HOST_A).error == "PaymentHubNothingToWithdraw"

    swept, _ = w.hub.sweep_fees(w.usd, sender=STRANGER)  # anyone may push fees to the treasury
    assert swept == fee_a + fee_b
    assert w.e.stablecoin.balance_of(w.hub.treasury()) == fee_a + fee_b
    assert w.e.stablecoin.balance_of(w.hub.address) == 300 * USD - paid - swept


def test_the_payee_is_whoever_holds_the_charger_at_settlement(w: World) -> None:
    charger = w.charger(HOST_A)
    vid, device = w.vehicle(50 * USD)
    charge = w.charge(device, vid, charger, 10 * USD)  # authorized while HOST_A held it
    registry = w.e.stations.contract.functions
    w.e.client.transact(registry.transferFrom(HOST_A.address, HOST_C.address, charger), sender=HOST_A)
    result = w.hub.settle_batch(w.usd, [charge])
    assert result.credits == {HOST_C.address: 10 * USD - 10 * USD // 100}
    assert w.hub.earnings(HOST_A.address, w.usd) == 0


def test_bad_entries_are_skipped_and_reported(w: World) -> None:
    charger = w.charger(HOST_A)
    (v1, d1), (v2, d2), (v3, d3), (v4, d4), (v5, d5), (v6, d6) = (w.vehicle(20 * USD) for _ in range(6))
    done = w.charge(d1, v1, charger, USD)
    w.hub.settle_batch(w.usd, [done])
    now = w.hub.chain_time()

    good = w.charge(d2, v2, charger, 2 * USD)
    forged = w.charge(Account.create(), v3, charger, USD)  # a key that is not the vehicle's
    replayed = SessionCharge(next(w.sessions), done.authorization, USD, done.record_hash)
    expired = w.charge(d4, v4, charger, USD, expiry=now - 1)
    over_limit = w.charge(d5, v5, charger, 3 * USD, max_amount=2 * USD)
    double = w.charge(d6, v6, charger, USD, session_id=done.session_id)
    poor = w.charge(d3, v3, charger, 21 * USD)
    unknown = w.charge(d5, v5, 424_242, USD)
    batch = [good, forged, replayed, expired, over_limit, double, poor, unknown]

    result = w.hub.settle_batch(w.usd, batch)
    assert result.rejected == {
        forged.session_id: Rejection.INVALID_SIGNATURE,
        replayed.session_id: Rejection.NONCE_USED,
        expired.session_id: Rejection.EXPIRED,
        over_limit.session_id: Rejection.OVER_LIMIT,
        double.session_id: Rejection.ALREADY_SETTLED,
        poor.session_id: Rejection.INSUFFICIENT_BALANCE,
        unknown.session_id: Rejection.UNKNOWN_CHARGER,
    }
    assert result.settled == [good.session_id]
    assert result.gross_amount == 2 * USD
    receipt = w.e.client.w3.eth.get_transaction_receipt(result.tx.tx_hash)
    summary = w.hub.contract.events.BatchSettled().process_receipt(receipt, errors=DISCARD)[0]["args"]
    assert (summary["settled"], summary["rejected"]) == (1, 7)

    # A rejected entry consumes neither its session id nor the vehicle's nonce: after a top-up the
    # same signed authorization settles.
    assert not w.hub.is_settled(poor.session_id)
    assert w.hub.account(v3, w.usd) == (20 * USD, 0)
    w.fund(v3, USD)
    assert w.hub.settle_batch(w.usd, [poor]).settled == [poor.session_id]
    assert w.hub.balance(v3, w.usd) == 0


def test_no_signature_passes_for_an_unknown_or_zero_vehicle(w: World) -> None:
    """The ledger answers 0 for an address that is no device: that must not match vehicle id 0."""
    charger = w.charger(HOST_A)
    expiry = w.hub.chain_time() + 60
    charges = [
        SessionCharge(
            next(w.sessions),
            w.hub.sign(Account.create(), ChargeAuthorization(vid, charger, w.usd, 0, expiry, 1)),
            0,
            b"\x22" * 32,
        )
        for vid in (0, 10**9)
    ]
    result = w.hub.settle_batch(w.usd, charges)
    assert result.rejected == {c.session_id: Rejection.INVALID_SIGNATURE for c in charges}
    assert not any(w.hub.is_settled(c.session_id) for c in charges)


def test_strict_settle_reverts_with_the_custom_error(w: World) -> None:
    charger = w.charger(HOST_A)
    (v1, d1), (v2, d2) = w.vehicle(20 * USD), w.vehicle(20 * USD)
    done = w.charge(d1, v1, charger, USD)
    w.hub.settle(w.usd, done)
    assert w.hub.is_settled(done.session_id)
    now = w.hub.chain_time()

    cases = {
        "PaymentHubInvalidSignature": w.charge(Account.create(), v2, charger, USD),
        "PaymentHubNonceUsed": SessionCharge(next(w.sessions), done.authorization, USD, done.record_hash),
        "PaymentHubAuthorizationExpired": w.charge(d2, v2, charger, USD, expiry=now - 1),
        "PaymentHubAmountOverLimit": w.charge(d2, v2, charger, 3 * USD, max_amount=2 * USD),
        "PaymentHubSessionAlreadySettled": w.charge(d2, v2, charger, USD, session_id=done.session_id),
        "PaymentHubInsufficientBalance": w.charge(d2, v2, charger, 21 * USD),
        "PaymentHubUnknownCharger": w.charge(d2, v2, 424_242, USD),
        "PaymentHubNonceOutOfRange": w.charge(d2, v2, charger, USD, nonce=2**32),
    }
    for error, charge in cases.items():
        assert reverted(w.hub.settle, w.usd, charge).error == error, error
    err = reverted(w.hub.settle, w.usd, cases["PaymentHubNonceUsed"])
    assert err.error_args == {"sessionId": cases["PaymentHubNonceUsed"].session_id, "nonce": 1, "lastNonce": 1}
    assert w.hub.account(v2, w.usd) == (20 * USD, 0)


def test_nonces_above_32_bits_are_rejected_in_a_batch(w: World) -> None:
    charger = w.charger(HOST_A)
    vid, device = w.vehicle(20 * USD)
    too_big, largest = (
        w.charge(device, vid, charger, USD, nonce=2**32),
        w.charge(device, vid, charger, USD, nonce=2**32 - 1),
    )
    result = w.hub.settle_batch(w.usd, [too_big, largest])
    assert result.rejected == {too_big.session_id: Rejection.NONCE_OUT_OF_RANGE}
    assert w.hub.account(vid, w.usd) == (19 * USD, 2**32 - 1)


def _set_device(w: World, vehicle_id: int, device: str, owner: LocalAccount = OWNER) -> None:
    w.e.client.transact(w.e.vehicles.contract.functions.setDevice(vehicle_id, device), sender=owner)


def test_a_rotated_out_device_stops_settling_at_once_despite_the_cache(w: World) -> None:
    charger = w.charger(HOST_A)
    vid, old = w.vehicle(20 * USD)
    w.hub.settle(w.usd, w.charge(old, vid, charger, USD))  # the cache now holds `old`
    new = Account.create()
    _set_device(w, vid, new.address)
    by_old = w.charge(old, vid, charger, USD)
    assert reverted(w.hub.settle, w.usd, by_old).error == "PaymentHubInvalidSignature"
    result = w.hub.settle_batch(w.usd, [by_old, w.charge(new, vid, charger, USD)])
    assert result.rejected == {by_old.session_id: Rejection.INVALID_SIGNATURE}
    assert len(result.settled) == 1
    assert w.hub.account(vid, w.usd)[0] == 18 * USD


def test_the_device_cache_follows_rotations_and_saves_the_ledger_lookup(w: World) -> None:
    """Gas tells a cache hit (no ledger call, no cold read there) from a lookup: a hub the ledger
    does not notify (a second hub on the same ledger) asks the ledger on every session."""
    charger = w.charger(HOST_A)
    vid, device = w.vehicle(20 * USD)
    w.hub.settle(w.usd, w.charge(device, vid, charger, USD))  # warms the charger's holder and the bitmap word
    hit = w.hub.settle(w.usd, w.charge(device, vid, charger, USD)).tx.gas_used
    other = Account.create()
    _set_device(w, vid, other.address)  # the ledger rewrites the hub's cache at once
    after_rotation = w.hub.settle(w.usd, w.charge(other, vid, charger, USD)).tx.gas_used
    assert abs(after_rotation - hit) < 100, (hit, after_rotation)

    ledger = w.e.deployment.addresses["VehicleLedger"]
    assert w.e.client.call(w.e.vehicles.contract.functions.deviceObserver()) == w.hub.address
    hub2_addr, _ = w.e.client.deploy(
        "PaymentHub",
        OPERATOR.address,
        OPERATOR.address,
        ledger,
        w.e.deployment.addresses["StationRegistry"],
        OPERATOR.address,
        OPERATOR.address,
        PROTOCOL_FEE_BPS,  # as the deployed hub, so that only the cache differs
        [w.usd],
    )
    hub2 = PaymentHubBinding(w.e.client, hub2_addr)
    # The same commission hook as the deployed hub (StakingManager), so that only the cache differs.
    w.e.client.transact(hub2.contract.functions.setCommissionHook(w.hub.commission_hook()))
    w.e.stablecoin.mint(OPERATOR.address, 20 * USD)
    w.e.stablecoin.approve(hub2_addr, 20 * USD)
    hub2.deposit(vid, w.usd, 20 * USD)
    sign = [hub2.sign(other, hub2.authorization(vid, charger, w.usd, 2 * USD, nonce=n)) for n in (1, 2)]
    hub2.settle(w.usd, SessionCharge(next(w.sessions), sign[0], USD, b"\x11" * 32))
    lookup = hub2.settle(w.usd, SessionCharge(next(w.sessions), sign[1], USD, b"\x12" * 32)).tx.gas_used
    assert lookup - hit > 2_000, (hit, lookup)
    assert hub2.account(vid, w.usd) == (18 * USD, 2)


def test_only_the_ledger_tells_the_hub_of_device_changes(w: World) -> None:
    fn = w.hub.contract.functions.vehicleDeviceChanged(1, STRANGER.address)
    err = reverted(w.e.client.transact, fn, sender=STRANGER)
    assert err.error == "PaymentHubUnauthorizedLedger"
    ledger = w.e.vehicles.contract.functions
    err = reverted(w.e.client.transact, ledger.setDeviceObserver(STRANGER.address))  # the deployer, once only
    assert err.error == "VehicleLedgerDeviceObserverFixed"
    err = reverted(w.e.client.transact, ledger.setDeviceObserver("0x" + "00" * 20), sender=STRANGER)
    assert err.error == "VehicleLedgerUnauthorizedAccount"


def test_a_higher_nonce_voids_the_unsettled_lower_ones(w: World) -> None:
    charger = w.charger(HOST_A)
    vid, device = w.vehicle(20 * USD)
    third = w.charge(device, vid, charger, USD, nonce=3)
    first = w.charge(device, vid, charger, USD, nonce=1)
    result = w.hub.settle_batch(w.usd, [third, first])
    assert result.rejected == {first.session_id: Rejection.NONCE_USED}
    assert w.hub.account(vid, w.usd) == (19 * USD, 3)
    assert w.hub.next_nonce(vid, w.usd) == 4


def test_malformed_entries_revert_the_whole_batch(w: World) -> None:
    charger = w.charger(HOST_A)
    vid, device = w.vehicle(20 * USD)
    packed = w.charge(device, vid, charger, USD).pack()
    fn = w.hub.contract.functions.settleBatch
    for bad in (packed[:-1], packed + b"\x00" * 10, packed[:50]):
        assert reverted(w.e.client.transact, fn(w.usd, bad)).error == "PaymentHubMalformedEntries"
    err = reverted(w.e.client.transact, fn(STRANGER.address, packed))
    assert err.error == "PaymentHubAssetNotAllowed"


def test_signature_for_another_asset_or_charger_is_refused(w: World) -> None:
    c1, c2 = w.charger(HOST_A), w.charger(HOST_B)
    vid, device = w.vehicle(20 * USD)
    signed = w.hub.authorize(device, vid, c1, w.usd, USD)
    moved = SignedAuthorization(replace(signed.authorization, charger_id=c2), signed.signature)
    charge = SessionCharge(next(w.sessions), moved, USD, b"\x11" * 32)
    assert w.hub.settle_batch(w.usd, [charge]).rejected == {charge.session_id: Rejection.INVALID_SIGNATURE}
    # Settled in an ELC batch, an authorization signed for eUSD does not verify.
    w.hub.deposit(vid, w.elc, 10**18)
    elc_charge = SessionCharge(next(w.sessions), signed, USD, b"\x11" * 32)
    result = w.hub.settle_batch(w.elc, [elc_charge])
    assert result.rejected == {elc_charge.session_id: Rejection.INVALID_SIGNATURE}


# ---------------------------------------------------------------- who may sign


def test_the_owner_key_may_sign_instead_of_the_device(w: World) -> None:
    charger = w.charger(HOST_A)
    vid, _ = w.vehicle(20 * USD)
    charge = w.charge(OWNER, vid, charger, 4 * USD)
    assert w.hub.settle_batch(w.usd, [charge]).settled == [charge.session_id]
    assert w.hub.balance(vid, w.usd) == 16 * USD


def test_an_erc1271_wallet_owner_may_sign(w: World) -> None:
    charger = w.charger(HOST_A)
    wallet_key = Account.create()
    wallet_addr, _ = w.e.client.deploy("TestSmartWallet", wallet_key.address)
    # The vehicle onboards itself with the wallet as its owner; the operator relays.
    device = Account.create()
    signed = w.e.vehicles.sign_onboarding(device, vin_hash(f"WVWZZZE1ZPP{next(_vins):06d}"), wallet_addr)
    vid, _ = w.e.vehicles.relay_onboarding(signed)
    assert w.e.vehicles.vehicle(vid).owner == wallet_addr
    w.fund(vid, 20 * USD)

    by_wallet = w.charge(wallet_key, vid, charger, 5 * USD)  # the wallet's key signs; ERC-1271 accepts
    by_stranger = w.charge(Account.create(), vid, charger, 5 * USD, nonce=2)
    result = w.hub.settle_batch(w.usd, [by_wallet, by_stranger])
    assert result.settled == [by_wallet.session_id]
    assert result.rejected == {by_stranger.session_id: Rejection.INVALID_SIGNATURE}
    assert w.hub.account(vid, w.usd) == (15 * USD, 1)

    # The wallet, as the owner, withdraws (its key has it call the hub).
    w.e.client.rpc("anvil_setBalance", wallet_key.address, hex(10**18))
    wallet = w.e.client.contract("TestSmartWallet", wallet_addr)
    call = w.hub.contract.encode_abi("withdraw", args=[vid, w.usd, 15 * USD, HOST_C.address])
    w.e.client.transact(wallet.functions.execute(w.hub.address, call), sender=wallet_key)
    assert w.e.stablecoin.balance_of(HOST_C.address) == 15 * USD


def test_a_contract_device_signs_through_erc1271(w: World) -> None:
    charger = w.charger(HOST_A)
    device_key = Account.create()
    device_addr, _ = w.e.client.deploy("TestSmartWallet", device_key.address)
    vid, _ = w.e.vehicles.register(vin_hash(f"WVWZZZE1ZPP{next(_vins):06d}"), device_addr, owner=OWNER)
    w.fund(vid, 10 * USD)
    charge = w.charge(device_key, vid, charger, 3 * USD)
    assert w.hub.settle_batch(w.usd, [charge]).settled == [charge.session_id]
    assert w.hub.balance(vid, w.usd) == 7 * USD


def test_settling_with_an_access_list_gives_the_same_outcomes(w: World) -> None:
    charger = w.charger(HOST_A)
    (v1, d1), (v2, d2) = w.vehicle(10 * USD), w.vehicle(10 * USD)
    good, poor = w.charge(d1, v1, charger, 4 * USD), w.charge(d2, v2, charger, 11 * USD)
    result = w.hub.settle_batch(w.usd, [good, poor], access_list=True)
    assert result.settled == [good.session_id]
    assert result.rejected == {poor.session_id: Rejection.INSUFFICIENT_BALANCE}
    tx = w.e.client.w3.eth.get_transaction(result.tx.tx_hash)
    assert tx["accessList"], "the transaction carries an EIP-2930 access list"
    assert w.hub.earnings(HOST_A.address, w.usd) == 4 * USD - 4 * USD // 100


# ---------------------------------------------------------------- encodings


def test_packed_entry_and_digest_match_the_contract(w: World) -> None:
    charger = w.charger(HOST_A)
    vid, device = w.vehicle()
    charge = w.charge(device, vid, charger, 123_456, max_amount=2**96 - 1, session_id=2**64 - 1, nonce=2**64 - 1)
    decoded = w.e.client.call(w.hub.contract.functions.decodeEntry(charge.pack()))
    a = charge.authorization.authorization
    assert list(decoded[:8]) == [
        2**64 - 1,
        vid,
        charger,
        2**64 - 1,
        a.expiry,
        2**96 - 1,
        123_456,
        charge.record_hash,
    ]
    assert decoded[9] == 65
    assert w.hub.digest(a) == eip712.digest(a.typed_data(w.e.client.chain_id, w.hub.address))
    assert SignedAuthorization.from_json(charge.authorization.to_json()) == charge.authorization


def test_values_that_do_not_fit_the_packing_are_refused(w: World) -> None:
    auth = ChargeAuthorization(1, 1, w.usd, 2**96, 2**40, 1)
    charge = SessionCharge(1, SignedAuthorization(auth, b"\x00" * 65), 1, b"\x00" * 32)
    with pytest.raises(InvalidInput, match="max amount"):
        charge.pack()
    with pytest.raises(InvalidInput, match="repeats a session id"):
        w.hub.settle_batch(w.usd, [replace(charge, amount=0)] * 2)
    with pytest.raises(InvalidInput, match="malformed charge authorization"):
        SignedAuthorization.from_json({"vehicleId": "x"})


# ---------------------------------------------------------------- governance and pause


def test_only_governance_sets_parameters(w: World) -> None:
    for setter, args in [
        ("setProtocolFee", (200,)),
        ("setAssetAllowed", (STRANGER.address, True)),
        ("setCommissionHook", (STRANGER.address,)),
        ("setGuardian", (STRANGER.address,)),
        ("setSettler", (STRANGER.address, True)),
        ("setTreasury", (STRANGER.address,)),
        ("unpause", ()),
    ]:
        for who in (OPERATOR, STRANGER):
            err = reverted(w.hub.send_governed, setter, *args, sender=who)
            assert (err.error, err.error_args) == ("OwnableUnauthorizedAccount", {"account": who.address}), setter
    assert w.hub.protocol_fee_bps() == PROTOCOL_FEE_BPS
    with pytest.raises(InvalidInput):
        w.hub.governance_call("settleBatch", w.usd, b"")

    charger = w.charger(HOST_A)
    vid, device = w.vehicle(5 * USD)
    err = reverted(w.hub.settle_batch, w.usd, [w.charge(device, vid, charger, USD)], sender=STRANGER)
    assert (err.error, err.error_args) == ("PaymentHubUnauthorizedSettler", {"account": STRANGER.address})

    f = w.hub.contract.functions
    as_timelock(w.e, f.setProtocolFee(1_000))
    assert w.hub.protocol_fee_bps() == 1_000
    err = reverted(as_timelock, w.e, f.setProtocolFee(1_001))
    assert (err.error, err.error_args) == ("PaymentHubFeeTooHigh", {"feeBps": 1_001, "maxFeeBps": 1_000})
    as_timelock(w.e, f.setSettler(STRANGER.address, True))
    assert w.hub.settle_batch(w.usd, [w.charge(device, vid, charger, USD)], sender=STRANGER).fee_amount == USD // 10


def test_fee_change_through_the_dao(w: World) -> None:
    target, calldata = w.hub.governance_call("setProtocolFee", 250)
    _through_the_dao(w, target, calldata, "Protocol fee to 2.5 %")
    assert w.hub.protocol_fee_bps() == 250

    charger = w.charger(HOST_A)
    vid, device = w.vehicle(10 * USD)
    assert w.hub.settle_batch(w.usd, [w.charge(device, vid, charger, 4 * USD)]).fee_amount == 100_000


def _through_the_dao(w: World, target: str, calldata: bytes, description: str) -> None:
    e, dao = w.e, Dao(w.e)
    params = e.deployment.parameters
    receipt = e.client.transact(dao.governor.functions.propose([target], [0], [calldata], description))
    pid = int(dao.governor.events.ProposalCreated().process_receipt(receipt, errors=DISCARD)[0]["args"]["proposalId"])
    for seconds, step in (
        (params["voting_delay_s"] + 1, lambda: dao.vote(pid, Support.FOR)),
        (params["voting_period_s"] + 1, lambda: dao.queue(pid)),
        (params["timelock_delay_s"] + 1, lambda: dao.execute(pid)),
    ):
        e.client.rpc("evm_increaseTime", seconds)
        e.client.rpc("evm_mine")
        step()


def test_tariff_bounds_through_the_dao_bind_hosts_tariffs(w: World, tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/electra.db")
    migrate(engine)
    assets = {"EUSD": w.usd, "ELC": w.elc}
    book = TariffBook(engine, governed_bounds(w.hub.tariff_bounds, assets))
    # Before governance publishes any, the platform's defaults apply: at most 2.00 EUSD per kWh.
    assert w.hub.tariff_bounds(w.elc) is None
    book.set("CP-BOUNDS", Tariff("ELC", energy_price_per_wh=10**15), by="host")
    with pytest.raises(InvalidInput, match="energy"):
        book.set("CP-BOUNDS", Tariff("EUSD", energy_price_per_wh=2_001), by="host")

    published = TariffBounds(1_000, 10_000_000, 20_000_000, 500_000)  # 1.00 EUSD per kWh at most
    target, calldata = w.hub.governance_call("setTariffBounds", w.usd, tuple(astuple(published)))
    err = reverted(w.e.client.transact, w.hub.contract.functions.setTariffBounds(w.usd, astuple(published)))
    assert err.error == "OwnableUnauthorizedAccount"
    _through_the_dao(w, target, calldata, "EUSD tariffs: at most 1.00 per kWh")
    assert w.hub.tariff_bounds(w.usd) == published
    with pytest.raises(InvalidInput, match="energy"):
        book.set("CP-BOUNDS", Tariff("EUSD", energy_price_per_wh=1_001), by="host")
    with pytest.raises(InvalidInput, match="session"):
        book.set("CP-BOUNDS", Tariff("EUSD", energy_price_per_wh=1_000, session_fee=500_001), by="host")
    assert book.set("CP-BOUNDS", Tariff("EUSD", energy_price_per_wh=1_000), by="host").energy_price_per_wh == 1_000
    assert book.get("CP-BOUNDS") == Tariff("EUSD", energy_price_per_wh=1_000)


def test_guardian_pauses_and_only_governance_unpauses(w: World) -> None:
    charger = w.charger(HOST_A)
    vid, device = w.vehicle(10 * USD)
    assert reverted(w.hub.pause, sender=STRANGER).error == "PaymentHubUnauthorizedGuardian"
    w.hub.pause(sender=OPERATOR)
    assert w.hub.paused()
    charge = w.charge(device, vid, charger, USD)
    for call in (
        lambda: w.hub.settle_batch(w.usd, [charge]),
        lambda: w.hub.settle(w.usd, charge),
        lambda: w.hub.deposit(vid, w.usd, 1),
        lambda: w.hub.withdraw(vid, w.usd, 1, owner=OWNER),
        lambda: w.hub.sweep_fees(w.usd),
    ):
        assert reverted(call).error == "EnforcedPause"
    assert reverted(w.hub.send_governed, "unpause", sender=OPERATOR).error == "OwnableUnauthorizedAccount"
    as_timelock(w.e, w.hub.contract.functions.unpause())
    assert not w.hub.paused()
    assert w.hub.settle_batch(w.usd, [charge]).settled == [charge.session_id]


def test_a_disallowed_asset_can_still_be_withdrawn(w: World) -> None:
    vid, _ = w.vehicle(10 * USD)
    as_timelock(w.e, w.hub.contract.functions.setAssetAllowed(w.usd, False))
    assert reverted(w.hub.deposit, vid, w.usd, 1).error == "PaymentHubAssetNotAllowed"
    w.hub.withdraw(vid, w.usd, 10 * USD, owner=OWNER)
    assert w.e.stablecoin.balance_of(OWNER.address) == 10 * USD


def test_commission_hook_sets_the_fee_per_charger(w: World) -> None:
    hook_addr, _ = w.e.client.deploy("TestCommissionHook")
    hook = w.e.client.contract("TestCommissionHook", hook_addr)
    as_timelock(w.e, w.hub.contract.functions.setCommissionHook(hook_addr))
    assert w.hub.commission_hook() == hook_addr
    staked, greedy, plain = w.charger(HOST_A), w.charger(HOST_B), w.charger(HOST_C)
    w.e.client.transact(hook.functions.setCommission(staked, 25))  # a high staking tier: 0.25 %
    w.e.client.transact(hook.functions.setCommission(greedy, 5_000))  # capped at MAX_FEE_BPS
    (v1, d1), (v2, d2), (v3, d3) = (w.vehicle(100 * USD) for _ in range(3))
    batch = [w.charge(d1, v1, staked, 40 * USD), w.charge(d2, v2, greedy, 40 * USD), w.charge(d3, v3, plain, 40 * USD)]
    result = w.hub.settle_batch(w.usd, batch)
    assert result.credits == {
        HOST_A.address: 40 * USD - 40 * USD * 25 // 10_000,
        HOST_B.address: 40 * USD - 40 * USD * 1_000 // 10_000,
        HOST_C.address: 40 * USD - 40 * USD * 100 // 10_000,
    }

    w.e.client.transact(hook.functions.setBroken(True))  # a reverting hook: the flat fee applies
    result = w.hub.settle_batch(w.usd, [w.charge(d1, v1, staked, 10 * USD, nonce=2)])
    assert result.fee_amount == 10 * USD // 100
