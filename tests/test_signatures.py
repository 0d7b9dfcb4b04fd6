"""Every device signature the platform takes, attacked five ways, refused twice: by the Python
checks before anything is sent (electra.chain.signatures, AuthorizationBook) and by the contract
itself on anvil. The five: forged (another key), replayed (a nonce already used), expired, made for
another domain (another chain id, another verifying contract) and malleable (the high-s twin of a
valid signature, which eth_account alone would accept)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_keys.constants import SECPK1_N
from eth_utils import keccak

from electra.chain import eip712, signatures
from electra.chain.bindings import Electra
from electra.chain.keys import dev_account
from electra.chain.payments import ChargeAuthorization, Rejection, SessionCharge, SignedAuthorization
from electra.domain.station import StationSpec
from electra.domain.vehicle import vin_hash
from electra.errors import ContractReverted, InvalidInput
from electra.payments.authorizations import AuthorizationBook
from electra.store.db import make_engine, migrate

pytestmark = pytest.mark.security

HOST, OWNER, RELAYER = dev_account(1), dev_account(4), dev_account(5)
OTHER_CONTRACT = "0x" + "42" * 20
_n = itertools.count(1)


def test_the_high_s_twin_is_a_real_signature_of_the_same_key() -> None:
    """What makes malleability dangerous: eth_account recovers the twin to the same signer."""
    key = Account.create()
    typed = eip712.vehicle_onboarding(b"\x01" * 32, key.address, key.address, 0, 10**10, 31337, OTHER_CONTRACT)
    good = eip712.sign(key, typed)
    twin = signatures.high_s_twin(good)
    assert twin != good and int.from_bytes(twin[32:64], "big") > signatures.HALF_N
    msg = encode_typed_data(full_message=typed)
    assert Account.recover_message(msg, signature=twin) == key.address  # the library alone takes it
    assert signatures.recover(typed, good) == key.address
    with pytest.raises(InvalidInput, match="malleable"):
        signatures.recover(typed, twin)
    for bad in (good[:64], good[:64] + b"\x01", b"\0" * 32 + good[32:]):
        with pytest.raises(InvalidInput):
            signatures.recover(typed, bad)
    assert signatures.SECP256K1_N == SECPK1_N  # the curve order eth_keys uses


# -- StationRegistration ---------------------------------------------------------------------------


def station(**over: Any) -> StationSpec:
    base: dict[str, Any] = dict(
        charger_id=f"CP-SIG-{next(_n):04d}",
        latitude_e6=52_520_008,
        longitude_e6=13_404_954,
        max_power_w=22_000,
        connector_types=2,
        ocpp_versions=1,
        operator_id=b"DEELC",
    )
    base.update(over)
    return StationSpec(**base)


def registration_attack(electra: Electra, attack: str) -> tuple[StationSpec, Any, int, bytes]:
    """(spec, device, deadline, signature) of a registration attacked by ``attack``."""
    reg = electra.stations
    device = Account.create()
    s = station()
    now = electra.client.chain_time()
    deadline = now - 1 if attack == "expired" else now + 3600
    typed = reg.registration_message(s, HOST.address, device.address, deadline)
    if attack == "forged":
        return s, device, deadline, eip712.sign(Account.create(), typed)
    if attack == "malleable":
        return s, device, deadline, signatures.high_s_twin(eip712.sign(device, typed))
    if attack in ("other chain", "other contract"):
        chain, where = (1, reg.address) if attack == "other chain" else (electra.client.chain_id, OTHER_CONTRACT)
        m = typed["message"]
        foreign = eip712.station_registration(s, HOST.address, device.address, m["nonce"], deadline, chain, where)
        return s, device, deadline, eip712.sign(device, foreign)
    if attack == "replayed":  # used once; the device's nonce has moved on
        sig = eip712.sign(device, typed)
        reg.register(s, device, owner=HOST, deadline=deadline, signature=sig)
        return s, device, deadline, sig
    return s, device, deadline, eip712.sign(device, typed)


ATTACKS = ["forged", "replayed", "expired", "other chain", "other contract", "malleable"]
STATION_ERRORS = {
    "forged": {"StationRegistryInvalidDeviceSignature"},
    "replayed": {"StationRegistryChargerIdTaken", "StationRegistryInvalidDeviceSignature"},
    "expired": {"StationRegistryExpiredSignature"},
    "other chain": {"StationRegistryInvalidDeviceSignature"},
    "other contract": {"StationRegistryInvalidDeviceSignature"},
    "malleable": {"StationRegistryInvalidDeviceSignature"},
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_station_registration_attacks_are_refused_off_and_on_chain(electra: Electra, attack: str) -> None:
    s, device, deadline, sig = registration_attack(electra, attack)
    before = electra.stations.total()
    with pytest.raises(InvalidInput):
        electra.stations.register(s, device, owner=HOST, deadline=deadline, signature=sig)
    with pytest.raises(ContractReverted) as e:
        electra.stations.register(s, device, owner=HOST, deadline=deadline, signature=sig, check=False)
    assert e.value.error in STATION_ERRORS[attack], e.value.one_line()
    assert electra.stations.total() == before


def test_a_good_station_registration_passes_both(electra: Electra) -> None:
    s, device, deadline, sig = registration_attack(electra, "none")
    token_id, _ = electra.stations.register(s, device, owner=HOST, deadline=deadline, signature=sig)
    assert electra.stations.station(token_id).device == device.address


# -- VehicleOnboarding -----------------------------------------------------------------------------


def onboarding_attack(electra: Electra, attack: str) -> dict[str, Any]:
    ledger = electra.vehicles
    device = Account.create()
    vin = vin_hash(f"WVWZZZE1ZPP{next(_n):06d}")
    now = electra.client.chain_time()
    deadline = now - 1 if attack == "expired" else now + 3600
    typed = ledger.onboarding_message(vin, OWNER.address, device.address, deadline=deadline)
    signer = Account.create() if attack == "forged" else device
    if attack in ("other chain", "other contract"):
        chain, where = (1, ledger.address) if attack == "other chain" else (electra.client.chain_id, OTHER_CONTRACT)
        typed = eip712.vehicle_onboarding(vin, OWNER.address, device.address, 0, deadline, chain, where)
    sig = eip712.sign(signer, typed)
    if attack == "malleable":
        sig = signatures.high_s_twin(sig)
    signed = {"message": typed["message"], "signature": "0x" + sig.hex()}
    if attack == "replayed":
        ledger.relay_onboarding(signed, relayer=RELAYER)
    return signed


VEHICLE_ERRORS = {
    "forged": {"VehicleLedgerInvalidSignature"},
    "replayed": {"VehicleLedgerAlreadyRegistered", "InvalidAccountNonce"},
    "expired": {"VehicleLedgerExpiredSignature"},
    "other chain": {"VehicleLedgerInvalidSignature"},
    "other contract": {"VehicleLedgerInvalidSignature"},
    "malleable": {"VehicleLedgerInvalidSignature"},
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_vehicle_onboarding_attacks_are_refused_off_and_on_chain(electra: Electra, attack: str) -> None:
    signed = onboarding_attack(electra, attack)
    before = electra.vehicles.total()
    with pytest.raises(InvalidInput):
        electra.vehicles.relay_onboarding(signed, relayer=RELAYER)
    with pytest.raises(ContractReverted) as e:
        electra.vehicles.relay_onboarding(signed, relayer=RELAYER, check=False)
    assert e.value.error in VEHICLE_ERRORS[attack], e.value.one_line()
    assert electra.vehicles.total() == before


# -- ChargeAuthorization ---------------------------------------------------------------------------


USD = 10**6


@pytest.fixture
def hub_world(electra: Electra, tmp_path: Path) -> tuple[Electra, AuthorizationBook, int, int, Any]:
    spec = station()
    charger, _ = electra.stations.register(spec, Account.create(), owner=HOST)
    device = Account.create()
    vid, _ = electra.vehicles.register(vin_hash(f"WVWZZZE1ZPP{next(_n):06d}"), device.address, owner=OWNER)
    electra.stablecoin.mint(dev_account(0).address, 50 * USD)
    electra.payments.deposit(vid, electra.stablecoin.address, 50 * USD)
    engine = make_engine(f"sqlite:///{tmp_path}/auth.db")
    migrate(engine)

    def keys_of(vehicle_id: int) -> tuple[str, str]:
        v = electra.vehicles.vehicle(vehicle_id)
        return v.device, v.owner

    # The hub's clock: authorizations expire by chain time, which anvil may run ahead of the wall.
    book = AuthorizationBook(engine, electra.payments, keys_of, clock=lambda: float(electra.client.chain_time()))
    return electra, book, charger, vid, device


def authorization_attack(
    electra: Electra, charger: int, vid: int, device: Any, attack: str
) -> Callable[[], SignedAuthorization]:
    hub = electra.payments
    asset = electra.stablecoin.address
    now = electra.client.chain_time()
    nonce = hub.account(vid, asset)[1] + 1
    a = ChargeAuthorization(vid, charger, asset, 5 * USD, now - 1 if attack == "expired" else now + 3600, nonce)

    def make() -> SignedAuthorization:
        typed = a.typed_data(electra.client.chain_id, hub.address)
        if attack == "other chain":
            typed = a.typed_data(1, hub.address)
        if attack == "other contract":
            typed = a.typed_data(electra.client.chain_id, OTHER_CONTRACT)
        sig = eip712.sign(Account.create() if attack == "forged" else device, typed)
        return SignedAuthorization(a, signatures.high_s_twin(sig) if attack == "malleable" else sig)

    return make


HUB_REJECTIONS = {
    "forged": Rejection.INVALID_SIGNATURE,
    "replayed": Rejection.NONCE_USED,
    "expired": Rejection.EXPIRED,
    "other chain": Rejection.INVALID_SIGNATURE,
    "other contract": Rejection.INVALID_SIGNATURE,
    "malleable": Rejection.INVALID_SIGNATURE,
}


@pytest.mark.parametrize("attack", ATTACKS)
def test_charge_authorization_attacks_are_refused_off_and_on_chain(hub_world: Any, attack: str) -> None:
    electra, book, charger, vid, device = hub_world
    hub, asset = electra.payments, electra.stablecoin.address
    signed = authorization_attack(electra, charger, vid, device, attack)()
    sid = 10_000 + next(_n)
    if attack == "replayed":  # used once, settled: its nonce is spent
        book.submit(signed)
        assert hub.settle_batch(asset, [SessionCharge(sid, signed, USD, keccak(text=f"r{sid}"))]).settled == [sid]
        sid = 10_000 + next(_n)
    balance = hub.balance(vid, asset)
    with pytest.raises(InvalidInput):
        book.submit(signed)
    result = hub.settle_batch(asset, [SessionCharge(sid, signed, USD, keccak(text=f"r{sid}"))])
    assert result.rejected == {sid: HUB_REJECTIONS[attack]}
    assert not hub.is_settled(sid) and hub.balance(vid, asset) == balance
    if attack == "malleable":  # the low-s original of the same authorization is good on both sides
        good = SignedAuthorization(signed.authorization, signatures.high_s_twin(signed.signature))
        assert good.signature != signed.signature
        assert book.submit(good).signer == device.address
        assert hub.settle_batch(asset, [SessionCharge(sid, good, USD, keccak(text=f"r{sid}"))]).settled == [sid]
