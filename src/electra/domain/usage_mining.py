"""Usage-mining rewards of one epoch, computed from anchored session records only. Pure: no I/O.

Anyone can recompute an epoch: the inputs are the session records anchored on SessionAnchor (their
values hash to the anchored leaves), who held each charger NFT and vehicle at the epoch's snapshot
block, and the published :class:`RewardParameters`. The output is one amount per account and the
Merkle root RewardsDistributor holds. Rules (docs/rewards.md):

1. The epoch's sessions are the anchored records with ``first_seq <= seq <= last_seq`` whose stop
   falls in ``[start_ms, end_ms)``.
2. A charger's utilization is the time its sessions of the epoch occupied it (each session's
   stop minus start, clipped to the epoch) over the epoch's length, in permille.
3. A session earns nothing if its energy is below ``min_energy_wh``, if it was not billed (energy
   0: flagged meter data), or if its vehicle's owner also holds the charger (self-dealing), or
   if it was charged with a driver's token (vehicle id 0).
4. Otherwise it earns ``energyWh * offpeak_rate_per_kwh // 1000`` if it started in an off-peak
   hour, plus ``energyWh * idle_rate_per_kwh // 1000`` if its charger's utilization is below
   ``utilization_threshold_permille``. Amounts are ELC base units.
5. A session's reward is split: ``driver_share_bps`` to the vehicle's owner, the rest to the
   charger's holder.
6. If the epoch's total exceeds ``epoch_cap``, every account's amount is scaled to
   ``amount * epoch_cap // total`` (rounded down; the remainder is not minted).
7. The claims tree is :class:`electra.domain.rewards.RewardEpoch` of the amounts: one leaf
   ``(uint256 epoch, address account, uint256 amount)`` per account with a non-zero amount.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

from eth_utils.crypto import keccak

from electra.domain.record import SessionRecord
from electra.domain.rewards import RewardEpoch
from electra.errors import InvalidInput

BPS = 10_000


@dataclass(frozen=True)
class RewardParameters:
    epoch: int
    start_ms: int
    end_ms: int
    first_seq: int
    last_seq: int
    snapshot_block: int
    offpeak_hours_utc: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 22, 23)
    offpeak_rate_per_kwh: int = 10**18  # 1 ELC per kWh
    idle_rate_per_kwh: int = 5 * 10**17  # 0.5 ELC per kWh
    utilization_threshold_permille: int = 250
    min_energy_wh: int = 1_000
    driver_share_bps: int = 7_000
    epoch_cap: int = 100_000 * 10**18

    def __post_init__(self) -> None:
        if not (0 <= self.start_ms < self.end_ms and 1 <= self.first_seq <= self.last_seq + 1):
            raise InvalidInput("an epoch needs start < end and a sequence range", "check the epoch's parameters")
        if not all(0 <= h <= 23 for h in self.offpeak_hours_utc) or not 0 <= self.driver_share_bps <= BPS:
            raise InvalidInput("off-peak hours are 0..23 and the driver share 0..10000 bps", "check the parameters")

    def canonical(self) -> bytes:
        d = asdict(self)
        d["offpeak_hours_utc"] = sorted(set(self.offpeak_hours_utc))
        return json.dumps(
            {k: str(v) if isinstance(v, int) and v > 2**53 else v for k, v in d.items()},
            sort_keys=True,
            separators=(",", ":"),
        ).encode()

    def digest(self) -> bytes:
        """keccak256 of the canonical JSON: what RewardsDistributor stores as the epoch's parameters."""
        return bytes(keccak(self.canonical()))

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> RewardParameters:
        """Reads :meth:`canonical`'s JSON back (integers may be decimal strings)."""
        kw: dict[str, object] = {}
        try:
            for k, v in data.items():
                if k == "offpeak_hours_utc":
                    if not isinstance(v, list):
                        raise InvalidInput("offpeak_hours_utc must be a list", "give hours 0..23")
                    kw[k] = tuple(int(h) for h in v)
                else:
                    kw[k] = int(str(v))
            return cls(**kw)  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"bad reward parameters: {exc}", "give the epoch's published parameters") from exc


