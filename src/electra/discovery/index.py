"""The geo index of chargers: k nearest with filters, ranked (electra.domain.ranking).

Positions live on the unit sphere as 3-D points, in a scipy ``cKDTree``: the straight-line
(chord) distance between two such points grows with the great-circle distance, so the tree's
nearest neighbours are the nearest on Earth, with no seam at the antimeridian and no distortion at
the poles. Attributes (power, connectors, price, status, reliability, boost) sit in numpy columns
next to the tree, so a filter is one vectorised mask over the candidates.

A query asks the tree for the nearest ``8k`` rows (at least 64), keeps those that pass the filters,
and asks for four times as many while fewer than the ranking pool (``3k``, at least 30) pass and
the search radius is not exhausted. The pool is ranked and the best ``k`` returned, each with why.

Changes: a status, price, boost or reliability change is written into its column in place. A new
charger, or one that moved, goes to a small pending list that every query scans with numpy; the
tree is rebuilt from scratch once that list holds :data:`REBUILD_AT` chargers. A deactivated or
removed charger is masked out at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from electra.domain.ranking import Availability, Candidate, Ranked, rank
from electra.errors import InvalidInput

EARTH_RADIUS_M = 6_371_008.8
REBUILD_AT = 4_096
_E6 = 1e-6


@dataclass(frozen=True)
class Listing:
    """A charger as discovery sees it: the chain's record plus live and commercial data."""

    token_id: int
    charger_id: str
    latitude_e6: int
    longitude_e6: int
    max_power_w: int
    connector_types: int  # StationRegistry's bitmask (docs/contracts.md)
    price_per_wh: int = 0  # energy price, base units of the tariff's asset per Wh
    asset: str = "EUSD"  # the tariff's asset
    public: bool = True
    active: bool = True
    availability: Availability = Availability.UNKNOWN
    reliability_permille: int = 1_000
    boost_points: int = 0
    owner: str = ""


@dataclass(frozen=True)
class Filters:
    connector_mask: int = 0  # any of these connector bits; 0: any connector
    min_power_w: int = 0
    max_price_per_wh: int | None = None  # in the listing's own asset
    available_now: bool = False
    public_only: bool = False
    radius_m: int | None = None


@dataclass(frozen=True)
class Found:
    listing: Listing
    ranked: Ranked

    def to_json(self) -> dict[str, object]:
        x, r = self.listing, self.ranked
        return {
            "rank": r.rank,
            "token_id": x.token_id,
            "charger_id": x.charger_id,
            "latitude": x.latitude_e6 / 1e6,
            "longitude": x.longitude_e6 / 1e6,
            "distance_m": r.candidate.distance_m,
            "max_power_w": x.max_power_w,
            "connector_types": x.connector_types,
            "price_per_wh": x.price_per_wh,
            "asset": x.asset,
            "public": x.public,
            "availability": x.availability.name.lower(),
            "reliability_permille": x.reliability_permille,
            "boost_points": x.boost_points,
            "score": r.score,
            "points": r.points,
            "why": r.why(),
        }


def unit_vectors(lat_e6: NDArray[np.int64] | list[int], lon_e6: NDArray[np.int64] | list[int]) -> NDArray[np.float64]:
    lat = np.radians(np.asarray(lat_e6, dtype=np.float64) * _E6)
    lon = np.radians(np.asarray(lon_e6, dtype=np.float64) * _E6)
    c = np.cos(lat)
    return np.column_stack((c * np.cos(lon), c * np.sin(lon), np.sin(lat)))


def chord_of(distance_m: float) -> float:
    return 2.0 * math.sin(min(math.pi, distance_m / EARTH_RADIUS_M) / 2.0)


def metres_of(chord: NDArray[np.float64]) -> NDArray[np.float64]:
    return 2.0 * EARTH_RADIUS_M * np.arcsin(np.minimum(1.0, chord / 2.0))


def check_position(latitude_e6: int, longitude_e6: int) -> None:
    if not (-90_000_000 <= latitude_e6 <= 90_000_000 and -180_000_000 <= longitude_e6 <= 180_000_000):
        raise InvalidInput(
            f"({latitude_e6 / 1e6}, {longitude_e6 / 1e6}) is not a position on Earth",
            "latitude -90..90, longitude -180..180, in degrees",
        )


