"""The intelligence wired to the platform: quotes from the store's history and the DAO's bounds,
maintenance scans that open tickets. Clocks are injected; the rules are in the pure modules."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from electra.domain.tariff import Tariff, TariffBounds
from electra.errors import InvalidInput
from electra.intelligence.forecast import (
    HORIZON_H,
    UtilizationForecaster,
    fleet_of,
    seasonal_naive,
)
from electra.intelligence.maintenance import (
    DOWN,
    FEATURES,
    RISK_THRESHOLD_PERMILLE,
    ChargerSignals,
    RiskModel,
    Ticket,
    default_risk_model,
    evidence,
)
from electra.intelligence.pricing import (
    DEFAULT_MULTIPLIER_BOUNDS,
    Forecast,
    MultiplierBounds,
    PriceQuote,
    PricingPolicy,
    permille,
    quote,
)
from electra.intelligence.signals import DAY_MS, HOUR_MS, WEEK_H
from electra.intelligence.store import QuoteBook, TicketBook, known_charger, known_charger_ids, load_histories

# The governed parameter the DAO is to publish on PaymentHub (docs/intelligence.md): a getter
# returning (floorBps, capBps), both zero until set. Read when the deployed contract has it.
MULTIPLIER_BOUNDS_GETTER = "dynamicPricingBounds"


def published_multiplier_bounds(hub: Any) -> MultiplierBounds | None:
    """The multiplier bounds PaymentHub publishes, or None: the deployed contract has no such
    parameter yet, or governance has not set it (both zero)."""
    has_getter = any(
        item.get("type") == "function" and item.get("name") == MULTIPLIER_BOUNDS_GETTER for item in hub.contract.abi
    )
    if not has_getter:
        return None
    floor_bps, cap_bps = (int(v) for v in hub.client.call(getattr(hub.contract.functions, MULTIPLIER_BOUNDS_GETTER)()))
    if floor_bps == 0 and cap_bps == 0:
        return None
    return MultiplierBounds(floor_bps, cap_bps, "chain")


def governed_multiplier_bounds(published: Callable[[], MultiplierBounds | None]) -> Callable[[], MultiplierBounds]:
    """What governance published, else :data:`DEFAULT_MULTIPLIER_BOUNDS`."""

    def bounds() -> MultiplierBounds:
        on_chain = published()
        return on_chain if on_chain is not None else DEFAULT_MULTIPLIER_BOUNDS

    return bounds


class UnknownCharger(InvalidInput):
    """The store has nothing of this charger: no boot, session or tariff."""


@dataclass
class PricingService:
    """Quotes a charger's price for the current hour: the hour's published quote if there is one,
    else a new one from the forecast, published before it is returned."""

    engine: Any
    tariff_of: Callable[[str], Tariff]
    ceiling_of: Callable[[str], TariffBounds | None]
    multiplier_bounds: Callable[[], MultiplierBounds] = lambda: DEFAULT_MULTIPLIER_BOUNDS
    clock: Callable[[], float] = time.time
    policy: PricingPolicy = field(default_factory=PricingPolicy)
    sites: Callable[[], Mapping[str, str]] | None = None
    window_weeks: int = 5
    _cache: tuple[int, dict[str, Forecast]] | None = None

    def __post_init__(self) -> None:
        self.quotes = QuoteBook(self.engine)

    def quote(self, charger_id: str) -> tuple[PriceQuote, bool]:
        """(the quote in force now, whether it was published by this call)."""
        now_ms = int(self.clock() * 1000)
        hour = now_ms - now_ms % HOUR_MS
        found = self.quotes.get(charger_id, hour)
        if found is not None:
            return found[0], False
        if not known_charger(self.engine, charger_id):
            raise UnknownCharger(f"unknown charger {charger_id}", "it has never booted, charged or had a tariff here")
        base = self.tariff_of(charger_id)
        q = quote(
            charger_id,
            base,
            self.forecast(charger_id, hour),
            now_ms,
            bounds=self.multiplier_bounds(),
            policy=self.policy,
            ceiling=self.ceiling_of(base.asset),
        )
        held = self.quotes.publish(q, now_ms)
        return held, held is q

    def forecast(self, charger_id: str, origin_ms: int) -> Forecast:
        if self._cache is None or self._cache[0] != origin_ms:
            self._cache = (origin_ms, self._forecasts(origin_ms))
        return self._cache[1].get(charger_id, Forecast("none", origin_ms))

    def _forecasts(self, origin_ms: int) -> dict[str, Forecast]:
        """Every charger's next 24 hours from one model fitted on the whole store's last weeks."""
        hours = self.window_weeks * WEEK_H
        since = origin_ms - hours * HOUR_MS
        sites = self.sites() if self.sites else None
        histories = list(load_histories(self.engine, since, origin_ms, sites=sites).values())
        if not histories:
            return {}
        fleet = fleet_of(histories, since, hours, known_from_first_session=True)
        try:
            pred, method = UtilizationForecaster().fit(fleet).predict(fleet, fleet.hours), "model"
        except InvalidInput:  # not enough history in the whole store to train on
            pred, method = seasonal_naive(fleet, fleet.hours), "seasonal-naive"
        known_week = ~np.isnan(fleet.utilization[:, -WEEK_H:]).any(axis=1)
        out = {}
        for i, cid in enumerate(fleet.charger_ids):
            row = pred[i]
            if not known_week[i] or np.isnan(row).any():
                out[cid] = Forecast("none", origin_ms)  # under a week of history: no forecast yet
            else:
                out[cid] = Forecast(method, origin_ms, tuple(permille(float(u)) for u in row[:HORIZON_H]))
        return out


@dataclass(frozen=True)
class RiskScore:
    charger_id: str
    risk_permille: int
    evidence: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"charger_id": self.charger_id, "risk_permille": self.risk_permille, "evidence": list(self.evidence)}


@dataclass(frozen=True)
class ScanReport:
    threshold_permille: int
    scores: tuple[RiskScore, ...]
    opened: tuple[Ticket, ...]
    rescored: tuple[Ticket, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "threshold_permille": self.threshold_permille,
            "scored": len(self.scores),
            "opened": [t.to_json() for t in self.opened],
            "rescored": [t.to_json() for t in self.rescored],
            "scores": [s.to_json() for s in self.scores],
        }


@dataclass
class MaintenanceService:
    engine: Any
    model: RiskModel | None = None
    clock: Callable[[], float] = time.time
    threshold_permille: int = RISK_THRESHOLD_PERMILLE

    def __post_init__(self) -> None:
        self.tickets = TicketBook(self.engine)

    def score(self, charger_ids: Sequence[str] | None = None) -> list[RiskScore]:
        """Each charger's risk of failing within the coming days, riskiest first. A charger whose
        every connector is down now has failed already: risk 1000."""
        model = self.model or default_risk_model()
        now_ms = int(self.clock() * 1000)
        histories = load_histories(self.engine, now_ms - 28 * DAY_MS, now_ms, charger_ids)
        scores = []
        for cid, h in histories.items():
            features = ChargerSignals(h).features_at(now_ms)
            named = dict(zip(FEATURES, features.tolist(), strict=True))
            if h.current_status and all(s in DOWN for s in h.current_status):
                risk, lines = 1000, ["every connector is Faulted or Unavailable now", *evidence(named)]
            else:
                risk, lines = int(model.risk_permille(features)[0]), evidence(named)
            scores.append(RiskScore(cid, risk, tuple(lines)))
        return sorted(scores, key=lambda s: (-s.risk_permille, s.charger_id))

    def scan(self, charger_ids: Sequence[str] | None = None) -> ScanReport:
        """Scores the chargers; those at or above the threshold get a ticket (or their open one
        gets the new score)."""
        now_ms = int(self.clock() * 1000)
        opened, rescored = [], []
        scores = self.score(charger_ids)
        for s in scores:
            if s.risk_permille >= self.threshold_permille:
                ticket, new = self.tickets.raise_for(s.charger_id, s.risk_permille, s.evidence, now_ms)
                (opened if new else rescored).append(ticket)
            else:
                again = self.tickets.rescore(s.charger_id, s.risk_permille, now_ms)
                if again is not None:
                    rescored.append(again)
        return ScanReport(self.threshold_permille, tuple(scores), tuple(opened), tuple(rescored))


def registry_sites(electra: Any, charger_ids: Sequence[str]) -> dict[str, str]:
    """Each registered charger's site from its StationRegistry position (see ``site_key``); a
    charger that is not registered is a site of its own."""
    from electra.errors import ContractReverted
    from electra.intelligence.forecast import site_key

    out = {}
    for cid in charger_ids:
        token_id = electra.stations.token_id_of(cid)
        if token_id == 0:
            continue
        try:
            record = electra.stations.station(token_id)
        except ContractReverted:
            continue
        out[cid] = site_key(record.latitude_e6, record.longitude_e6)
    return out


def pricing_for(
    engine: Any,
    electra: Any,
    clock: Callable[[], float] = time.time,
    sites: Callable[[], Mapping[str, str]] | None = None,
) -> PricingService:
    """Dynamic pricing on this deployment: the owners' tariffs from the store, the DAO's tariff
    ceilings and multiplier bounds from PaymentHub (with the platform's defaults until published),
    sites from StationRegistry unless ``sites`` is given."""
    from electra.payments.tariffs import TariffBook, governed_bounds

    assets = {"EUSD": electra.stablecoin.address, "ELC": electra.token.address}
    if sites is None:

        def sites() -> Mapping[str, str]:
            return registry_sites(electra, known_charger_ids(engine))

    return PricingService(
        engine,
        TariffBook(engine).get,
        governed_bounds(electra.payments.tariff_bounds, assets),
        governed_multiplier_bounds(lambda: published_multiplier_bounds(electra.payments)),
        clock=clock,
        sites=sites,
    )
