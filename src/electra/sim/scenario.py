"""Fleet scenarios: which chargers, which vehicles, who arrives where and when, what goes wrong.

A scenario is a pure function of its parameters and a seed: the same seed gives the same chargers
(ids, OCPP versions, power, device keys), the same vehicles (VINs, id tokens, batteries, states of
charge, device keys) and the same timeline of arrivals, offline periods and faults. Times are
simulated milliseconds from the start of the run; energy is integer Wh, power integer W.

Device keys come from one BIP-39 mnemonic made from the seed, along the paths
``m/44'/60'/1'/0/i`` (charger i) and ``m/44'/60'/2'/0/i`` (vehicle i), with eth-account's HD
wallet code. They are never anvil's public dev keys (checked).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from functools import cache

from eth_account import Account
from eth_account.hdaccount import key_from_seed, seed_from_mnemonic
from eth_account.hdaccount.mnemonic import Mnemonic
from eth_account.signers.local import LocalAccount
from eth_account.types import Language

from electra.chain.keys import is_dev_key
from electra.domain.station import ConnectorType, OcppVersion, StationSpec, check_charger_id
from electra.errors import ConfigError, InvalidInput

VERSIONS = ("1.6", "2.0.1")
CHARGER_MODELS = ((11_000, "AC", 2), (22_000, "AC", 2), (50_000, "DC", 1), (150_000, "DC", 1))
BATTERIES_WH = (40_000, 58_000, 77_000, 100_000)
VEHICLE_AC_W = (7_400, 11_000)
VEHICLE_DC_W = (50_000, 100_000, 150_000)
ERROR_CODES = ("GroundFailure", "OverCurrentFailure", "HighTemperature", "PowerSwitchFailure")
VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"  # ISO 3779: no I, O or Q
TARGET_SOC_PERMILLE = 800
BERLIN_E6 = (52_520_008, 13_404_954)


@dataclass(frozen=True)
class FaultPlan:
    at_ms: int
    connector_id: int
    kind: str  # "connector": Faulted with error_code, session stopped; "meter_backwards": register jumps back
    error_code: str = "GroundFailure"
    clear_after_ms: int = 0
    backwards_wh: int = 0


@dataclass(frozen=True)
class ChargerPlan:
    index: int
    charger_id: str
    version: str
    connectors: int
    max_power_w: int
    current_type: str
    latitude_e6: int
    longitude_e6: int
    offline: tuple[tuple[int, int], ...] = ()  # (at ms, for ms)
    faults: tuple[FaultPlan, ...] = ()

    def spec(self, operator_id: bytes = b"DEELC") -> StationSpec:
        """What the charger NFT records (see StationRegistry)."""
        connector = ConnectorType.IEC_62196_T2 if self.current_type == "AC" else ConnectorType.IEC_62196_T2_COMBO
        version = OcppVersion.V16 | OcppVersion.V201  # the simulated firmware speaks both; a run picks one
        return StationSpec(
            charger_id=self.charger_id,
            latitude_e6=self.latitude_e6,
            longitude_e6=self.longitude_e6,
            max_power_w=self.max_power_w,
            connector_types=int(connector),
            ocpp_versions=int(version),
            operator_id=operator_id,
            metadata={"simulated": True, "connectors": self.connectors},
        )


@dataclass(frozen=True)
class VehiclePlan:
    index: int
    vin: str
    id_tag: str
    battery_wh: int
    soc_permille: int
    ac_max_w: int
    dc_max_w: int

    @property
    def demand_wh(self) -> int:
        """Energy to reach 80 % state of charge."""
        return self.battery_wh * max(0, TARGET_SOC_PERMILLE - self.soc_permille) // 1000

    def max_power_w(self, current_type: str) -> int:
        return self.ac_max_w if current_type == "AC" else self.dc_max_w


@dataclass(frozen=True)
class Arrival:
    at_ms: int
    vehicle: int
    charger: int


@dataclass(frozen=True)
class Scenario:
    seed: int
    duration_ms: int
    chargers: tuple[ChargerPlan, ...]
    vehicles: tuple[VehiclePlan, ...]
    arrivals: tuple[Arrival, ...]

    @property
    def versions(self) -> dict[str, int]:
        return {v: sum(1 for c in self.chargers if c.version == v) for v in VERSIONS}


def build_scenario(
    seed: int,
    chargers: int,
    vehicles: int | None = None,
    *,
    mix: float = 0.5,
    duration_s: int = 3_600,
    offline_rate: float = 0.0,
    fault_rate: float = 0.0,
    prefix: str | None = None,
) -> Scenario:
    """A reproducible scenario. ``mix``: the share of OCPP 2.0.1 chargers; the rates: the share of
    chargers that go offline once / get one fault during the run. ``duration_s`` is simulated time."""
    if chargers < 1:
        raise InvalidInput(f"a fleet of {chargers} chargers", "give --chargers 1 or more")
    for name, rate in (("mix", mix), ("offline rate", offline_rate), ("fault rate", fault_rate)):
        if not 0 <= rate <= 1:
            raise InvalidInput(f"{name} {rate} is not a fraction", f"give a {name} between 0 and 1")
    if duration_s <= 0:
        raise InvalidInput(f"a run of {duration_s} s", "give a positive duration")
    n_vehicles = 2 * chargers if vehicles is None else vehicles
    if n_vehicles < 0:
        raise InvalidInput(f"{n_vehicles} vehicles", "give 0 or more vehicles")
    prefix = f"SIM{seed}" if prefix is None else prefix
    check_charger_id(f"{prefix}-{chargers - 1:04d}")
    duration_ms = duration_s * 1000
    # Independent streams: a charger's or a vehicle's facts depend only on the seed and its index,
    # so a bigger fleet or other rates keep the same chargers and vehicles (and their NFTs).
    v201 = set(_rng(seed, "mix", chargers).sample(range(chargers), round(chargers * mix)))
    timeline = _rng(seed, "timeline", chargers, n_vehicles, duration_ms)
    plans = []
    for i in range(chargers):
        rng = _rng(seed, "charger", i)
        power, current, connectors = rng.choice(CHARGER_MODELS)
        latitude = BERLIN_E6[0] + rng.randint(-100_000, 100_000)
        longitude = BERLIN_E6[1] + rng.randint(-150_000, 150_000)
        offline: tuple[tuple[int, int], ...] = ()
        faults: tuple[FaultPlan, ...] = ()
        if timeline.random() < offline_rate:
            offline = ((_between(timeline, duration_ms, 100, 700), _between(timeline, duration_ms, 50, 150)),)
        if timeline.random() < fault_rate:
            kind = timeline.choice(("connector", "meter_backwards"))
            faults = (
                FaultPlan(
                    at_ms=_between(timeline, duration_ms, 200, 800),
                    connector_id=timeline.randint(1, connectors),
                    kind=kind,
                    error_code=timeline.choice(ERROR_CODES),
                    clear_after_ms=duration_ms // 10,
                    backwards_wh=timeline.randint(100, 1_000) if kind == "meter_backwards" else 0,
                ),
            )
        plans.append(
            ChargerPlan(
                index=i,
                charger_id=f"{prefix}-{i:04d}",
                version="2.0.1" if i in v201 else "1.6",
                connectors=connectors,
                max_power_w=power,
                current_type=current,
                latitude_e6=latitude,
                longitude_e6=longitude,
                offline=offline,
                faults=faults,
            )
        )
    fleet = [_vehicle(seed, j) for j in range(n_vehicles)]
    arrivals = sorted(
        (Arrival(_between(timeline, duration_ms, 0, 600), j, timeline.randrange(chargers)) for j in range(n_vehicles)),
        key=lambda a: (a.at_ms, a.vehicle),
    )
    return Scenario(seed, duration_ms, tuple(plans), tuple(fleet), tuple(arrivals))


def _rng(seed: int, *stream: object) -> random.Random:
    return random.Random(":".join(["electra-sim", str(seed), *map(str, stream)]))


def _vehicle(seed: int, index: int) -> VehiclePlan:
    rng = _rng(seed, "vehicle", index)
    return VehiclePlan(
        index=index,
        vin="ELCSM" + "".join(rng.choice(VIN_CHARS) for _ in range(12)),
        id_tag=hashlib.sha256(f"electra-sim:{seed}:vehicle:{index}".encode()).hexdigest()[:8].upper(),
        battery_wh=rng.choice(BATTERIES_WH),
        soc_permille=rng.randint(100, 600),
        ac_max_w=rng.choice(VEHICLE_AC_W),
        dc_max_w=rng.choice(VEHICLE_DC_W),
    )


def _between(rng: random.Random, total_ms: int, lo_permille: int, hi_permille: int) -> int:
    return rng.randint(total_ms * lo_permille // 1000, total_ms * hi_permille // 1000)


# --- device keys ------------------------------------------------------------------------------


@cache
def _hd_seed(seed: int) -> bytes:
    entropy = hashlib.sha256(f"electra-sim-devices:{seed}".encode()).digest()[:16]
    return seed_from_mnemonic(Mnemonic(Language.ENGLISH).to_mnemonic(entropy), "")


def _account(seed: int, branch: int, index: int) -> LocalAccount:
    account: LocalAccount = Account.from_key(key_from_seed(_hd_seed(seed), f"m/44'/60'/{branch}'/0/{index}"))
    if is_dev_key(account):
        raise ConfigError(f"seed {seed} derived a public anvil dev key", "use another --seed")
    return account


def charger_account(seed: int, index: int) -> LocalAccount:
    """The device key of charger ``index`` of the fleet of ``seed``."""
    return _account(seed, 1, index)


def vehicle_account(seed: int, index: int) -> LocalAccount:
    """The device key of vehicle ``index`` of the fleet of ``seed``."""
    return _account(seed, 2, index)
