"""Site load balancing: a site's grid connection shared among its charging sessions with OCPP
charging profiles (TxProfile in 1.6 and 2.0.1), recomputed as sessions start and stop.

**Sites.** A site has one limit: a power budget (``limit_w``) or a current per phase
(``limit_a`` on each of L1, L2, L3). Each of its chargers draws on some phases (``L1L2L3`` for a
three-phase charger, ``L2`` for a single-phase one on L2) and can take at most ``max_power_w``.

**Sharing** (:func:`electra.domain.allocation.share`): max-min fair over the active sessions;
each session's ceiling is what its charger can take, lowered to what the vehicle actually draws
when it draws clearly less than its share (the vehicle's own max rate, seen in the meter values),
so the rest goes to the others; its floor is the site's minimum current (6 A by default: IEC
61851). A session that cannot get its floor is paused (limit 0), latest arrival first.

**Sending.** Every change goes out as a TxProfile for that transaction: decreases first, and only
once every decrease was accepted do increases follow, so the sum never overshoots between the two.
A charger of the site gets a TxDefaultProfile of 0 when it is first seen, so a new session waits
for its share instead of drawing at full power until the next round. A charger that rejects a
profile (or does not answer) is treated as drawing its full ceiling from then on (uncontrolled),
and the others share what is left: conservative, never above the limit as long as the
uncontrolled sessions fit in it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from electra.domain.allocation import Demand, share
from electra.errors import ElectraError, InvalidInput
from electra.store.models import MeterValueRecord, SessionRecord, SiteChargerRecord, SiteRecord

LOG = logging.getLogger(__name__)
PHASES = ("L1", "L2", "L3")
DRAWS_LESS = 85  # percent of its share below which a session is taken to be limited by its vehicle
HEADROOM = 110  # percent of what it draws that such a session keeps as its ceiling


@dataclass(frozen=True)
class Site:
    site_id: str
    name: str
    limit_w: int | None = None
    limit_a: int | None = None
    voltage_v: int = 230
    min_current_a: int = 6

    def __post_init__(self) -> None:
        if (self.limit_w is None) == (self.limit_a is None):
            raise InvalidInput(f"site {self.site_id}: give a power limit or a current limit", "--limit-kw or --limit-a")
        if (self.limit_w or 0) < 0 or (self.limit_a or 0) < 0 or self.voltage_v <= 0 or self.min_current_a < 0:
            raise InvalidInput(f"site {self.site_id}: limits, voltage and minimum current must be positive")

    @property
    def unit(self) -> str:
        return "W" if self.limit_w is not None else "A"

    def limits(self) -> dict[str, int]:
        if self.limit_w is not None:
            return {"P": self.limit_w}
        assert self.limit_a is not None
        return dict.fromkeys(PHASES, self.limit_a)


@dataclass(frozen=True)
class SiteCharger:
    charger_id: str
    site_id: str
    phases: tuple[str, ...] = PHASES
    max_power_w: int = 22_000

    def ceiling(self, site: Site) -> int:
        if site.unit == "W":
            return self.max_power_w
        return self.max_power_w // (site.voltage_v * len(self.phases))

    def floor(self, site: Site) -> int:
        return site.min_current_a * site.voltage_v * len(self.phases) if site.unit == "W" else site.min_current_a

    def uses(self, site: Site) -> tuple[str, ...]:
        return ("P",) if site.unit == "W" else self.phases


def parse_phases(text: str) -> tuple[str, ...]:
    t = text.upper().replace(",", "").replace(" ", "")
    found = tuple(p for p in PHASES if p in t)
    if not found or "".join(found) != t:
        raise InvalidInput(f"phases {text!r}", "write L1L2L3 for three-phase or L1, L2 or L3 for one phase")
    return found


class SiteBook:
    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock

    def put_site(self, site: Site) -> Site:
        with Session(self.engine) as s, s.begin():
            s.merge(
                SiteRecord(
                    site_id=site.site_id,
                    name=site.name,
                    limit_w=site.limit_w,
                    limit_a=site.limit_a,
                    voltage_v=site.voltage_v,
                    min_current_a=site.min_current_a,
                    updated_at_ms=int(self.clock() * 1000),
                )
            )
        return site

    def put_charger(self, charger: SiteCharger) -> SiteCharger:
        if self.site(charger.site_id) is None:
            raise InvalidInput(f"no site {charger.site_id}", "create it with `electra site create`")
        with Session(self.engine) as s, s.begin():
            s.merge(
                SiteChargerRecord(
                    charger_id=charger.charger_id,
                    site_id=charger.site_id,
                    phases="".join(charger.phases),
                    max_power_w=charger.max_power_w,
                )
            )
        return charger

    def site(self, site_id: str) -> Site | None:
        with Session(self.engine) as s:
            r = s.get(SiteRecord, site_id)
            return None if r is None else Site(r.site_id, r.name, r.limit_w, r.limit_a, r.voltage_v, r.min_current_a)

    def sites(self) -> list[Site]:
        with Session(self.engine) as s:
            return [
                Site(r.site_id, r.name, r.limit_w, r.limit_a, r.voltage_v, r.min_current_a)
                for r in s.scalars(select(SiteRecord).order_by(SiteRecord.site_id))
            ]

    def chargers(self, site_id: str) -> list[SiteCharger]:
        with Session(self.engine) as s:
            rows = s.scalars(
                select(SiteChargerRecord)
                .where(SiteChargerRecord.site_id == site_id)
                .order_by(SiteChargerRecord.charger_id)
            )
            return [SiteCharger(r.charger_id, r.site_id, parse_phases(r.phases), r.max_power_w) for r in rows]


@dataclass(frozen=True)
class ActiveSession:
    session_id: int
    charger_id: str
    connector_id: int
    transaction_uid: str
    started_at_ms: int
    drawn_w: int | None  # from its last two meter readings, None before it has two


class ProfileSender(Protocol):
    async def set_tx_profile(
        self, charger_id: str, connector_id: int, transaction_id: str, limit: int, unit: str = "A", phases: int = 3
    ) -> dict[str, Any]: ...

    async def set_default_profile(
        self, charger_id: str, connector_id: int, limit: int, unit: str = "A"
    ) -> dict[str, Any]: ...


@dataclass
class BalanceReport:
    sites: int = 0
    sessions: int = 0
    sent: int = 0
    rejected: list[str] = field(default_factory=list)
    allocations: dict[str, dict[int, int]] = field(default_factory=dict)  # site -> session -> limit


@dataclass
class _Sent:
    limit: int
    at_ms: int


class LoadBalancer:
    def __init__(
        self, engine: Engine, sender: ProfileSender | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        """Without a ``sender`` it only plans (`electra site show`)."""
        self.engine = engine
        self.sender = sender
        self.sites = SiteBook(engine, clock)
        self.clock = clock
        self._sent: dict[int, _Sent] = {}  # session id -> the last limit it accepted
        self._uncontrolled: set[int] = set()  # sessions whose charger refused a profile
        self._defaulted: set[str] = set()  # chargers that hold the TxDefaultProfile of 0
        self._no_default: set[str] = set()  # chargers that refused it

    def active_sessions(self, charger_ids: list[str]) -> list[ActiveSession]:
        if not charger_ids:
            return []
        with Session(self.engine) as s:
            rows = s.execute(
                select(
                    SessionRecord.id,
                    SessionRecord.charger_id,
                    SessionRecord.connector_id,
                    SessionRecord.transaction_uid,
                    SessionRecord.started_at_ms,
                ).where(SessionRecord.charger_id.in_(charger_ids), SessionRecord.status == "active")
            ).all()
            out = []
            for sid, cid, conn, uid, started in rows:
                last = s.execute(
                    select(MeterValueRecord.timestamp_ms, MeterValueRecord.register_wh)
                    .where(MeterValueRecord.session_id == sid)
                    .order_by(MeterValueRecord.timestamp_ms.desc())
                    .limit(2)
                ).all()
                drawn = None
                if len(last) == 2 and last[0][0] > last[1][0]:
                    sent = self._sent.get(sid)
                    if sent is None or last[1][0] >= sent.at_ms:  # both readings under the current limit
                        drawn = (last[0][1] - last[1][1]) * 3_600_000 // (last[0][0] - last[1][0])
                out.append(ActiveSession(int(sid), cid, int(conn), uid, int(started), drawn))
        return out

    def plan(self, site: Site, chargers: list[SiteCharger], sessions: list[ActiveSession]) -> dict[int, int]:
        """Each session's limit, in the site's unit."""
        by_id = {c.charger_id: c for c in chargers}
        limits = site.limits()
        demands = []
        for x in sessions:
            c = by_id[x.charger_id]
            ceiling = c.ceiling(site)
            sent = self._sent.get(x.session_id)
            if x.session_id in self._uncontrolled:
                for r in c.uses(site):  # it draws what it wants: take it off the limit
                    limits[r] = max(0, limits[r] - ceiling)
                continue
            if sent is not None and x.drawn_w is not None and sent.limit > 0:
                drawn = x.drawn_w if site.unit == "W" else x.drawn_w // (site.voltage_v * len(c.phases))
                if drawn * 100 < sent.limit * DRAWS_LESS:
                    ceiling = min(ceiling, max(c.floor(site), -(-drawn * HEADROOM // 100)))
            demands.append(Demand(str(x.session_id), ceiling, c.floor(site), c.uses(site), x.started_at_ms))
        rates = share(limits, demands)
        return {int(k): v for k, v in rates.items()}

    async def run_once(self) -> BalanceReport:
        if self.sender is None:
            raise InvalidInput("this load balancer only plans", "give it the central system's commands to send")
        report = BalanceReport()
        now_ms = int(self.clock() * 1000)
        live: set[int] = set()
        for site in self.sites.sites():
            chargers = self.sites.chargers(site.site_id)
            if not chargers:
                continue
            report.sites += 1
            await self._defaults(site, chargers, report)
            sessions = self.active_sessions([c.charger_id for c in chargers])
            report.sessions += len(sessions)
            for x in sessions:  # no TxDefaultProfile of 0 in force: it may draw anything
                if x.charger_id in self._no_default:
                    self._uncontrolled.add(x.session_id)
            plan = self.plan(site, chargers, sessions)
            report.allocations[site.site_id] = plan
            by_charger = {c.charger_id: c for c in chargers}
            changes = [
                (x, plan[x.session_id])
                for x in sessions
                if x.session_id in plan
                and (self._sent.get(x.session_id) is None or self._sent[x.session_id].limit != plan[x.session_id])
            ]
            down = [
                (x, n)
                for x, n in changes
                if self._sent.get(x.session_id) is not None and n < self._sent[x.session_id].limit
            ]
            up = [(x, n) for x, n in changes if (x, n) not in down]
            ok = await self._send(site, by_charger, down, now_ms, report)
            if ok:  # only raise once every lowering is in force
                await self._send(site, by_charger, up, now_ms, report)
            live |= {x.session_id for x in sessions}
        for sid in list(self._sent):
            if sid not in live:  # the session ended: its TxProfile went with it
                del self._sent[sid]
        self._uncontrolled &= live
        return report

    async def _defaults(self, site: Site, chargers: list[SiteCharger], report: BalanceReport) -> None:
        for c in chargers:
            if c.charger_id in self._defaulted:
                continue
            assert self.sender is not None
            try:
                answer = await self.sender.set_default_profile(c.charger_id, 0, 0, site.unit)
            except ElectraError:
                continue  # not connected yet: next round
            if answer.get("status") == "Accepted":
                self._defaulted.add(c.charger_id)
                self._no_default.discard(c.charger_id)
            else:
                self._no_default.add(c.charger_id)
                report.rejected.append(f"{c.charger_id}: TxDefaultProfile {answer.get('status')}")

    async def _send(
        self,
        site: Site,
        chargers: dict[str, SiteCharger],
        items: list[tuple[ActiveSession, int]],
        now_ms: int,
        report: BalanceReport,
    ) -> bool:
        all_ok = True
        for x, limit in items:
            c = chargers[x.charger_id]
            assert self.sender is not None
            try:
                answer = await self.sender.set_tx_profile(
                    x.charger_id, x.connector_id, x.transaction_uid, limit, site.unit, len(c.phases)
                )
                accepted = answer.get("status") == "Accepted"
            except ElectraError as exc:
                LOG.warning("load balancing: %s", exc.one_line())
                accepted = False
            if accepted:
                self._sent[x.session_id] = _Sent(limit, now_ms)
                report.sent += 1
            else:
                all_ok = False
                self._uncontrolled.add(x.session_id)
                report.rejected.append(
                    f"{x.charger_id} session {x.session_id}: TxProfile of {limit} {site.unit} refused"
                )
        return all_ok


async def balance_forever(
    balancer: LoadBalancer, stop: Any, every_s: float = 2.0, report: Callable[[str], None] | None = None
) -> None:
    """Runs :meth:`LoadBalancer.run_once` every ``every_s`` until ``stop`` (an asyncio.Event) is set;
    store or charger errors are reported and retried next round, never raised."""
    import asyncio
    import contextlib

    while not stop.is_set():
        try:
            r = await balancer.run_once()
            for line in r.rejected:
                if report is not None:
                    report(f"load balancing: {line}; treated as uncontrolled")
        except (ElectraError, OSError) as exc:
            LOG.warning("load balancing round failed: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
