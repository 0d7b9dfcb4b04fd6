"""StationRegistry on a real anvil: registration, metadata, tokenURI, and every refusal."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
from eth_account import Account

from electra.chain import eip712
from electra.chain.bindings import Electra
from electra.chain.keys import dev_account
from electra.domain.station import StationSpec
from electra.errors import ContractReverted

HOST = dev_account(1)
STRANGER = dev_account(2)


def spec(**over: Any) -> StationSpec:
    base = dict(
        charger_id="CP-BER-0001",
        latitude_e6=52_520_008,
        longitude_e6=-13_404_954,
        max_power_w=150_000,
        connector_types=0b1010,
        ocpp_versions=3,
        operator_id=b"DEELC",
        metadata_uri="ipfs://bafy/cp1.json",
        metadata={"site": "Alexanderplatz", "parking": "free"},
    )
    base.update(over)
    return StationSpec(**base)  # type: ignore[arg-type]


def unchecked(s: StationSpec, **over: Any) -> StationSpec:
    """A spec with fields the Python checks would refuse, to reach the contract's own checks."""
    bad = object.__new__(StationSpec)
    for f in dataclasses.fields(StationSpec):
        object.__setattr__(bad, f.name, over.get(f.name, getattr(s, f.name)))
    return bad


def reverted_with(exc: pytest.ExceptionInfo[ContractReverted], name: str) -> dict[str, Any]:
    assert exc.value.error == name, exc.value.one_line()
    return exc.value.error_args


def test_register_stores_metadata_and_mints_to_owner(electra: Electra) -> None:
    device = Account.create()
    s = spec()
    token_id, tx = electra.stations.register(s, device, owner=HOST)
    assert token_id == 1
    assert tx.gas_used > 0
    r = electra.stations.station(token_id)
    assert r.owner == HOST.address
    assert (r.charger_id, r.latitude_e6, r.longitude_e6, r.max_power_w) == (
        "CP-BER-0001",
        52_520_008,
        -13_404_954,
        150_000,
    )
    assert (r.connector_types, r.ocpp_versions, r.operator_id, r.ocpi_compliant) == (
        0b1010,
        3,
        "DE*ELC",
        True,
    )
    assert r.device == device.address
    assert r.metadata_hash == "0x" + s.metadata_hash.hex()
    assert r.metadata_uri == "ipfs://bafy/cp1.json"
    assert r.active
    assert electra.stations.token_id_of("CP-BER-0001") == 1
    assert electra.stations.total() == 1


def test_registration_hash_is_the_eip712_digest_the_device_signed(electra: Electra) -> None:
    device = Account.create()
    s = spec()
    deadline = int(time.time()) + 600
    typed = electra.stations.registration_message(s, HOST.address, device.address, deadline)
    token_id, _ = electra.stations.register(s, device, owner=HOST, deadline=deadline)
    assert electra.stations.station(token_id).registration_hash == "0x" + eip712.digest(typed).hex()


def test_token_uri_is_json_metadata(electra: Electra) -> None:
    token_id, _ = electra.stations.register(spec(), Account.create(), owner=HOST)
    meta = electra.stations.token_metadata(token_id)
    assert meta["name"] == "Electra charger CP-BER-0001"
    assert meta["external_url"] == "ipfs://bafy/cp1.json"
    attrs = {a["trait_type"]: a["value"] for a in meta["attributes"]}
    assert attrs["latitude"] == "52.520008"
    assert attrs["longitude"] == "-13.404954"
    assert attrs["max_power_w"] == 150_000
    assert attrs["operator_id"] == "DE*ELC"
    assert attrs["active"] is True
    assert attrs["metadata_hash"] == "0x" + spec().metadata_hash.hex()


