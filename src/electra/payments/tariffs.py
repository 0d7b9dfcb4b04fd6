"""Tariffs and leases per charger, set by the charger's owner.

The owner (whoever holds the charger's NFT) sets a tariff within the DAO's bounds
(:data:`DEFAULT_BOUNDS` until governance publishes its own) and leases the charger to the public or
keeps it private. A private charger charges only the vehicles its owner lists; a public one charges
any vehicle during its availability windows (none listed: always).

Windows are written ``"Mon-Fri 07:00-19:00"``, ``"Sat 09:00-13:00"``, ``"daily 00:00-24:00"``, in
UTC.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from electra.domain.tariff import Tariff, TariffBounds
from electra.errors import InvalidInput
from electra.store.models import LeaseRecord, TariffRecord

# Until the DAO publishes bounds on-chain (PaymentHub.setTariffBounds) these apply, per asset symbol
# (base units).
DEFAULT_BOUNDS: dict[str, TariffBounds] = {
    # ElectraUSD, 6 decimals: at most 2.00 per kWh, 30.00 per hour, 60.00 idle per hour, 10.00 per session
    "EUSD": TariffBounds(2_000, 30_000_000, 60_000_000, 10_000_000),
    # ELC, 18 decimals: at most 20 ELC per kWh, 300 per hour, 600 idle per hour, 100 per session
    "ELC": TariffBounds(20 * 10**15, 300 * 10**18, 600 * 10**18, 100 * 10**18),
}
# What a charger without a tariff of its own costs: 0.40 EUSD per kWh, nothing else.
DEFAULT_TARIFF = Tariff("EUSD", energy_price_per_wh=400)

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW = re.compile(r"^(?P<days>daily|[a-z]{3}(?:-[a-z]{3})?)\s+(?P<a>\d{2}):(?P<b>\d{2})-(?P<c>\d{2}):(?P<d>\d{2})$")


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # 0 = Monday
    start_min: int
    end_min: int

    @classmethod
    def parse(cls, text: str) -> Window:
        m = _WINDOW.match(text.strip().lower())
        if m is None:
            raise InvalidInput(
                f"availability window {text!r}", 'write e.g. "Mon-Fri 07:00-19:00" or "daily 00:00-24:00"'
            )
        days_text = m["days"]
        if days_text == "daily":
            days = frozenset(range(7))
        else:
            first, _, last = days_text.partition("-")
            if first not in _DAYS or (last and last not in _DAYS):
                raise InvalidInput(f"day in window {text!r}", "days are Mon Tue Wed Thu Fri Sat Sun")
            a, b = _DAYS.index(first), _DAYS.index(last or first)
            days = frozenset(range(a, b + 1)) if a <= b else frozenset([*range(a, 7), *range(0, b + 1)])
        start, end = int(m["a"]) * 60 + int(m["b"]), int(m["c"]) * 60 + int(m["d"])
        if int(m["b"]) > 59 or int(m["d"]) > 59 or not 0 <= start < end <= 24 * 60:
            raise InvalidInput(f"times in window {text!r}", "start before end, within 00:00-24:00")
        return cls(days, start, end)

    def contains(self, at_ms: int) -> bool:
        t = dt.datetime.fromtimestamp(at_ms / 1000, dt.UTC)
        minute = t.hour * 60 + t.minute
        return t.weekday() in self.days and self.start_min <= minute < self.end_min

    def text(self) -> str:
        days = sorted(self.days)
        if len(days) == 7:
            label = "daily"
        elif days == list(range(days[0], days[-1] + 1)):
            label = _DAYS[days[0]].title() + ("" if len(days) == 1 else "-" + _DAYS[days[-1]].title())
        else:  # a range across Sunday
            split = next(i for i in range(1, len(days)) if days[i] != days[i - 1] + 1)
            label = f"{_DAYS[days[split]].title()}-{_DAYS[days[split - 1]].title()}"
        return f"{label} {_hhmm(self.start_min)}-{_hhmm(self.end_min)}"


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True)
class Lease:
    charger_id: str
    public: bool = True
    windows: tuple[Window, ...] = ()
    allowed_vehicles: frozenset[int] = field(default_factory=frozenset)

    def admits(self, vehicle_id: int | None, at_ms: int) -> tuple[bool, str]:
        """Whether this vehicle may charge here now, and why not."""
        if vehicle_id is not None and vehicle_id in self.allowed_vehicles:
            return True, ""
        if not self.public:
            return False, "the charger is private and this vehicle is not on its list"
        if self.windows and not any(w.contains(at_ms) for w in self.windows):
            return False, "the charger is outside its public hours (" + ", ".join(w.text() for w in self.windows) + ")"
        return True, ""


def governed_bounds(
    published: Callable[[str], TariffBounds | None], assets: Mapping[str, str]
) -> Callable[[str], TariffBounds | None]:
    """Tariff bounds by asset symbol: what governance published on-chain for the asset's address
    (``published``, e.g. ``PaymentHubBinding.tariff_bounds``), else :data:`DEFAULT_BOUNDS`."""

    def bounds(symbol: str) -> TariffBounds | None:
        address = assets.get(symbol)
        on_chain = published(address) if address is not None else None
        return on_chain if on_chain is not None else DEFAULT_BOUNDS.get(symbol)

    return bounds


class TariffBook:
    def __init__(
        self,
        engine: Engine,
        bounds: Callable[[str], TariffBounds | None] = DEFAULT_BOUNDS.get,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.bounds = bounds
        self.clock = clock

    def set(self, charger_id: str, tariff: Tariff, by: str) -> Tariff:
        bounds = self.bounds(tariff.asset)
        if bounds is None:
            raise InvalidInput(f"no tariff bounds for {tariff.asset}", "price in an asset the DAO allows (EUSD, ELC)")
        tariff.check_within(bounds)
        row = TariffRecord(
            charger_id=charger_id,
            asset=tariff.asset,
            energy_price_per_wh=str(tariff.energy_price_per_wh),
            time_price_per_hour=str(tariff.time_price_per_hour),
            idle_price_per_hour=str(tariff.idle_price_per_hour),
            idle_grace_s=tariff.idle_grace_s,
            session_fee=str(tariff.session_fee),
            updated_at_ms=int(self.clock() * 1000),
            updated_by=by,
        )
        with Session(self.engine) as s, s.begin():
            s.merge(row)
        return tariff

    def get(self, charger_id: str) -> Tariff:
        """The charger's tariff, or the platform default if its owner has set none."""
        with Session(self.engine) as s:
            row = s.get(TariffRecord, charger_id)
        if row is None:
            return DEFAULT_TARIFF
        return Tariff(
            row.asset,
            int(row.energy_price_per_wh),
            int(row.time_price_per_hour),
            int(row.idle_price_per_hour),
            row.idle_grace_s,
            int(row.session_fee),
        )


class LeaseBook:
    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock

    def set(
        self, charger_id: str, public: bool, windows: list[str] | None = None, allowed_vehicles: list[int] | None = None
    ) -> Lease:
        parsed = tuple(Window.parse(w) for w in windows or [])
        lease = Lease(charger_id, public, parsed, frozenset(allowed_vehicles or []))
        row = LeaseRecord(
            charger_id=charger_id,
            public=public,
            windows=json.dumps([w.text() for w in parsed]),
            allowed_vehicles=json.dumps(sorted(lease.allowed_vehicles)),
            updated_at_ms=int(self.clock() * 1000),
        )
        with Session(self.engine) as s, s.begin():
            s.merge(row)
        return lease

    def get(self, charger_id: str) -> Lease:
        """The charger's lease; a charger never leased is public, always (the platform's default)."""
        with Session(self.engine) as s:
            row = s.scalar(select(LeaseRecord).where(LeaseRecord.charger_id == charger_id))
        if row is None:
            return Lease(charger_id)
        return Lease(
            charger_id,
            row.public,
            tuple(Window.parse(w) for w in json.loads(row.windows)),
            frozenset(int(v) for v in json.loads(row.allowed_vehicles)),
        )
