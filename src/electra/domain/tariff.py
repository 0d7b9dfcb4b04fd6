"""Tariffs and what a session costs: integers in token base units, never floats.

A tariff is OCPI-like: a price per Wh of energy, a price per hour of charging time, an idle fee per
hour once the car has stopped drawing energy but still holds the connector (after a grace period),
and a flat fee per session. The charger's owner sets it, within bounds that the DAO sets.

Rounding: energy is exact (Wh times price per Wh). Time and idle time are billed per whole second
and each of those two components is rounded down to a base unit, so a bill never charges for a
fraction of a unit the driver did not use. Every component is shown on the receipt.

No I/O, no clocks: times are milliseconds since the epoch, handed in.
"""

from __future__ import annotations

from dataclasses import dataclass

from electra.domain.session import ChargingSession, SessionStatus
from electra.errors import InvalidInput

MS_PER_HOUR = 3_600_000


@dataclass(frozen=True)
class TariffBounds:
    """The DAO's ceilings for an asset's tariffs, in that asset's base units."""

    max_energy_price_per_wh: int
    max_time_price_per_hour: int
    max_idle_price_per_hour: int
    max_session_fee: int

    def __post_init__(self) -> None:
        for name in (
            "max_energy_price_per_wh",
            "max_time_price_per_hour",
            "max_idle_price_per_hour",
            "max_session_fee",
        ):
            _non_negative(name, getattr(self, name))


@dataclass(frozen=True)
class Tariff:
    asset: str  # the asset's symbol, e.g. "EUSD" or "ELC"
    energy_price_per_wh: int
    time_price_per_hour: int = 0
    idle_price_per_hour: int = 0
    idle_grace_s: int = 0
    session_fee: int = 0

    def __post_init__(self) -> None:
        if not self.asset or not self.asset.isalnum() or len(self.asset) > 11:
            raise InvalidInput(f"asset symbol {self.asset!r}", "use the token's symbol, e.g. EUSD or ELC")
        for name in (
            "energy_price_per_wh",
            "time_price_per_hour",
            "idle_price_per_hour",
            "idle_grace_s",
            "session_fee",
        ):
            _non_negative(name, getattr(self, name))

    def check_within(self, bounds: TariffBounds) -> Tariff:
        """Returns the tariff if every price is within the DAO's bounds; names the first that is not."""
        pairs = (
            ("energy price per Wh", self.energy_price_per_wh, bounds.max_energy_price_per_wh),
            ("time price per hour", self.time_price_per_hour, bounds.max_time_price_per_hour),
            ("idle price per hour", self.idle_price_per_hour, bounds.max_idle_price_per_hour),
            ("session fee", self.session_fee, bounds.max_session_fee),
        )
        for what, value, ceiling in pairs:
            if value > ceiling:
                raise InvalidInput(
                    f"the {what} {value} is above the DAO's bound {ceiling} ({self.asset} base units)",
                    "lower it, or ask the DAO to raise the bound",
                )
        return self

    def cost(self, usage: Usage) -> Cost:
        charging_s = max(0, usage.charging_ended_at_ms - usage.started_at_ms) // 1000
        idle_s = max(0, usage.stopped_at_ms - usage.charging_ended_at_ms) // 1000
        billed_idle_s = max(0, idle_s - self.idle_grace_s)
        return Cost(
            asset=self.asset,
            energy_wh=usage.energy_wh,
            charging_s=charging_s,
            idle_s=billed_idle_s,
            energy=usage.energy_wh * self.energy_price_per_wh,
            time=charging_s * self.time_price_per_hour // 3600,
            idle=billed_idle_s * self.idle_price_per_hour // 3600,
            session_fee=self.session_fee,
        )

    def worst_case(self, energy_wh: int, duration_s: int) -> int:
        """The most a session of at most ``energy_wh`` and ``duration_s`` can cost (for sizing a
        charge authorization)."""
        return (
            energy_wh * self.energy_price_per_wh
            + duration_s * self.time_price_per_hour // 3600
            + max(0, duration_s - self.idle_grace_s) * self.idle_price_per_hour // 3600
            + self.session_fee
        )


@dataclass(frozen=True)
class Usage:
    """What a finished session used, as the tariff needs it."""

    energy_wh: int
    started_at_ms: int
    charging_ended_at_ms: int  # when the register last went up: after it, the car only holds the bay
    stopped_at_ms: int

    def __post_init__(self) -> None:
        _non_negative("energy_wh", self.energy_wh)
        if not self.started_at_ms <= self.charging_ended_at_ms <= self.stopped_at_ms:
            raise InvalidInput(
                f"usage times out of order: start {self.started_at_ms}, charging ended "
                f"{self.charging_ended_at_ms}, stop {self.stopped_at_ms}",
                "times are ms since the epoch, start <= charging ended <= stop",
            )

    @classmethod
    def of(cls, session: ChargingSession) -> Usage:
        """The usage of a completed, billable session (see ``ChargingSession.billable_energy_wh``)."""
        energy = session.billable_energy_wh
        if session.status is not SessionStatus.COMPLETED or energy is None or session.stopped_at_ms is None:
            raise InvalidInput(
                f"session {session.session_id} is not billable (status {session.status.value}, flags "
                f"{sorted(f.value for f in session.flags)})",
                "only a completed session with a sane meter is billed automatically",
            )
        final = session.readings[-1].register_wh
        ended = next(r.timestamp_ms for r in session.readings if r.register_wh == final)
        start = session.readings[0].timestamp_ms
        return cls(energy, start, max(start, ended), max(ended, session.stopped_at_ms))


@dataclass(frozen=True)
class Cost:
    asset: str
    energy_wh: int
    charging_s: int
    idle_s: int  # billed idle seconds, after the grace period
    energy: int
    time: int
    idle: int
    session_fee: int

    @property
    def total(self) -> int:
        return self.energy + self.time + self.idle + self.session_fee

    def lines(self) -> list[tuple[str, int]]:
        return [
            ("energy", self.energy),
            ("charging time", self.time),
            ("idle fee", self.idle),
            ("session fee", self.session_fee),
        ]


def _non_negative(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"{name} must be a non-negative integer, not {value!r}", "money is integer base units")
