"""Typed bindings: Python methods and dataclasses over the contracts' ABIs.

Each binding takes a :class:`ChainClient` and an address. Writes return the receipt's facts the
caller needs (ids, gas); reads return dataclasses with integer units in their names.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from electra.chain import eip712, signatures
from electra.chain.client import ChainClient
from electra.chain.deploy import Deployment
from electra.domain.station import StationSpec, operator_id_text
from electra.errors import DeploymentMissing, InvalidInput

if TYPE_CHECKING:
    from electra.chain.anchors import SessionAnchorBinding
    from electra.chain.payments import PaymentHubBinding, StablecoinBinding
    from electra.chain.rewards import RewardsBinding
    from electra.chain.staking import StakingBinding

SIGNATURE_LIFETIME_S = 3600


@dataclass(frozen=True)
class TxResult:
    tx_hash: str
    block_number: int
    gas_used: int

    @classmethod
    def of(cls, receipt: TxReceipt) -> TxResult:
        return cls(
            "0x" + bytes(receipt["transactionHash"]).hex(),
            int(receipt["blockNumber"]),
            int(receipt["gasUsed"]),
        )


@dataclass(frozen=True)
class StationRecord:
    token_id: int
    owner: str
    charger_id: str
    latitude_e6: int
    longitude_e6: int
    max_power_w: int
    connector_types: int
    ocpp_versions: int
    ocpi_compliant: bool
    operator_id: str
    device: str
    metadata_hash: str
    registration_hash: str
    metadata_uri: str
    registered_at: int
    deactivated: bool
    suspended: bool

    @property
    def active(self) -> bool:
        return not self.deactivated and not self.suspended


@dataclass(frozen=True)
class VehicleRecord:
    vehicle_id: int
    vin_hash: str
    owner: str
    device: str
    registered_at: int
    deactivated: bool
    suspended: bool

    @property
    def active(self) -> bool:
        return not self.deactivated and not self.suspended


def station_input(spec: StationSpec, device: str) -> tuple[Any, ...]:
    """StationRegistry.StationInput for ``register``, fields in the contract's order."""
    return (
        spec.charger_id,
        spec.latitude_e6,
        spec.longitude_e6,
        spec.max_power_w,
        spec.connector_types,
        spec.ocpp_versions,
        spec.ocpi_compliant,
        spec.operator_id,
        device,
        spec.metadata_hash,
        spec.metadata_uri,
    )


def _hex(b: bytes) -> str:
    return "0x" + bytes(b).hex()


def _event_args(contract: Contract, event: str, receipt: TxReceipt) -> dict[str, Any]:
    # Other contracts' logs in the same receipt (e.g. ERC-721 Transfer) are not this event's.
    logs = getattr(contract.events, event)().process_receipt(receipt, errors=DISCARD)
    if not logs:
        raise InvalidInput(f"transaction emitted no {event}")
    return dict(logs[0]["args"])


