"""Which charge point ids may connect: the charger's NFT decides."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from electra.chain.bindings import StationRegistryBinding
from electra.errors import ContractReverted


@dataclass(frozen=True)
class ChargerAdmission:
    charger_id: str
    token_id: int  # 0: not registered
    active: bool
    device: str | None = None  # the NFT's device address: the key the charger's meter data is signed with

    @property
    def known(self) -> bool:
        return self.token_id != 0


class ChargerDirectory(Protocol):
    def admission(self, charger_id: str) -> ChargerAdmission: ...


class ChainChargerDirectory:
    """Reads StationRegistry, with a short cache so a reconnect storm is not an RPC storm."""

    def __init__(
        self, stations: StationRegistryBinding, ttl_s: float = 5.0, clock: Callable[[], float] | None = None
    ) -> None:
        self.stations = stations
        self.ttl_s = ttl_s
        self.clock = clock or time.monotonic
        self._cache: dict[str, tuple[float, ChargerAdmission]] = {}
        self._devices: dict[int, str] = {}  # a station's device never changes: read once per token

    def admission(self, charger_id: str) -> ChargerAdmission:
        now = self.clock()
        hit = self._cache.get(charger_id)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        token_id = self.stations.token_id_of(charger_id)
        active = False
        device = None
        if token_id:
            try:
                active = bool(self.stations.client.call(self.stations.contract.functions.isActive(token_id)))
            except ContractReverted:
                active = False
            device = self._devices.get(token_id)
            if device is None:
                device = self._devices[token_id] = str(
                    self.stations.client.call(self.stations.contract.functions.deviceOf(token_id))
                )
        result = ChargerAdmission(charger_id, token_id, active, device)
        self._cache[charger_id] = (now, result)
        return result

    def forget(self, charger_id: str) -> None:
        self._cache.pop(charger_id, None)


class StaticChargerDirectory:
    """In-memory twin for unit tests of the gateway."""

    def __init__(self, chargers: dict[str, ChargerAdmission]) -> None:
        self.chargers = chargers

    def admission(self, charger_id: str) -> ChargerAdmission:
        return self.chargers.get(charger_id, ChargerAdmission(charger_id, 0, False))
