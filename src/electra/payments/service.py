"""The payment side of the platform, assembled from one deployment and one store."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine

from electra.chain.bindings import Electra
from electra.chain.settlement import SettlementWorker
from electra.intelligence.store import price_in_force
from electra.payments.authorizations import AuthorizationBook
from electra.payments.billing import Biller, PaymentGate
from electra.payments.events import EventBus
from electra.payments.tariffs import LeaseBook, TariffBook, governed_bounds
from electra.payments.wallet import WalletService

ERC1271_ABI = [
    {
        "name": "isValidSignature",
        "type": "function",
        "stateMutability": "view",
        "inputs": [{"name": "hash", "type": "bytes32"}, {"name": "signature", "type": "bytes"}],
        "outputs": [{"name": "", "type": "bytes4"}],
    }
]


@dataclass
class Payments:
    tariffs: TariffBook
    leases: LeaseBook
    authorizations: AuthorizationBook
    gate: PaymentGate
    biller: Biller
    worker: SettlementWorker
    assets: dict[str, str]
    wallet: WalletService


def payments_for(
    electra: Electra,
    engine: Engine,
    settler: LocalAccount | None = None,
    max_batch: int = 100,
    max_age_s: float = 30.0,
    clock: Callable[[], float] = time.time,
    bus: EventBus | None = None,
) -> Payments:
    hub = electra.payments
    assets = {"EUSD": electra.stablecoin.address, "ELC": electra.token.address}

    @functools.lru_cache(maxsize=65_536)
    def token_id_of(charger_id: str) -> int:  # a charger's NFT never changes its id
        return electra.stations.token_id_of(charger_id)

    def vehicle_keys(vehicle_id: int) -> tuple[str, str]:
        v = electra.vehicles.vehicle(vehicle_id)
        return v.device, v.owner

    def owner_of(charger_id: str) -> str:
        return str(electra.client.call(electra.stations.contract.functions.ownerOf(token_id_of(charger_id))))

    def erc1271(owner: str, digest: bytes, signature: bytes) -> bool:
        if not electra.client.w3.eth.get_code(owner):
            return False
        wallet = electra.client.w3.eth.contract(address=owner, abi=ERC1271_ABI)
        try:
            return bytes(wallet.functions.isValidSignature(digest, signature).call()) == bytes.fromhex("1626ba7e")
        except Exception:  # noqa: BLE001 - a wallet that reverts did not sign
            return False

    tariffs = TariffBook(engine, governed_bounds(hub.tariff_bounds, assets), clock=clock)
    leases = LeaseBook(engine, clock=clock)
    authorizations = AuthorizationBook(engine, hub, vehicle_keys, clock=clock, erc1271=erc1271)
    gate = PaymentGate(authorizations, leases, hub, token_id_of)
    biller = Biller(
        engine, tariffs, authorizations, assets, token_id_of, clock=clock, price_in_force=price_in_force(engine)
    )
    worker = SettlementWorker(
        engine, hub, biller, authorizations, assets, owner_of, settler, max_batch, max_age_s, clock=clock
    )
    wallet = WalletService(engine, electra, bus=bus)

    def recheck_alerts(vehicles: set[int]) -> None:
        for vehicle_id in sorted(vehicles):
            wallet.check_alerts(vehicle_id)

    worker.on_charged = recheck_alerts
    return Payments(tariffs, leases, authorizations, gate, biller, worker, assets, wallet)
