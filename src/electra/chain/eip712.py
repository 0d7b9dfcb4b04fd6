"""EIP-712 messages that devices sign. The layouts match the contracts and docs/formats.md."""

from __future__ import annotations

from typing import Any

from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from electra.domain.station import StationSpec

_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]

STATION_REGISTRATION_TYPE = [
    {"name": "owner", "type": "address"},
    {"name": "chargerId", "type": "string"},
    {"name": "latitudeE6", "type": "int32"},
    {"name": "longitudeE6", "type": "int32"},
    {"name": "maxPowerW", "type": "uint32"},
    {"name": "connectorTypes", "type": "uint16"},
    {"name": "ocppVersions", "type": "uint8"},
    {"name": "ocpiCompliant", "type": "bool"},
    {"name": "operatorId", "type": "bytes5"},
    {"name": "device", "type": "address"},
    {"name": "metadataHash", "type": "bytes32"},
    {"name": "metadataURI", "type": "string"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]

VEHICLE_ONBOARDING_TYPE = [
    {"name": "vinHash", "type": "bytes32"},
    {"name": "owner", "type": "address"},
    {"name": "device", "type": "address"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]

CHARGE_AUTHORIZATION_TYPE = [
    {"name": "vehicleId", "type": "uint256"},
    {"name": "chargerId", "type": "uint256"},
    {"name": "asset", "type": "address"},
    {"name": "maxAmount", "type": "uint256"},
    {"name": "expiry", "type": "uint64"},
    {"name": "nonce", "type": "uint64"},
]


def domain(name: str, chain_id: int, verifying_contract: str) -> dict[str, Any]:
    return {
        "name": name,
        "version": "1",
        "chainId": chain_id,
        "verifyingContract": verifying_contract,
    }


def station_registration(
    spec: StationSpec,
    owner: str,
    device: str,
    nonce: int,
    deadline: int,
    chain_id: int,
    registry: str,
) -> dict[str, Any]:
    return {
        "types": {"EIP712Domain": _DOMAIN_TYPE, "StationRegistration": STATION_REGISTRATION_TYPE},
        "primaryType": "StationRegistration",
        "domain": domain("StationRegistry", chain_id, registry),
        "message": {
            "owner": owner,
            "chargerId": spec.charger_id,
            "latitudeE6": spec.latitude_e6,
            "longitudeE6": spec.longitude_e6,
            "maxPowerW": spec.max_power_w,
            "connectorTypes": spec.connector_types,
            "ocppVersions": spec.ocpp_versions,
            "ocpiCompliant": spec.ocpi_compliant,
            "operatorId": spec.operator_id,
            "device": device,
            "metadataHash": spec.metadata_hash,
            "metadataURI": spec.metadata_uri,
            "nonce": nonce,
            "deadline": deadline,
        },
    }


def vehicle_onboarding(
    vin_hash: bytes, owner: str, device: str, nonce: int, deadline: int, chain_id: int, ledger: str
) -> dict[str, Any]:
    return {
        "types": {"EIP712Domain": _DOMAIN_TYPE, "VehicleOnboarding": VEHICLE_ONBOARDING_TYPE},
        "primaryType": "VehicleOnboarding",
        "domain": domain("VehicleLedger", chain_id, ledger),
        "message": {
            "vinHash": vin_hash,
            "owner": owner,
            "device": device,
            "nonce": nonce,
            "deadline": deadline,
        },
    }


def charge_authorization(
    vehicle_id: int,
    charger_id: int,
    asset: str,
    max_amount: int,
    expiry: int,
    nonce: int,
    chain_id: int,
    hub: str,
) -> dict[str, Any]:
    """What a vehicle's device key (or its owner) signs to let one session at one charger cost at most
    ``max_amount`` base units of ``asset`` (PaymentHub, docs/payments.md)."""
    return {
        "types": {"EIP712Domain": _DOMAIN_TYPE, "ChargeAuthorization": CHARGE_AUTHORIZATION_TYPE},
        "primaryType": "ChargeAuthorization",
        "domain": domain("PaymentHub", chain_id, hub),
        "message": {
            "vehicleId": vehicle_id,
            "chargerId": charger_id,
            "asset": asset,
            "maxAmount": max_amount,
            "expiry": expiry,
            "nonce": nonce,
        },
    }


PERMIT_TYPE = [
    {"name": "owner", "type": "address"},
    {"name": "spender", "type": "address"},
    {"name": "value", "type": "uint256"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]


def permit(
    token_name: str, owner: str, spender: str, value: int, nonce: int, deadline: int, chain_id: int, token: str
) -> dict[str, Any]:
    """EIP-2612 Permit of an OpenZeppelin ERC20Permit token (its domain version is "1")."""
    return {
        "types": {"EIP712Domain": _DOMAIN_TYPE, "Permit": PERMIT_TYPE},
        "primaryType": "Permit",
        "domain": domain(token_name, chain_id, token),
        "message": {"owner": owner, "spender": spender, "value": value, "nonce": nonce, "deadline": deadline},
    }


def sign_vrs(account: LocalAccount, typed: dict[str, Any]) -> tuple[int, bytes, bytes]:
    """The signature as (v, r, s), for functions that take it split (EIP-2612 permit)."""
    signed = account.sign_message(encode_typed_data(full_message=typed))
    return int(signed.v), int(signed.r).to_bytes(32, "big"), int(signed.s).to_bytes(32, "big")


def sign(account: LocalAccount, typed: dict[str, Any]) -> bytes:
    return bytes(account.sign_message(encode_typed_data(full_message=typed)).signature)


def digest(typed: dict[str, Any]) -> bytes:
    """The 32-byte EIP-712 digest (what the contract stores as a registration hash)."""
    msg = encode_typed_data(full_message=typed)
    return keccak(b"\x19" + msg.version + msg.header + msg.body)