@dataclass(frozen=True)
class AnchoredRecord:
    seq: int
    record: SessionRecord


@dataclass(frozen=True)
class SessionReward:
    session_id: int
    seq: int
    amount: int
    offpeak: bool
    idle_charger: bool
    reason: str  # why it earns or not


@dataclass
class EpochResult:
    parameters: RewardParameters
    amounts: dict[str, int]  # account (checksum address) -> ELC base units
    sessions: list[SessionReward] = field(default_factory=list)
    utilization_permille: dict[int, int] = field(default_factory=dict)  # charger token id -> permille
    total_before_cap: int = 0

    @property
    def total(self) -> int:
        return sum(self.amounts.values())

    def to_epoch(self) -> RewardEpoch:
        """The epoch's claims tree (RewardsDistributor's leaves); InvalidInput if nobody earned."""
        return RewardEpoch.of(self.parameters.epoch, self.amounts)


def compute_epoch(
    params: RewardParameters,
    records: Iterable[AnchoredRecord],
    charger_holder: Mapping[int, str],
    vehicle_owner: Mapping[int, str],
) -> EpochResult:
    """The epoch's rewards. ``charger_holder`` and ``vehicle_owner`` are the NFT holder of each
    charger token id and the owner of each vehicle id at ``params.snapshot_block``."""
    p = params
    sessions = sorted(
        (r for r in records if p.first_seq <= r.seq <= p.last_seq and p.start_ms <= r.record.stopped_at_ms < p.end_ms),
        key=lambda r: r.seq,
    )
    length = p.end_ms - p.start_ms
    busy: dict[int, int] = {}
    for r in sessions:
        s = r.record
        span = max(0, min(s.stopped_at_ms, p.end_ms) - max(s.started_at_ms, p.start_ms))
        busy[s.charger_token_id] = busy.get(s.charger_token_id, 0) + span
    utilization = {c: min(1000, ms * 1000 // length) for c, ms in busy.items()}
    offpeak_hours = set(p.offpeak_hours_utc)
    raw: dict[str, int] = {}
    out: list[SessionReward] = []
    for r in sessions:
        s = r.record
        host = charger_holder.get(s.charger_token_id, "").lower()
        driver = vehicle_owner.get(s.vehicle_id, "").lower() if s.vehicle_id else ""
        offpeak = (s.started_at_ms // 3_600_000) % 24 in offpeak_hours
        idle = utilization.get(s.charger_token_id, 0) < p.utilization_threshold_permille
        why = ""
        if s.vehicle_id == 0 or not driver:
            why = "charged with a driver's token, not a vehicle"
        elif s.energy_wh == 0:
            why = "not billed (flagged meter data)"
        elif s.energy_wh < p.min_energy_wh:
            why = f"below the minimum energy of {p.min_energy_wh} Wh"
        elif not host:
            why = "charger holder unknown at the snapshot"
        elif host == driver:
            why = "self-dealing: the vehicle's owner holds the charger"
        amount = 0
        if not why:
            amount = (
                s.energy_wh * p.offpeak_rate_per_kwh // 1000 * offpeak
                + s.energy_wh * p.idle_rate_per_kwh // 1000 * idle
            )
            why = (
                "off-peak and idle charger"
                if offpeak and idle
                else "off-peak"
                if offpeak
                else "idle charger"
                if idle
                else "peak hour at a busy charger"
            )
        if amount:
            to_driver = amount * p.driver_share_bps // BPS
            raw[vehicle_owner[s.vehicle_id]] = raw.get(vehicle_owner[s.vehicle_id], 0) + to_driver
            raw[charger_holder[s.charger_token_id]] = (
                raw.get(charger_holder[s.charger_token_id], 0) + amount - to_driver
            )
        out.append(SessionReward(s.session_id, r.seq, amount, offpeak, idle, why))
    total = sum(raw.values())
    amounts = raw if total <= p.epoch_cap else {a: n * p.epoch_cap // total for a, n in raw.items()}
    return EpochResult(p, {a: n for a, n in amounts.items() if n > 0}, out, utilization, total)
