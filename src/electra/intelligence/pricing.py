"""Dynamic pricing: the owner's base tariff times a multiplier that follows the forecast.

The rule, in integers (basis points, base units; no floats past the forecast):

1. The forecast utilization of the quoted hour, in permille, against the operator's target
   (:class:`PricingPolicy`): ``raw = 10_000 + slope * (forecast - target)`` basis points. Busier
   than the target costs more, quieter costs less.
2. Governance bounds it: ``floor_bps <= multiplier <= cap_bps`` (:class:`MultiplierBounds`; until the
   DAO publishes its own, :data:`DEFAULT_MULTIPLIER_BOUNDS`, see docs/intelligence.md).
3. The multiplier scales the tariff's energy price per Wh and time price per hour, rounded down
   (never a fraction of a base unit more than the rule says). The idle fee and the session fee do
   not move: they price behaviour, not demand.
4. The DAO's tariff ceilings (``PaymentHub.tariffBounds``) still hold: a scaled price above its
   ceiling is cut to the ceiling, and the quote says so.

A quote is for one hour (``valid_from_ms``..``valid_until_ms``) and says why: forecast, raw and
applied multiplier, the bounds and where they came from. A session pays the quote in force when
it started, whatever later quotes say (:mod:`electra.intelligence.store`, ``QuoteBook``).
No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from electra.domain.tariff import Tariff, TariffBounds
from electra.errors import InvalidInput
from electra.intelligence.signals import HOUR_MS

BPS = 10_000
MAX_CAP_BPS = 30_000  # whatever governance publishes, a price never more than triples
FORECAST_METHODS = ("model", "seasonal-naive", "none")


@dataclass(frozen=True)
class MultiplierBounds:
    """The governed floor and cap of the multiplier, in basis points of the base tariff."""

    floor_bps: int
    cap_bps: int
    source: str = "default"  # "default" (the platform's) or "chain" (published by the DAO)

    def __post_init__(self) -> None:
        for name in ("floor_bps", "cap_bps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidInput(f"{name} must be an integer, not {value!r}", "basis points, e.g. 8000")
        if not 0 < self.floor_bps <= BPS <= self.cap_bps <= MAX_CAP_BPS:
            raise InvalidInput(
                f"multiplier bounds {self.floor_bps}..{self.cap_bps} bps",
                f"need 0 < floor <= {BPS} <= cap <= {MAX_CAP_BPS} (the base price must be reachable)",
            )

    def clamp(self, multiplier_bps: int) -> int:
        return min(self.cap_bps, max(self.floor_bps, multiplier_bps))


# Until the DAO publishes bounds: at most 20 % below and 50 % above the owner's tariff.
DEFAULT_MULTIPLIER_BOUNDS = MultiplierBounds(8_000, 15_000, "default")


@dataclass(frozen=True)
class PricingPolicy:
    """The operator's rule inside the governed bounds: at ``target_permille`` utilization the price
    is the base tariff; each permille above or below moves it by ``slope_bps_per_permille``."""

    target_permille: int = 400
    slope_bps_per_permille: int = 10

    def __post_init__(self) -> None:
        if not 0 <= self.target_permille <= 1000:
            raise InvalidInput(f"target utilization {self.target_permille} permille", "give 0..1000")
        if not 0 <= self.slope_bps_per_permille <= 100:
            raise InvalidInput(f"slope {self.slope_bps_per_permille} bps per permille", "give 0..100")

    def raw_multiplier_bps(self, utilization_permille: int) -> int:
        return BPS + self.slope_bps_per_permille * (utilization_permille - self.target_permille)


@dataclass(frozen=True)
class Forecast:
    """A charger's utilization forecast: permille per hour from ``origin_ms`` (24 values or none)."""

    method: str  # model | seasonal-naive | none
    origin_ms: int
    utilization_permille: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.method not in FORECAST_METHODS:
            raise InvalidInput(f"forecast method {self.method!r}", f"one of {', '.join(FORECAST_METHODS)}")
        if self.origin_ms % HOUR_MS:
            raise InvalidInput(f"forecast origin {self.origin_ms} is not on an hour", "floor it to the hour")
        if any(not 0 <= u <= 1000 for u in self.utilization_permille):
            raise InvalidInput("forecast utilization outside 0..1000 permille", "clip the forecast")
        if self.method == "none" and self.utilization_permille:
            raise InvalidInput("a forecast of method none has no values", "give method model or seasonal-naive")

    def at(self, at_ms: int) -> int | None:
        """The forecast utilization of the hour holding ``at_ms``, or None if it has none."""
        k = (at_ms - self.origin_ms) // HOUR_MS
        return self.utilization_permille[k] if 0 <= k < len(self.utilization_permille) else None


def permille(utilization: float) -> int:
    """A 0..1 utilization as integer permille (the one place a float becomes a pricing input)."""
    if not utilization == utilization:  # NaN
        raise InvalidInput("utilization is NaN", "forecast from known hours only")
    return min(1000, max(0, round(utilization * 1000)))