class StationRegistryBinding:
    def __init__(self, client: ChainClient, address: str) -> None:
        self.client = client
        self.contract = client.contract("StationRegistry", address)
        self.address = self.contract.address

    def registration_message(
        self, spec: StationSpec, owner: str, device: str, deadline: int | None = None
    ) -> dict[str, Any]:
        nonce = int(self.client.call(self.contract.functions.nonces(device)))
        deadline = deadline if deadline is not None else int(time.time()) + SIGNATURE_LIFETIME_S
        return eip712.station_registration(spec, owner, device, nonce, deadline, self.client.chain_id, self.address)

    def register(
        self,
        spec: StationSpec,
        device: LocalAccount,
        owner: LocalAccount | None = None,
        deadline: int | None = None,
        signature: bytes | None = None,
        check: bool = True,
    ) -> tuple[int, TxResult]:
        """Registers a charger; the device key signs the payload (or ``signature`` is the device's,
        made elsewhere: with ``check`` it is verified here first, as StationRegistry will). Returns
        (token id, tx)."""
        owner = owner or self.client.account
        typed = self.registration_message(spec, owner.address, device.address, deadline)
        sig = signature if signature is not None else eip712.sign(device, typed)
        msg = typed["message"]
        if signature is not None and check:
            signatures.check_signed_by(typed, sig, [device.address], f"the registration of {spec.charger_id}")
            signatures.check_fresh(
                msg["deadline"], msg["nonce"], self.client.chain_time(), msg["nonce"], "the registration"
            )
        receipt = self.client.transact(
            self.contract.functions.register(station_input(spec, device.address), msg["deadline"], sig), sender=owner
        )
        args = _event_args(self.contract, "StationRegistered", receipt)
        return int(args["tokenId"]), TxResult.of(receipt)

    def station(self, token_id: int) -> StationRecord:
        s = self.client.call(self.contract.functions.station(token_id))
        owner = self.client.call(self.contract.functions.ownerOf(token_id))
        return StationRecord(
            token_id=token_id,
            owner=str(owner),
            charger_id=s[13],
            latitude_e6=int(s[0]),
            longitude_e6=int(s[1]),
            max_power_w=int(s[2]),
            connector_types=int(s[3]),
            ocpp_versions=int(s[4]),
            ocpi_compliant=bool(s[5]),
            operator_id=operator_id_text(bytes(s[9])),
            device=str(s[10]),
            metadata_hash=_hex(s[11]),
            registration_hash=_hex(s[12]),
            metadata_uri=s[14],
            registered_at=int(s[8]),
            deactivated=bool(s[6]),
            suspended=bool(s[7]),
        )

    def token_id_of(self, charger_id: str) -> int:
        return int(self.client.call(self.contract.functions.tokenIdOf(charger_id)))

    def token_ids_held_by(self, owner: str, from_block: int = 0) -> list[int]:
        """The token ids ``owner`` holds now, in order, from the NFT's Transfer logs alone: the
        transfers to it and from it (indexed topics, so the node filters), replayed in chain order.
        No per-token read, so it costs the same for a host with one wallbox and one with 5,000."""
        transfer = self.contract.events.Transfer()
        logs = {
            (int(lg["blockNumber"]), int(lg["logIndex"])): lg["args"]
            for side in ("to", "from")
            for lg in transfer.get_logs(from_block=from_block, argument_filters={side: owner})
        }
        held: set[int] = set()
        for key in sorted(logs):
            args = logs[key]
            if str(args["to"]).lower() == owner.lower():
                held.add(int(args["tokenId"]))  # also a transfer to itself: still held
            else:
                held.discard(int(args["tokenId"]))
        return sorted(held)

    def held_by(self, owner: str, from_block: int = 0) -> list[StationRecord]:
        """The chargers ``owner`` holds now, by token id; reads only those tokens."""
        return [self.station(t) for t in self.token_ids_held_by(owner, from_block)]

    def total(self) -> int:
        return int(self.client.call(self.contract.functions.totalStations()))

    def token_uri(self, token_id: int) -> str:
        return str(self.client.call(self.contract.functions.tokenURI(token_id)))

    def token_metadata(self, token_id: int) -> dict[str, Any]:
        """tokenURI decoded from its data: URI into the JSON document."""
        uri = self.token_uri(token_id)
        prefix = "data:application/json;base64,"
        if not uri.startswith(prefix):
            raise InvalidInput(f"tokenURI of {token_id} is not an inline JSON document")
        return dict(json.loads(base64.b64decode(uri[len(prefix) :])))

    def deactivate(self, token_id: int, owner: LocalAccount | None = None) -> TxResult:
        return TxResult.of(self.client.transact(self.contract.functions.deactivate(token_id), sender=owner))

    def activate(self, token_id: int, owner: LocalAccount | None = None) -> TxResult:
        return TxResult.of(self.client.transact(self.contract.functions.activate(token_id), sender=owner))

    def update_metadata(
        self, token_id: int, metadata_hash: bytes, uri: str, owner: LocalAccount | None = None
    ) -> TxResult:
        fn = self.contract.functions.updateMetadata(token_id, metadata_hash, uri)
        return TxResult.of(self.client.transact(fn, sender=owner))


