"""Provisioning a simulated fleet: charger NFTs and vehicles on the chain, passwords and id tokens
in the central system's store.

Each charger is registered in StationRegistry with its own device key (the key that signs its
OCMF readings) unless it is already registered with that key. Each vehicle onboards itself in
VehicleLedger (its device key signs, the owner relays) unless its VIN is there already. With a
store, every charger gets a fresh Basic-auth password (`CredentialStore.rotate`) and every
vehicle's id tag is issued for its VehicleLedger id (`TokenRegistry.issue`). Running it twice
with the same seed registers nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine

from electra.chain.bindings import Electra
from electra.charging.tokens import TokenRegistry
from electra.domain.vehicle import vin_hash
from electra.errors import ConfigError
from electra.ocpp.auth import CredentialStore
from electra.sim.scenario import Scenario, charger_account, vehicle_account


@dataclass
class Provisioned:
    station_tokens: dict[str, int] = field(default_factory=dict)  # charger id -> NFT token id
    vehicle_ids: dict[int, int] = field(default_factory=dict)  # vehicle index -> VehicleLedger id
    passwords: dict[str, str] = field(default_factory=dict)
    chargers_registered: int = 0
    vehicles_registered: int = 0
    tokens_issued: int = 0


def provision(
    electra: Electra,
    scenario: Scenario,
    owner: LocalAccount,
    engine: Engine | None = None,
    progress: Callable[[str], None] | None = None,
) -> Provisioned:
    """Registers what is missing; with ``engine`` also sets passwords and issues id tokens."""
    done = Provisioned()
    step = progress or (lambda _: None)
    credentials = CredentialStore(engine) if engine is not None else None
    tokens = TokenRegistry(engine) if engine is not None else None
    for plan in scenario.chargers:
        device = charger_account(scenario.seed, plan.index)
        token_id = electra.stations.token_id_of(plan.charger_id)
        if token_id == 0:
            token_id, _ = electra.stations.register(plan.spec(), device, owner=owner)
            done.chargers_registered += 1
        else:
            registered = electra.stations.station(token_id).device
            if registered.lower() != device.address.lower():
                raise ConfigError(
                    f"charger {plan.charger_id} is registered with device {registered}, not this fleet's key",
                    "use another --seed or --prefix",
                )
        done.station_tokens[plan.charger_id] = token_id
        if credentials is not None:
            done.passwords[plan.charger_id] = credentials.rotate(plan.charger_id)
        step(plan.charger_id)
    for vehicle in scenario.vehicles:
        key = vin_hash(vehicle.vin)
        vehicle_id = electra.vehicles.vehicle_id_of_vin(key)
        if vehicle_id == 0:
            signed = electra.vehicles.sign_onboarding(vehicle_account(scenario.seed, vehicle.index), key, owner.address)
            vehicle_id, _ = electra.vehicles.relay_onboarding(signed, relayer=owner)
            done.vehicles_registered += 1
        done.vehicle_ids[vehicle.index] = vehicle_id
        if tokens is not None:
            tokens.issue(vehicle.id_tag, vehicle_id=vehicle_id, owner=owner.address)
            done.tokens_issued += 1
        step(vehicle.vin)
    return done