@dataclass(frozen=True)
class PriceQuote:
    charger_id: str
    valid_from_ms: int
    valid_until_ms: int
    base: Tariff
    price: Tariff
    forecast: Forecast
    forecast_permille: int | None
    raw_multiplier_bps: int
    multiplier_bps: int
    bounds: MultiplierBounds
    policy: PricingPolicy
    ceiling: TariffBounds | None
    capped_by_ceiling: tuple[str, ...]
    why: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        def tariff(t: Tariff) -> dict[str, Any]:
            return {
                "asset": t.asset,
                "energy_price_per_wh": str(t.energy_price_per_wh),
                "time_price_per_hour": str(t.time_price_per_hour),
                "idle_price_per_hour": str(t.idle_price_per_hour),
                "idle_grace_s": t.idle_grace_s,
                "session_fee": str(t.session_fee),
            }

        c = self.ceiling
        return {
            "charger_id": self.charger_id,
            "valid_from_ms": self.valid_from_ms,
            "valid_until_ms": self.valid_until_ms,
            "base": tariff(self.base),
            "price": tariff(self.price),
            "multiplier_bps": self.multiplier_bps,
            "raw_multiplier_bps": self.raw_multiplier_bps,
            "bounds": {
                "floor_bps": self.bounds.floor_bps,
                "cap_bps": self.bounds.cap_bps,
                "source": self.bounds.source,
                "tariff_ceiling": None if c is None else {k: str(v) for k, v in c.__dict__.items()},
                "capped_by_ceiling": list(self.capped_by_ceiling),
            },
            "policy": {
                "target_permille": self.policy.target_permille,
                "slope_bps_per_permille": self.policy.slope_bps_per_permille,
            },
            "forecast": {
                "method": self.forecast.method,
                "origin_ms": self.forecast.origin_ms,
                "utilization_permille": self.forecast_permille,
                "next_24h_permille": list(self.forecast.utilization_permille),
            },
            "why": list(self.why),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PriceQuote:
        """The quote back from :meth:`to_json` (as stored), so a stored quote reads as it was made."""

        def tariff(d: dict[str, Any]) -> Tariff:
            return Tariff(
                d["asset"],
                int(d["energy_price_per_wh"]),
                int(d["time_price_per_hour"]),
                int(d["idle_price_per_hour"]),
                int(d["idle_grace_s"]),
                int(d["session_fee"]),
            )

        b, f, p = data["bounds"], data["forecast"], data["policy"]
        c = b["tariff_ceiling"]
        ceiling = None if c is None else TariffBounds(**{k: int(v) for k, v in c.items()})
        return cls(
            charger_id=data["charger_id"],
            valid_from_ms=int(data["valid_from_ms"]),
            valid_until_ms=int(data["valid_until_ms"]),
            base=tariff(data["base"]),
            price=tariff(data["price"]),
            forecast=Forecast(f["method"], int(f["origin_ms"]), tuple(int(u) for u in f["next_24h_permille"])),
            forecast_permille=None if f["utilization_permille"] is None else int(f["utilization_permille"]),
            raw_multiplier_bps=int(data["raw_multiplier_bps"]),
            multiplier_bps=int(data["multiplier_bps"]),
            bounds=MultiplierBounds(int(b["floor_bps"]), int(b["cap_bps"]), b["source"]),
            policy=PricingPolicy(int(p["target_permille"]), int(p["slope_bps_per_permille"])),
            ceiling=ceiling,
            capped_by_ceiling=tuple(b["capped_by_ceiling"]),
            why=tuple(data["why"]),
        )


def scale(price: int, multiplier_bps: int) -> int:
    """``price * multiplier`` rounded down to a base unit."""
    return price * multiplier_bps // BPS


def quote(
    charger_id: str,
    base: Tariff,
    forecast: Forecast,
    at_ms: int,
    bounds: MultiplierBounds = DEFAULT_MULTIPLIER_BOUNDS,
    policy: PricingPolicy | None = None,
    ceiling: TariffBounds | None = None,
) -> PriceQuote:
    """The price of ``charger_id`` for the hour holding ``at_ms``."""
    policy = policy or PricingPolicy()
    valid_from = at_ms - at_ms % HOUR_MS
    u = forecast.at(valid_from)
    why: list[str] = []
    if u is None:
        raw = BPS
        why.append(f"no forecast for this hour ({forecast.method}): the base tariff applies")
    else:
        raw = policy.raw_multiplier_bps(u)
        why.append(
            f"forecast utilization {u} permille ({forecast.method}) against a target of {policy.target_permille}: "
            f"{raw} bps at {policy.slope_bps_per_permille} bps per permille"
        )
    m = bounds.clamp(raw)
    where = "set by the DAO" if bounds.source == "chain" else "platform defaults until the DAO publishes its own"
    if m != raw:
        side = "floor" if raw < bounds.floor_bps else "cap"
        why.append(f"held at the {side} {m} bps (bounds {bounds.floor_bps}..{bounds.cap_bps} bps, {where})")
    else:
        why.append(f"within the bounds {bounds.floor_bps}..{bounds.cap_bps} bps ({where})")
    energy, per_hour = scale(base.energy_price_per_wh, m), scale(base.time_price_per_hour, m)
    capped: list[str] = []
    if ceiling is not None:
        if energy > ceiling.max_energy_price_per_wh:
            energy = ceiling.max_energy_price_per_wh
            capped.append("energy_price_per_wh")
        if per_hour > ceiling.max_time_price_per_hour:
            per_hour = ceiling.max_time_price_per_hour
            capped.append("time_price_per_hour")
        if capped:
            why.append(f"cut to the DAO's tariff ceiling for {base.asset}: {', '.join(capped)}")
    why.append(
        f"energy {base.energy_price_per_wh} -> {energy} {base.asset} base units per Wh"
        + (f", time {base.time_price_per_hour} -> {per_hour} per hour" if base.time_price_per_hour else "")
        + "; idle fee and session fee unchanged"
    )
    return PriceQuote(
        charger_id=charger_id,
        valid_from_ms=valid_from,
        valid_until_ms=valid_from + HOUR_MS,
        base=base,
        price=replace(base, energy_price_per_wh=energy, time_price_per_hour=per_hour),
        forecast=forecast,
        forecast_permille=u,
        raw_multiplier_bps=raw,
        multiplier_bps=m,
        bounds=bounds,
        policy=policy,
        ceiling=ceiling,
        capped_by_ceiling=tuple(capped),
        why=tuple(why),
    )