class VehicleLedgerBinding:
    def __init__(self, client: ChainClient, address: str) -> None:
        self.client = client
        self.contract = client.contract("VehicleLedger", address)
        self.address = self.contract.address

    def register(self, vin_hash: bytes, device: str, owner: LocalAccount | None = None) -> tuple[int, TxResult]:
        receipt = self.client.transact(self.contract.functions.register(vin_hash, device), sender=owner)
        return int(_event_args(self.contract, "VehicleRegistered", receipt)["vehicleId"]), TxResult.of(receipt)

    def onboarding_message(
        self,
        vin_hash: bytes,
        owner: str,
        device: str,
        deadline: int | None = None,
        nonce: int | None = None,
    ) -> dict[str, Any]:
        if nonce is None:
            nonce = int(self.client.call(self.contract.functions.nonces(device)))
        deadline = deadline if deadline is not None else int(time.time()) + SIGNATURE_LIFETIME_S
        return eip712.vehicle_onboarding(vin_hash, owner, device, nonce, deadline, self.client.chain_id, self.address)

    def sign_onboarding(self, device: LocalAccount, vin_hash: bytes, owner: str, **kw: Any) -> dict[str, Any]:
        """What a vehicle hands to a relayer: the message and the device's signature."""
        typed = self.onboarding_message(vin_hash, owner, device.address, **kw)
        return {"message": typed["message"], "signature": _hex(eip712.sign(device, typed))}

    def check_onboarding(self, signed: dict[str, Any]) -> None:
        """What VehicleLedger will check, checked before gas is spent on it: the device's signature
        over this chain's and this ledger's domain (low-s), the deadline and the device's nonce. A
        contract device (ERC-1271) is left to the chain."""
        m = signed["message"]
        vin = m["vinHash"] if isinstance(m["vinHash"], bytes) else bytes(HexBytes(m["vinHash"]))
        typed = eip712.vehicle_onboarding(
            vin, m["owner"], m["device"], int(m["nonce"]), int(m["deadline"]), self.client.chain_id, self.address
        )
        if not self.client.w3.eth.get_code(m["device"]):
            signatures.check_signed_by(typed, bytes(HexBytes(signed["signature"])), [m["device"]], "the onboarding")
        expected = int(self.client.call(self.contract.functions.nonces(m["device"])))
        now = self.client.chain_time()
        signatures.check_fresh(int(m["deadline"]), int(m["nonce"]), now, expected, "the onboarding")

    def relay_onboarding(
        self, signed: dict[str, Any], relayer: LocalAccount | None = None, check: bool = True
    ) -> tuple[int, TxResult]:
        """Sends a vehicle's signed onboarding (after :meth:`check_onboarding`, with ``check``)."""
        if check:
            self.check_onboarding(signed)
        m = signed["message"]
        onboarding = (m["vinHash"], m["owner"], m["device"], m["nonce"], m["deadline"])
        fn = self.contract.functions.onboard(onboarding, HexBytes(signed["signature"]))
        receipt = self.client.transact(fn, sender=relayer)
        return int(_event_args(self.contract, "VehicleRegistered", receipt)["vehicleId"]), TxResult.of(receipt)

    def vehicle(self, vehicle_id: int) -> VehicleRecord:
        v = self.client.call(self.contract.functions.vehicle(vehicle_id))
        return VehicleRecord(vehicle_id, _hex(v[0]), str(v[1]), str(v[2]), int(v[3]), bool(v[4]), bool(v[5]))

    def owned_by(self, owner: str, from_block: int = 0) -> list[int]:
        """The ids of the vehicles ``owner`` registered (a vehicle's owner never changes), from the
        indexed owner topic of VehicleRegistered rather than a scan of every vehicle."""
        logs = self.contract.events.VehicleRegistered().get_logs(
            from_block=from_block, argument_filters={"owner": owner}
        )
        return sorted({int(lg["args"]["vehicleId"]) for lg in logs})

    def vehicle_id_of_vin(self, vin_hash: bytes) -> int:
        return int(self.client.call(self.contract.functions.vehicleIdOfVin(vin_hash)))

    def total(self) -> int:
        return int(self.client.call(self.contract.functions.totalVehicles()))


