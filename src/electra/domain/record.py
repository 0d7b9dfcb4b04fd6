"""A finished session as a record anyone can hash and check: the leaf of the session log.

The leaf follows OpenZeppelin's StandardMerkleTree: ``keccak256(keccak256(abi.encode(values)))``
over the values below, in this order, with these Solidity types, so ``@openzeppelin/merkle-tree``
and ``MerkleProof.sol`` verify it (docs/formats.md). The same hash is the ``recordHash`` a session
carries when it settles on PaymentHub, which ties the payment to the record.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass

from eth_abi.abi import encode
from eth_utils.crypto import keccak

LEAF_TYPES = (
    "uint256",  # sessionId: the platform's session number (PaymentHub's settled-once key)
    "uint256",  # chargerTokenId: the charger's StationRegistry NFT
    "uint256",  # vehicleId: VehicleLedger id, 0 for a driver's token
    "uint64",  # startedAtMs
    "uint64",  # stoppedAtMs
    "uint64",  # meterStartWh
    "uint64",  # meterStopWh
    "uint64",  # energyWh: billed energy
    "address",  # asset
    "uint256",  # amount: what the session costs, in the asset's base units
)


@dataclass(frozen=True)
class SessionRecord:
    session_id: int
    charger_token_id: int
    vehicle_id: int
    started_at_ms: int
    stopped_at_ms: int
    meter_start_wh: int
    meter_stop_wh: int
    energy_wh: int
    asset: str
    amount: int

    def values(self) -> list[int | str]:
        return list(astuple(self))

    def leaf(self) -> bytes:
        return bytes(keccak(keccak(encode(list(LEAF_TYPES), self.values()))))
