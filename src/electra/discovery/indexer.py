"""Keeps the station index in step with the chain and the central system.

The chain says which chargers exist, where, what they can do, who holds them and whether they are
active: StationRegistry's events (``StationRegistered``, ERC-721 ``Transfer``,
``StationDeactivated``/``Activated``, ``StationSuspensionChanged``, ``StationMetadataUpdated``).
:meth:`StationIndexer.sync` reads the events after its cursor block and re-reads each touched
charger's record (so events applied in any order give the chain's current state). The store says
the rest: live availability from OCPP StatusNotification (``connector_states``), the owner's
tariff and lease (public or not), and reliability from the charger's recent sessions and faults
(:meth:`refresh_live`, cheap enough to run every few seconds).

Reliability, in permille, is the predictive-maintenance score of the same data
(:func:`electra.intelligence.maintenance.reliability_permille`: recent sessions, faults, connector
states). The staking boost comes from StakingManager (``discoveryBoostBps``), re-read for chargers
whose stake, holder or the tiers changed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import requests
from sqlalchemy import Engine, select
from web3.exceptions import Web3Exception

from electra.chain.bindings import StationRecord, StationRegistryBinding
from electra.discovery.index import Listing, StationIndex
from electra.domain.ranking import Availability
from electra.errors import ChainError
from electra.payments.tariffs import DEFAULT_TARIFF
from electra.store.models import ConnectorState, LeaseRecord, TariffRecord

LOG = logging.getLogger(__name__)
EVENTS = (
    "StationRegistered",
    "Transfer",
    "StationDeactivated",
    "StationActivated",
    "StationSuspensionChanged",
    "StationMetadataUpdated",
)
STAKING_EVENTS = ("Staked", "UnstakeRequested", "Withdrawn", "Slashed")


def boost_points(boost_bps: int) -> int:
    """A staking tier's discovery boost as ranking points: a third of its basis points, so the top
    default tier (3,000 bps) gets the full 1,000."""
    return min(1_000, max(0, boost_bps) // 3)


def listing_of(record: StationRecord) -> Listing:
    return Listing(
        token_id=record.token_id,
        charger_id=record.charger_id,
        latitude_e6=record.latitude_e6,
        longitude_e6=record.longitude_e6,
        max_power_w=record.max_power_w,
        connector_types=record.connector_types,
        active=record.active,
        owner=record.owner,
    )


class StationIndexer:
    def __init__(
        self,
        stations: StationRegistryBinding,
        engine: Engine | None = None,
        index: StationIndex | None = None,
        from_block: int = 0,
        clock: Callable[[], float] = time.time,
        staking: Any = None,
        max_age_s: float = 5.0,
        reliability_every_s: float = 300.0,
    ) -> None:
        self.stations = stations
        self.engine = engine
        self.index = index or StationIndex()
        self.cursor = from_block - 1  # the last block whose events are applied
        self.clock = clock
        self.staking = staking  # StakingBinding, when StakingManager is deployed
        self.reliability_every_s = reliability_every_s
        self._reliability_at: float | None = None
        self.max_age_s = max_age_s
        self._synced_at: float | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_electra(cls, electra: Any, engine: Engine | None, **kw: Any) -> StationIndexer:
        """An indexer over this deployment, from its first block, with StakingManager if deployed."""
        from electra.errors import DeploymentMissing

        try:
            staking = electra.staking
        except DeploymentMissing:
            staking = None
        return cls(electra.stations, engine, from_block=electra.deployment.block_number, staking=staking, **kw)

    def fresh(self) -> StationIndex:
        """The index, synced with the chain and the store if the last sync is older than
        ``max_age_s`` (one caller syncs; the others use the index as it is meanwhile)."""
        now = self.clock()
        if self._synced_at is None or now - self._synced_at >= self.max_age_s:
            if self._lock.acquire(blocking=self._synced_at is None):
                try:
                    self.sync()
                    self.refresh_live()
                    self._synced_at = now
                except (ChainError, Web3Exception, requests.RequestException) as exc:
                    # The chain is down: answer from the index as it is and try again next time.
                    LOG.warning("discovery index not synced: %s", exc)
                finally:
                    self._lock.release()
        return self.index

    def sync(self) -> int:
        """Applies the registry's events up to the latest block; returns how many chargers changed."""
        latest = int(self.stations.client.w3.eth.block_number)
        if latest <= self.cursor:
            return 0
        touched: set[int] = set()
        for name in EVENTS:
            event = getattr(self.stations.contract.events, name)
            for log in event().get_logs(from_block=self.cursor + 1, to_block=latest):
                touched.add(int(log["args"]["tokenId"]))
        staked: set[int] = set(touched)  # a new holder has a stake of its own (or none)
        if self.staking is not None:
            for name in STAKING_EVENTS:
                event = getattr(self.staking.contract.events, name)
                for log in event().get_logs(from_block=self.cursor + 1, to_block=latest):
                    staked.add(int(log["args"]["chargerId"]))
            if self.staking.contract.events.TiersChanged().get_logs(from_block=self.cursor + 1, to_block=latest):
                staked |= set(self.index.token_ids())  # new tiers: every boost may change
        for token_id in sorted(touched):
            listing = listing_of(self.stations.station(token_id))
            old = self.index.get(token_id)
            if old is not None:  # keep what the store told us until the next refresh
                listing = replace(
                    listing,
                    price_per_wh=old.price_per_wh,
                    asset=old.asset,
                    public=old.public,
                    availability=old.availability,
                    reliability_permille=old.reliability_permille,
                    boost_points=old.boost_points,
                )
            self.index.upsert(listing)
        if self.staking is not None:
            for token_id in sorted(staked):
                if self.index.get(token_id) is not None:
                    self.index.update(token_id, boost_points=boost_points(self.staking.discovery_boost_bps(token_id)))
        self.cursor = latest
        if touched:
            self.refresh_live(touched)
        return len(touched | staked)

    def refresh_live(self, only: set[int] | None = None) -> None:
        """Availability, tariff and lease from the store into the index; reliability (the maintenance
        model's score, :func:`electra.intelligence.maintenance.reliability_permille`) every
        ``reliability_every_s`` or for the chargers in ``only``."""
        if self.engine is None:
            return
        by_charger = {}
        for token_id in only if only is not None else self.index.token_ids():
            x = self.index.get(token_id)
            if x is not None:
                by_charger[x.charger_id] = x
        if not by_charger:
            return
        ids = list(by_charger)
        statuses: dict[str, list[str]] = {}
        with self.engine.connect() as conn:
            for cid, status in conn.execute(
                select(ConnectorState.charger_id, ConnectorState.status).where(
                    ConnectorState.charger_id.in_(ids), ConnectorState.connector_id > 0
                )
            ):
                statuses.setdefault(cid, []).append(status)
            tariffs = {
                cid: (asset, int(price))
                for cid, asset, price in conn.execute(
                    select(TariffRecord.charger_id, TariffRecord.asset, TariffRecord.energy_price_per_wh).where(
                        TariffRecord.charger_id.in_(ids)
                    )
                )
            }
            public = {
                cid: bool(p)
                for cid, p in conn.execute(
                    select(LeaseRecord.charger_id, LeaseRecord.public).where(LeaseRecord.charger_id.in_(ids))
                )
            }
        for cid, x in by_charger.items():
            states = statuses.get(cid, [])
            if not states:
                availability = Availability.UNKNOWN
            elif "Available" in states:
                availability = Availability.AVAILABLE
            else:
                availability = Availability.OCCUPIED
            asset, price = tariffs.get(cid, (DEFAULT_TARIFF.asset, DEFAULT_TARIFF.energy_price_per_wh))
            self.index.upsert(
                replace(
                    x,
                    availability=availability,
                    price_per_wh=price,
                    asset=asset,
                    public=bool(public.get(cid, True)),
                )
            )
        now = self.clock()
        if only is not None or self._reliability_at is None or now - self._reliability_at >= self.reliability_every_s:
            from electra.intelligence.maintenance import reliability_permille

            for cid, score in reliability_permille(self.engine, ids, self.clock).items():
                token_id = by_charger[cid].token_id
                self.index.update(token_id, reliability_permille=score)
            if only is None:
                self._reliability_at = now