def test_charger_id_registers_once(electra: Electra) -> None:
    electra.stations.register(spec(), Account.create(), owner=HOST)
    with pytest.raises(ContractReverted) as e:
        electra.stations.register(spec(), Account.create(), owner=STRANGER)
    args = reverted_with(e, "StationRegistryChargerIdTaken")
    assert args == {"chargerId": "CP-BER-0001", "tokenId": 1}


@pytest.mark.parametrize(
    ("over", "error"),
    [
        ({"latitude_e6": 90_000_001}, "StationRegistryInvalidCoordinates"),
        ({"longitude_e6": -180_000_001}, "StationRegistryInvalidCoordinates"),
        ({"charger_id": ""}, "StationRegistryInvalidChargerId"),
        ({"charger_id": "bad/id"}, "StationRegistryInvalidChargerId"),
        ({"charger_id": "x" * 49}, "StationRegistryInvalidChargerId"),
        ({"max_power_w": 0}, "StationRegistryInvalidMaxPower"),
        ({"connector_types": 0}, "StationRegistryInvalidConnectorTypes"),
        ({"connector_types": 1 << 12}, "StationRegistryInvalidConnectorTypes"),
        ({"ocpp_versions": 4}, "StationRegistryInvalidOcppVersions"),
        ({"operator_id": b"de*el"}, "StationRegistryInvalidOperatorId"),
        ({"metadata_uri": "u" * 257}, "StationRegistryMetadataURITooLong"),
    ],
)
def test_invalid_registrations_revert_with_custom_errors(electra: Electra, over: dict[str, Any], error: str) -> None:
    with pytest.raises(ContractReverted) as e:
        electra.stations.register(unchecked(spec(), **over), Account.create(), owner=HOST)
    reverted_with(e, error)
    assert electra.stations.total() == 0


def test_forged_device_signature_is_refused(electra: Electra) -> None:
    device, forger = Account.create(), Account.create()
    s = spec()
    typed = electra.stations.registration_message(s, HOST.address, device.address)
    forged = eip712.sign(forger, typed)
    with pytest.raises(ContractReverted) as e:
        electra.stations.register(
            s, device, owner=HOST, deadline=typed["message"]["deadline"], signature=forged, check=False
        )
    assert reverted_with(e, "StationRegistryInvalidDeviceSignature") == {"device": device.address}


def test_signature_for_another_owner_is_refused(electra: Electra) -> None:
    """A device signature names its owner: someone else cannot take the charger with it."""
    device = Account.create()
    s = spec()
    typed = electra.stations.registration_message(s, HOST.address, device.address)
    sig = eip712.sign(device, typed)
    with pytest.raises(ContractReverted) as e:
        electra.stations.register(
            s, device, owner=STRANGER, deadline=typed["message"]["deadline"], signature=sig, check=False
        )
    reverted_with(e, "StationRegistryInvalidDeviceSignature")


def test_expired_device_signature_is_refused(electra: Electra) -> None:
    with pytest.raises(ContractReverted) as e:
        electra.stations.register(spec(), Account.create(), owner=HOST, deadline=int(time.time()) - 3600)
    reverted_with(e, "StationRegistryExpiredSignature")


def test_owner_controls_service_state_and_others_cannot(electra: Electra) -> None:
    token_id, _ = electra.stations.register(spec(), Account.create(), owner=HOST)
    with pytest.raises(ContractReverted) as e:
        electra.stations.deactivate(token_id, owner=STRANGER)
    assert reverted_with(e, "StationRegistryNotStationOwner") == {
        "tokenId": token_id,
        "account": STRANGER.address,
    }
    electra.stations.deactivate(token_id, owner=HOST)
    assert not electra.stations.station(token_id).active
    assert electra.stations.token_metadata(token_id)["attributes"][-2] == {
        "trait_type": "active",
        "value": False,
    }
    electra.stations.activate(token_id, owner=HOST)
    assert electra.stations.station(token_id).active


