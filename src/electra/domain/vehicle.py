"""Vehicle identity: VIN normalisation and the VIN hash the ledger is keyed by."""

from __future__ import annotations

import re

from eth_utils.crypto import keccak

from electra.errors import InvalidInput

# ISO 3779: 17 characters, digits and capital letters except I, O and Q.
_VIN = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$")
VIN_HASH_PREFIX = b"electra.vin.v1:"


def normalize_vin(vin: str) -> str:
    v = vin.strip().upper()
    if not v:
        raise InvalidInput("empty VIN", "give the vehicle's 17-character VIN, e.g. --vin WVWZZZE1ZPP000001")
    if not _VIN.match(v):
        raise InvalidInput(
            f"invalid VIN {vin!r}",
            "a VIN has 17 characters: digits and capital letters except I, O and Q",
        )
    return v


def vin_hash(vin: str) -> bytes:
    """keccak256("electra.vin.v1:" || VIN), the key of a vehicle in VehicleLedger.

    The VIN itself never goes on-chain. A VIN has little entropy, so the hash hides it only from a
    casual reader, not from someone who guesses VINs; docs/contracts.md says so.
    """
    return keccak(VIN_HASH_PREFIX + normalize_vin(vin).encode("ascii"))