class TokenBinding:
    def __init__(self, client: ChainClient, address: str) -> None:
        self.client = client
        self.contract = client.contract("ElectraToken", address)
        self.address = self.contract.address

    def balance_of(self, account: str) -> int:
        return int(self.client.call(self.contract.functions.balanceOf(account)))

    def votes(self, account: str) -> int:
        return int(self.client.call(self.contract.functions.getVotes(account)))

    def reward_mint_cap(self) -> int:
        return int(self.client.call(self.contract.functions.rewardMintCap()))

    def transfer(self, to: str, amount: int, sender: LocalAccount | None = None) -> TxResult:
        return TxResult.of(self.client.transact(self.contract.functions.transfer(to, amount), sender=sender))

    def delegate(self, to: str, sender: LocalAccount | None = None) -> TxResult:
        return TxResult.of(self.client.transact(self.contract.functions.delegate(to), sender=sender))


@dataclass(frozen=True)
class Electra:
    """All bindings of one deployment."""

    client: ChainClient
    deployment: Deployment
    stations: StationRegistryBinding
    vehicles: VehicleLedgerBinding
    token: TokenBinding

    @classmethod
    def of(cls, client: ChainClient, deployment: Deployment) -> Electra:
        a = deployment.addresses
        return cls(
            client,
            deployment,
            StationRegistryBinding(client, a["StationRegistry"]),
            VehicleLedgerBinding(client, a["VehicleLedger"]),
            TokenBinding(client, a["ElectraToken"]),
        )

    def governor(self) -> Contract:
        return self.client.contract("ElectraGovernor", self.deployment.addresses["ElectraGovernor"])

    @cached_property
    def payments(self) -> PaymentHubBinding:
        """PaymentHub: deposits, charge authorizations, batched settlement (docs/payments.md)."""
        from electra.chain.payments import PaymentHubBinding  # it builds on this module's TxResult

        return PaymentHubBinding(self.client, self._payment_address("PaymentHub"))

    @cached_property
    def stablecoin(self) -> StablecoinBinding:
        """ElectraUSD, the dev chain's fiat-backed stablecoin."""
        from electra.chain.payments import StablecoinBinding

        return StablecoinBinding(self.client, self._payment_address("ElectraUSD"))

    @cached_property
    def anchors(self) -> SessionAnchorBinding:
        """SessionAnchor: the session log's Merkle roots, and proofs checked against them."""
        from electra.chain.anchors import SessionAnchorBinding

        return SessionAnchorBinding(self.client, self._added_address("SessionAnchor", "SessionAnchor"))

    @cached_property
    def staking(self) -> StakingBinding:
        """StakingManager: hosts' stake on chargers, tiers, unbonding, slashing (docs/contracts.md)."""
        from electra.chain.staking import StakingBinding

        return StakingBinding(self.client, self._added_address("StakingManager", "staking and rewards"))

    @cached_property
    def rewards(self) -> RewardsBinding:
        """RewardsDistributor: usage-mining epochs as Merkle roots, claims with proofs."""
        from electra.chain.rewards import RewardsBinding

        return RewardsBinding(self.client, self._added_address("RewardsDistributor", "staking and rewards"))

    def _payment_address(self, name: str) -> str:
        return self._added_address(name, "the payment contracts")

    def _added_address(self, name: str, what: str) -> str:
        """The address of a contract added after the first deployments."""
        address = self.deployment.addresses.get(name)
        if address is None:
            raise DeploymentMissing(
                f"the deployment on chain id {self.deployment.chain_id} predates {name}",
                f"run `electra deploy` to add {what}",
            )
        return address