def test_metadata_update_by_owner_only(electra: Electra) -> None:
    token_id, _ = electra.stations.register(spec(), Account.create(), owner=HOST)
    new_hash = b"\x11" * 32
    with pytest.raises(ContractReverted) as e:
        electra.stations.update_metadata(token_id, new_hash, "ipfs://new", owner=STRANGER)
    reverted_with(e, "StationRegistryNotStationOwner")
    with pytest.raises(ContractReverted) as e:
        electra.stations.update_metadata(token_id, new_hash, "u" * 300, owner=HOST)
    reverted_with(e, "StationRegistryMetadataURITooLong")
    electra.stations.update_metadata(token_id, new_hash, "ipfs://new", owner=HOST)
    r = electra.stations.station(token_id)
    assert (r.metadata_hash, r.metadata_uri) == ("0x" + "11" * 32, "ipfs://new")


def test_revenue_rights_follow_the_nft(electra: Electra) -> None:
    token_id, _ = electra.stations.register(spec(), Account.create(), owner=HOST)
    c = electra.stations.contract
    electra.client.transact(c.functions.transferFrom(HOST.address, STRANGER.address, token_id), sender=HOST)
    assert electra.stations.station(token_id).owner == STRANGER.address
    with pytest.raises(ContractReverted) as e:
        electra.stations.deactivate(token_id, owner=HOST)
    reverted_with(e, "StationRegistryNotStationOwner")


def test_held_by_lists_what_an_owner_holds_now_after_transfers_both_ways(electra: Electra) -> None:
    first, _ = electra.stations.register(spec(), Account.create(), owner=HOST)
    second, _ = electra.stations.register(spec(charger_id="CP-BER-0002"), Account.create(), owner=HOST)
    third, _ = electra.stations.register(spec(charger_id="CP-BER-0003"), Account.create(), owner=STRANGER)
    c = electra.stations.contract
    electra.client.transact(c.functions.transferFrom(HOST.address, STRANGER.address, first), sender=HOST)
    assert [r.charger_id for r in electra.stations.held_by(HOST.address)] == ["CP-BER-0002"]
    assert [r.token_id for r in electra.stations.held_by(STRANGER.address)] == [first, third]
    electra.client.transact(c.functions.transferFrom(STRANGER.address, HOST.address, first), sender=STRANGER)
    assert [r.token_id for r in electra.stations.held_by(HOST.address)] == [first, second]
    assert [r.token_id for r in electra.stations.held_by(STRANGER.address)] == [third]
    electra.client.transact(c.functions.transferFrom(HOST.address, HOST.address, second), sender=HOST)
    assert electra.stations.token_ids_held_by(HOST.address) == [first, second]  # to itself: still held
    assert electra.stations.held_by(Account.create().address) == []


def test_governance_only_functions_refuse_everyone_else(electra: Electra) -> None:
    token_id, _ = electra.stations.register(spec(), Account.create(), owner=HOST)
    cases = [
        (
            electra.stations.contract.functions.setSuspended(token_id, True),
            "OwnableUnauthorizedAccount",
        ),
        (electra.vehicles.contract.functions.setSuspended(1, True), "OwnableUnauthorizedAccount"),
        (electra.token.contract.functions.setRewardMintCap(1), "OwnableUnauthorizedAccount"),
        (
            electra.token.contract.functions.setMinter(HOST.address, True),
            "OwnableUnauthorizedAccount",
        ),
        (electra.token.contract.functions.mint(HOST.address, 1), "ElectraTokenUnauthorizedMinter"),
    ]
    # The deployer (dev account 0) is refused too: it renounced every power at deployment.
    for sender in (HOST, dev_account(0)):
        for fn, error in cases:
            with pytest.raises(ContractReverted) as e:
                electra.client.transact(fn, sender=sender)
            reverted_with(e, error)


def test_unknown_token_reverts(electra: Electra) -> None:
    with pytest.raises(ContractReverted) as e:
        electra.stations.station(99)
    assert reverted_with(e, "ERC721NonexistentToken") == {"tokenId": 99}