class StationIndex:
    def __init__(self, listings: Iterable[Listing] = ()) -> None:
        self._listings: list[Listing | None] = []
        self._row: dict[int, int] = {}
        self._tree_rows = 0
        self._tree: cKDTree | None = None
        self._bulk(listings)

    def _bulk(self, listings: Iterable[Listing]) -> None:
        """Fills the columns from many listings at once (the last listing of a token id wins)."""
        xs = list({x.token_id: x for x in listings}.values())
        n = len(xs)
        lat = np.fromiter((x.latitude_e6 for x in xs), np.int64, n)
        lon = np.fromiter((x.longitude_e6 for x in xs), np.int64, n)
        bad = np.flatnonzero((np.abs(lat) > 90_000_000) | (np.abs(lon) > 180_000_000))
        if len(bad):
            x = xs[int(bad[0])]
            check_position(x.latitude_e6, x.longitude_e6)
        self._alloc(n)
        self._xyz[:] = unit_vectors(lat, lon) if n else self._xyz
        for name, field_ in (
            ("_power", "max_power_w"),
            ("_conn", "connector_types"),
            ("_price", "price_per_wh"),
            ("_rel", "reliability_permille"),
            ("_boost", "boost_points"),
        ):
            getattr(self, name)[:] = np.fromiter((getattr(x, field_) for x in xs), np.int64, n)
        self._public[:] = np.fromiter((x.public for x in xs), bool, n)
        self._live[:] = np.fromiter((x.active for x in xs), bool, n)
        self._avail[:] = np.fromiter((int(x.availability) for x in xs), np.int8, n)
        self._listings = list(xs)
        self._row = {x.token_id: r for r, x in enumerate(xs)}
        self._tree_rows = n
        self._tree = cKDTree(self._xyz) if n else None

    # -- columns ---------------------------------------------------------------------------------

    def _alloc(self, n: int) -> None:
        self._xyz = np.zeros((n, 3))
        self._power = np.zeros(n, dtype=np.int64)
        self._conn = np.zeros(n, dtype=np.int64)
        self._price = np.zeros(n, dtype=np.int64)
        self._public = np.zeros(n, dtype=bool)
        self._live = np.zeros(n, dtype=bool)  # active and present
        self._avail = np.zeros(n, dtype=np.int8)
        self._rel = np.zeros(n, dtype=np.int64)
        self._boost = np.zeros(n, dtype=np.int64)

    def _grow(self, need: int) -> None:
        cap = len(self._power)
        if need <= cap:
            return
        new = max(need, cap * 2, 1024)
        for name in ("_xyz", "_power", "_conn", "_price", "_public", "_live", "_avail", "_rel", "_boost"):
            old = getattr(self, name)
            arr = np.zeros((new, 3) if old.ndim == 2 else new, dtype=old.dtype)
            arr[: len(old)] = old
            setattr(self, name, arr)

    def _write(self, row: int, x: Listing) -> None:
        self._power[row] = x.max_power_w
        self._conn[row] = x.connector_types
        self._price[row] = x.price_per_wh
        self._public[row] = x.public
        self._live[row] = x.active
        self._avail[row] = int(x.availability)
        self._rel[row] = x.reliability_permille
        self._boost[row] = x.boost_points
        self._listings[row] = x

    def _append(self, x: Listing) -> None:
        check_position(x.latitude_e6, x.longitude_e6)
        row = len(self._listings)
        self._grow(row + 1)
        self._listings.append(None)
        self._xyz[row] = unit_vectors([x.latitude_e6], [x.longitude_e6])[0]
        self._write(row, x)
        old = self._row.get(x.token_id)
        if old is not None:
            self._live[old] = False
            self._listings[old] = None
        self._row[x.token_id] = row

    # -- changes ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._row)

    def token_ids(self) -> list[int]:
        return list(self._row)

    def get(self, token_id: int) -> Listing | None:
        row = self._row.get(token_id)
        return None if row is None else self._listings[row]

    def upsert(self, listing: Listing) -> None:
        row = self._row.get(listing.token_id)
        if row is not None:
            old = self._listings[row]
            if old is not None and (old.latitude_e6, old.longitude_e6) == (listing.latitude_e6, listing.longitude_e6):
                self._write(row, listing)
                return
        self._append(listing)
        if len(self._listings) - self._tree_rows >= REBUILD_AT:
            self.rebuild()

    def update(self, token_id: int, **changes: object) -> Listing | None:
        """Changes some fields of a listing (e.g. ``availability=...``); None if it is not indexed."""
        current = self.get(token_id)
        if current is None:
            return None
        new = replace(current, **changes)  # type: ignore[arg-type]
        self.upsert(new)
        return new

    def remove(self, token_id: int) -> None:
        row = self._row.pop(token_id, None)
        if row is not None:
            self._live[row] = False
            self._listings[row] = None

    def rebuild(self) -> None:
        """Compacts the columns (dropping removed and moved-away rows) and builds the tree anew."""
        keep = [r for r, x in enumerate(self._listings) if x is not None]
        listings = [self._listings[r] for r in keep]
        idx = np.asarray(keep, dtype=np.int64)
        cols = {
            name: getattr(self, name)[idx]
            for name in ("_xyz", "_power", "_conn", "_price", "_public", "_live", "_avail", "_rel", "_boost")
        }
        for name, arr in cols.items():
            setattr(self, name, arr)
        self._listings = list(listings)
        self._row = {x.token_id: r for r, x in enumerate(listings) if x is not None}
        self._tree_rows = len(listings)
        self._tree = cKDTree(self._xyz[: self._tree_rows]) if self._tree_rows else None

    # -- queries ---------------------------------------------------------------------------------

    def _mask(self, rows: NDArray[np.int64], f: Filters) -> NDArray[np.bool_]:
        m = self._live[rows].copy()
        if f.connector_mask:
            m &= (self._conn[rows] & f.connector_mask) != 0
        if f.min_power_w:
            m &= self._power[rows] >= f.min_power_w
        if f.max_price_per_wh is not None:
            m &= self._price[rows] <= f.max_price_per_wh
        if f.available_now:
            m &= self._avail[rows] == int(Availability.AVAILABLE)
        if f.public_only:
            m &= self._public[rows]
        return m

    def nearby(self, latitude_e6: int, longitude_e6: int, k: int = 10, filters: Filters | None = None) -> list[Found]:
        """The best ``k`` chargers near the position that pass ``filters``, best first."""
        if not 1 <= k <= 1_000:
            raise InvalidInput(f"k={k}", "ask for 1 to 1000 chargers")
        check_position(latitude_e6, longitude_e6)
        f = filters or Filters()
        if f.radius_m is not None and f.radius_m <= 0:
            raise InvalidInput(f"radius {f.radius_m} m", "give a positive radius in metres")
        p = unit_vectors([latitude_e6], [longitude_e6])[0]
        bound = chord_of(f.radius_m) if f.radius_m is not None else math.inf
        pool = max(3 * k, 30)
        rows, chords = self._tree_candidates(p, f, pool, bound)
        pending = np.arange(self._tree_rows, len(self._listings), dtype=np.int64)
        if len(pending):
            d = np.linalg.norm(self._xyz[pending] - p, axis=1)
            ok = self._mask(pending, f) & (d <= bound)
            rows, chords = np.concatenate((rows, pending[ok])), np.concatenate((chords, d[ok]))
        if len(rows) > pool:
            nearest = np.argsort(chords, kind="stable")[:pool]
            rows, chords = rows[nearest], chords[nearest]
        metres = metres_of(chords)
        candidates = []
        for r, dm in zip(rows.tolist(), metres.tolist(), strict=True):
            x = self._listings[r]
            assert x is not None
            candidates.append(
                Candidate(
                    x.token_id, int(dm), x.price_per_wh, x.availability, x.reliability_permille, x.boost_points, x.asset
                )
            )
        by_token = {x.token_id: x for r in rows.tolist() if (x := self._listings[r]) is not None}
        return [Found(by_token[c.candidate.token_id], c) for c in rank(candidates)[:k]]

    def _tree_candidates(
        self, p: NDArray[np.float64], f: Filters, pool: int, bound: float
    ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        empty = (np.zeros(0, dtype=np.int64), np.zeros(0))
        if self._tree is None:
            return empty
        n = self._tree_rows
        ask = min(n, max(64, 8 * pool // 3))
        while True:
            d, i = self._tree.query(p, k=max(ask, 2), distance_upper_bound=bound)
            d, i = np.atleast_1d(d), np.atleast_1d(i)
            found = i < n
            rows, chords = i[found].astype(np.int64), d[found]
            ok = self._mask(rows, f)
            rows, chords = rows[ok], chords[ok]
            exhausted = ask >= n or not found.all()
            if len(rows) >= pool or exhausted:
                return rows, chords
            ask = min(n, ask * 4)
