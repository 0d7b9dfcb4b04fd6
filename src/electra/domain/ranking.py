"""How Electra ranks chargers near a driver (docs/discovery.md). Pure: no I/O.

A candidate gets points in five parts, each 0..1000, and a weighted total (weights sum to 100):

| part | points | weight |
| --- | --- | ---: |
| distance | ``1000 * HALF_M / (HALF_M + d)``: 1000 on the spot, 500 at 2 km, falling smoothly | 45 |
| price | ``1000 * cheapest / price``, cheapest of the candidates in the same asset (free: 1000) | 20 |
| availability | 1000 a connector is Available now, 500 status unknown, 0 occupied or out of order | 15 |
| reliability | permille: uptime share of the last days times the share of sessions that did not fail | 10 |
| staking | the host's staking tier boost, in points (capped at 1000) | 10 |

The total is ``sum(points * weight) // 100``; ties go to the closer charger, then the lower token
id. Every part is monotone: with everything else equal, a closer, cheaper, available, more reliable
or more boosted charger never ranks lower. Everything is integer arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

HALF_M = 2_000
MAX_POINTS = 1_000
WEIGHTS = {"distance": 45, "price": 20, "availability": 15, "reliability": 10, "staking": 10}


class Availability(IntEnum):
    OCCUPIED = 0  # no connector is Available (charging, faulted, unavailable)
    UNKNOWN = 1  # the charger has not reported a status
    AVAILABLE = 2  # at least one connector is Available now


_AVAILABILITY_POINTS = {Availability.OCCUPIED: 0, Availability.UNKNOWN: 500, Availability.AVAILABLE: 1_000}


@dataclass(frozen=True)
class Candidate:
    token_id: int
    distance_m: int
    price_per_wh: int  # base units of the tariff's asset per Wh (the tariff's energy price)
    availability: Availability
    reliability_permille: int  # 0..1000
    boost_points: int  # the staking tier's discovery boost
    asset: str = ""  # the tariff's asset: prices are compared within one asset only


@dataclass(frozen=True)
class Ranked:
    candidate: Candidate
    rank: int  # 1 = best
    score: int  # 0..1000
    points: dict[str, int]  # each part's points, 0..1000

    def why(self) -> str:
        parts = ", ".join(f"{k} {v}x{WEIGHTS[k]}%" for k, v in self.points.items())
        return f"#{self.rank} with {self.score} points: {parts}"


def distance_points(distance_m: int) -> int:
    return MAX_POINTS * HALF_M // (HALF_M + max(0, distance_m))


def price_points(price: int, cheapest: int) -> int:
    if price <= 0 or price <= cheapest:
        return MAX_POINTS
    return MAX_POINTS * max(0, cheapest) // price


def rank(candidates: Sequence[Candidate]) -> list[Ranked]:
    """The candidates, best first, each with its points."""
    if not candidates:
        return []
    cheapest: dict[str, int] = {}
    for c in candidates:
        cheapest[c.asset] = min(cheapest.get(c.asset, c.price_per_wh), max(0, c.price_per_wh))
    scored = []
    for c in candidates:
        points = {
            "distance": distance_points(c.distance_m),
            "price": price_points(c.price_per_wh, cheapest[c.asset]),
            "availability": _AVAILABILITY_POINTS[c.availability],
            "reliability": min(MAX_POINTS, max(0, c.reliability_permille)),
            "staking": min(MAX_POINTS, max(0, c.boost_points)),
        }
        score = sum(points[k] * w for k, w in WEIGHTS.items()) // 100
        scored.append((-score, c.distance_m, c.token_id, c, points, score))
    scored.sort(key=lambda t: (t[0], t[1], t[2]))
    return [Ranked(c, i, score, points) for i, (_, _, _, c, points, score) in enumerate(scored, 1)]
