"""VehicleLedger on a real anvil: owner registration and gasless self-onboarding by device key."""

from __future__ import annotations

import time

import pytest
from eth_account import Account

from electra.chain.bindings import Electra
from electra.chain.keys import dev_account
from electra.domain.vehicle import vin_hash
from electra.errors import ContractReverted

OWNER = dev_account(3)
RELAYER = dev_account(4)
VIN = "WVWZZZE1ZPP000001"


def test_owner_registers_directly(electra: Electra) -> None:
    device = Account.create()
    vid, _ = electra.vehicles.register(vin_hash(VIN), device.address, owner=OWNER)
    v = electra.vehicles.vehicle(vid)
    assert (v.vehicle_id, v.owner, v.device, v.active) == (1, OWNER.address, device.address, True)
    assert v.vin_hash == "0x" + vin_hash(VIN).hex()
    assert electra.vehicles.vehicle_id_of_vin(vin_hash(VIN)) == vid


def test_self_onboarding_is_gasless_for_the_vehicle(electra: Electra) -> None:
    device = Account.create()  # holds no ETH at all
    assert electra.client.w3.eth.get_balance(device.address) == 0
    signed = electra.vehicles.sign_onboarding(device, vin_hash(VIN), OWNER.address)
    vid, _ = electra.vehicles.relay_onboarding(signed, relayer=RELAYER)
    v = electra.vehicles.vehicle(vid)
    assert (v.owner, v.device) == (OWNER.address, device.address)
    assert electra.client.w3.eth.get_balance(device.address) == 0
    nonce = electra.client.call(electra.vehicles.contract.functions.nonces(device.address))
    assert nonce == 1


def test_owned_by_finds_an_owners_vehicles_registered_directly_or_relayed(electra: Electra) -> None:
    other = dev_account(5)
    direct, _ = electra.vehicles.register(vin_hash(VIN), Account.create().address, owner=OWNER)
    electra.vehicles.register(vin_hash("WVWZZZE1ZPP000002"), Account.create().address, owner=other)
    signed = electra.vehicles.sign_onboarding(Account.create(), vin_hash("WVWZZZE1ZPP000003"), OWNER.address)
    relayed, _ = electra.vehicles.relay_onboarding(signed, relayer=RELAYER)
    assert electra.vehicles.owned_by(OWNER.address) == [direct, relayed]
    assert len(electra.vehicles.owned_by(other.address)) == 1
    assert electra.vehicles.owned_by(RELAYER.address) == []  # the relayer pays, the owner owns


def test_forged_onboarding_is_refused(electra: Electra) -> None:
    device, forger = Account.create(), Account.create()
    signed = electra.vehicles.sign_onboarding(forger, vin_hash(VIN), OWNER.address)
    signed["message"] = {**signed["message"], "device": device.address}
    with pytest.raises(ContractReverted) as e:
        electra.vehicles.relay_onboarding(signed, relayer=RELAYER, check=False)
    assert e.value.error == "VehicleLedgerInvalidSignature"
    assert e.value.error_args == {"device": device.address}


def test_tampered_owner_is_refused(electra: Electra) -> None:
    device = Account.create()
    signed = electra.vehicles.sign_onboarding(device, vin_hash(VIN), OWNER.address)
    signed["message"] = {**signed["message"], "owner": RELAYER.address}
    with pytest.raises(ContractReverted) as e:
        electra.vehicles.relay_onboarding(signed, relayer=RELAYER, check=False)
    assert e.value.error == "VehicleLedgerInvalidSignature"


def test_replayed_onboarding_is_refused(electra: Electra) -> None:
    device = Account.create()
    signed = electra.vehicles.sign_onboarding(device, vin_hash(VIN), OWNER.address)
    electra.vehicles.relay_onboarding(signed, relayer=RELAYER)
    with pytest.raises(ContractReverted) as e:
        electra.vehicles.relay_onboarding(signed, relayer=RELAYER, check=False)
    # The VIN check comes first; a replay for a fresh VIN hits the nonce instead (next test).
    assert e.value.error in {"VehicleLedgerAlreadyRegistered", "InvalidAccountNonce"}
    assert electra.vehicles.total() == 1


def test_replayed_nonce_is_refused_even_for_another_vin(electra: Electra) -> None:
    device = Account.create()
    first = electra.vehicles.sign_onboarding(device, vin_hash(VIN), OWNER.address)
    second = electra.vehicles.sign_onboarding(device, vin_hash("WVWZZZE1ZPP000002"), OWNER.address, nonce=0)
    electra.vehicles.relay_onboarding(first, relayer=RELAYER)
    with pytest.raises(ContractReverted) as e:
        electra.vehicles.relay_onboarding(second, relayer=RELAYER, check=False)
    assert e.value.error == "InvalidAccountNonce"
    assert e.value.error_args == {"account": device.address, "currentNonce": 1}


def test_expired_onboarding_is_refused(electra: Electra) -> None:
    device = Account.create()
    chain_now = int(electra.client.w3.eth.get_block("latest")["timestamp"])
    signed = electra.vehicles.sign_onboarding(device, vin_hash(VIN), OWNER.address, deadline=chain_now - 1)
    with pytest.raises(ContractReverted) as e:
        electra.vehicles.relay_onboarding(signed, relayer=RELAYER, check=False)
    assert e.value.error == "VehicleLedgerExpiredSignature"


def test_signature_from_another_chain_is_refused(electra: Electra) -> None:
    """The EIP-712 domain binds the chain id: a signature made for chain 1 does not verify here."""
    from electra.chain import eip712

    device = Account.create()
    typed = eip712.vehicle_onboarding(
        vin_hash(VIN),
        OWNER.address,
        device.address,
        0,
        int(time.time()) + 600,
        1,
        electra.vehicles.address,
    )
    signed = {"message": typed["message"], "signature": "0x" + eip712.sign(device, typed).hex()}
    with pytest.raises(ContractReverted) as e:
        electra.vehicles.relay_onboarding(signed, relayer=RELAYER, check=False)
    assert e.value.error == "VehicleLedgerInvalidSignature"


def test_duplicates_and_owner_only_changes(electra: Electra) -> None:
    device = Account.create()
    vid, _ = electra.vehicles.register(vin_hash(VIN), device.address, owner=OWNER)
    with pytest.raises(ContractReverted) as e:
        electra.vehicles.register(vin_hash(VIN), Account.create().address, owner=RELAYER)
    assert e.value.error == "VehicleLedgerAlreadyRegistered"
    with pytest.raises(ContractReverted) as e:
        electra.vehicles.register(vin_hash("WVWZZZE1ZPP000002"), device.address, owner=RELAYER)
    assert e.value.error == "VehicleLedgerDeviceInUse"
    fn = electra.vehicles.contract.functions.deactivate(vid)
    with pytest.raises(ContractReverted) as e:
        electra.client.transact(fn, sender=RELAYER)
    assert e.value.error == "VehicleLedgerNotVehicleOwner"
    electra.client.transact(fn, sender=OWNER)
    assert not electra.vehicles.vehicle(vid).active
    with pytest.raises(ContractReverted) as e:
        electra.vehicles.vehicle(42)
    assert e.value.error == "VehicleLedgerUnknownVehicle"
