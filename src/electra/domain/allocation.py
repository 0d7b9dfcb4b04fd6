"""Sharing a site's grid connection among its charging sessions: max-min fair water-filling.

A site's limit is either one power budget (watts) or a current per phase (amperes, on L1, L2, L3).
Each session draws on some of those resources: a 3-phase AC session draws the same current on all
three phases, a 1-phase one on its phase, a DC charger's input on all three; with a power budget
every session draws on the one resource. Each session has a ceiling (the least of the vehicle's
max rate, the charger's and connector's capability) and a floor below which charging cannot run
(OCPP's minimum charging rate; 6 A per IEC 61851).

The result is max-min fair: every session's rate is raised together until it reaches its ceiling
or one of its resources is used up, then the others go on. So no session gets less than another
unless it is at its own ceiling or shares a resource that is full. If a session's fair share falls
below its floor it is paused (0) — the latest arrival first, so that earlier sessions keep going —
and the rest are shared again: a conservative answer that never exceeds the limit. Integer units
only (W or A, or deci-amperes if a caller wants finer steps).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from electra.errors import InvalidInput


@dataclass(frozen=True)
class Demand:
    key: str  # e.g. "CP-1/2": charger and connector
    ceiling: int  # the most this session can take
    floor: int = 0  # below this it cannot charge: then it gets 0
    uses: tuple[str, ...] = ("P",)  # resources it draws on: ("P",) power, or phases ("L1", "L2", "L3")
    arrived_ms: int = 0  # earlier sessions keep charging when not all can

    def __post_init__(self) -> None:
        if self.ceiling < 0 or self.floor < 0 or not self.uses:
            raise InvalidInput(
                f"demand {self.key}: ceiling and floor must be >= 0 and it must use a resource", "fix the demand"
            )


def share(limits: Mapping[str, int], demands: Sequence[Demand]) -> dict[str, int]:
    """Each demand's rate; for every resource the rates of the demands that use it sum to at most
    its limit."""
    for r, v in limits.items():
        if v < 0:
            raise InvalidInput(f"limit of {r} is {v}", "limits are >= 0")
    unknown = {r for d in demands for r in d.uses} - set(limits)
    if unknown:
        raise InvalidInput(f"demands use {sorted(unknown)}, which the site has no limit for", "give every limit")
    # A session that cannot run even alone (ceiling below its floor) is paused from the start.
    active = sorted((d for d in demands if d.ceiling > 0 and d.ceiling >= d.floor), key=lambda d: (d.arrived_ms, d.key))
    while True:
        rates = _water_fill(limits, active)
        starved = [d for d in active if rates[d.key] < d.floor]
        if not starved:
            break
        latest = starved[-1]  # the latest arrival among those below their floor is paused
        active = [d for d in active if d is not latest]
    out = {d.key: 0 for d in demands}
    out.update(rates)
    return out


def _water_fill(limits: Mapping[str, int], demands: Sequence[Demand]) -> dict[str, int]:
    rates = {d.key: 0 for d in demands}
    free = dict(limits)
    rising = [d for d in demands if d.ceiling > 0]
    while rising:
        # The largest equal raise every rising demand can take: bounded by each resource's free
        # capacity shared among the rising demands on it, and by each demand's headroom.
        users: dict[str, int] = {}
        for d in rising:
            for r in d.uses:
                users[r] = users.get(r, 0) + 1
        step = min(min(free[r] // n for r, n in users.items()), min(d.ceiling - rates[d.key] for d in rising))
        if step > 0:
            for d in rising:
                rates[d.key] += step
                for r in d.uses:
                    free[r] -= step
        else:
            # Less than one unit each is left on some resource: hand out single units in arrival
            # order where every resource of the demand still has one.
            for d in rising:
                if rates[d.key] < d.ceiling and all(free[r] > 0 for r in d.uses):
                    rates[d.key] += 1
                    for r in d.uses:
                        free[r] -= 1
        rising = [d for d in rising if rates[d.key] < d.ceiling and all(free[r] > 0 for r in d.uses)]
    return rates
