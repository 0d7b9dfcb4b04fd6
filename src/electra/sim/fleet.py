"""Running a fleet: N simulated chargers (1.6 and 2.0.1 mixed) in one asyncio loop, driven by a
:class:`~electra.sim.scenario.Scenario`: vehicles arrive and charge, chargers go offline and fault.

At the end (the scenario's duration, or a stop request such as Ctrl-C) every session still running
is ended (reason Local), the chargers get a short while to deliver their queues, and a
:class:`FleetSummary` says what happened.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_lib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from electra.sim.base import ChargerIdentity, SimCharger
from electra.sim.charger import make_charger
from electra.sim.clock import SimClock
from electra.sim.scenario import ChargerPlan, FaultPlan, Scenario, VehiclePlan, charger_account


@dataclass(frozen=True)
class SessionSummary:
    charger_id: str
    version: str
    connector_id: int
    id_tag: str
    started_ms: int
    energy_wh: int
    stop_reason: str | None
    completed: bool


@dataclass
class FleetSummary:
    chargers: int
    versions: dict[str, int]
    vehicles: int
    sessions: list[SessionSummary] = field(default_factory=list)
    sessions_rejected: int = 0
    arrivals_turned_away: int = 0
    messages_sent: Counter[str] = field(default_factory=Counter)  # by action
    messages_by_version: Counter[str] = field(default_factory=Counter)
    offline_periods: int = 0
    faults: int = 0
    boots: int = 0
    errors: list[str] = field(default_factory=list)
    real_s: float = 0.0
    sim_s: float = 0.0
    interrupted: bool = False

    @property
    def sessions_started(self) -> int:
        return len(self.sessions)

    @property
    def sessions_completed(self) -> int:
        return sum(1 for s in self.sessions if s.completed)

    @property
    def energy_wh(self) -> int:
        return sum(s.energy_wh for s in self.sessions)

    def to_json(self) -> dict[str, Any]:
        return {
            "chargers": self.chargers,
            "versions": self.versions,
            "vehicles": self.vehicles,
            "sessions_started": self.sessions_started,
            "sessions_completed": self.sessions_completed,
            "sessions_rejected": self.sessions_rejected,
            "arrivals_turned_away": self.arrivals_turned_away,
            "energy_wh": self.energy_wh,
            "messages_sent": sum(self.messages_sent.values()),
            "messages_by_action": dict(sorted(self.messages_sent.items())),
            "offline_periods": self.offline_periods,
            "faults": self.faults,
            "boots": self.boots,
            "errors": self.errors,
            "real_s": round(self.real_s, 3),
            "sim_s": round(self.sim_s, 3),
            "interrupted": self.interrupted,
            "sessions": [s.__dict__ for s in self.sessions],
        }


class Fleet:
    """The chargers of a scenario, connected to the central system at ``url``."""

    def __init__(
        self,
        scenario: Scenario,
        url: str,
        clock: SimClock,
        *,
        passwords: dict[str, str] | None = None,
        ssl: ssl_lib.SSLContext | None = None,
        response_timeout_s: float = 10.0,
        config: dict[str, str] | None = None,
    ) -> None:
        self.scenario = scenario
        self.clock = clock
        self.chargers: list[SimCharger] = [
            make_charger(
                plan.version,
                self._identity(plan),
                url,
                clock,
                password=(passwords or {}).get(plan.charger_id),
                ssl=ssl,
                response_timeout_s=response_timeout_s,
                config=config,
            )
            for plan in scenario.chargers
        ]
        self.turned_away = 0
        self.offline_periods = 0
        self.faults = 0

    def _identity(self, plan: ChargerPlan) -> ChargerIdentity:
        return ChargerIdentity(
            plan.charger_id,
            bytes(charger_account(self.scenario.seed, plan.index).key),
            connectors=plan.connectors,
            max_power_w=plan.max_power_w,
            current_type=plan.current_type,
            model=f"Sim{plan.max_power_w // 1000}{plan.current_type}",
        )

    async def run(self, stop: asyncio.Event | None = None, flush_timeout_s: float = 5.0) -> FleetSummary:
        """Runs the scenario until its duration has passed (simulated) or ``stop`` is set.

        It can run again (another round of the same timeline, from now); each summary covers its round.
        """
        stop = stop or asyncio.Event()
        t0, start_ms = time.monotonic(), self.clock.now_ms()
        self.turned_away = self.offline_periods = self.faults = 0
        marks = [(len(c.sessions), c.sessions_rejected, c.sent.copy(), c.boots, len(c.errors)) for c in self.chargers]
        for c in self.chargers:
            c.restartable()
        runners = [asyncio.create_task(c.run(), name=f"{c.charger_id}:run") for c in self.chargers]
        events = [
            asyncio.create_task(self._arrive(start_ms, a.at_ms, a.vehicle, a.charger)) for a in self.scenario.arrivals
        ]
        for plan, charger in zip(self.scenario.chargers, self.chargers, strict=True):
            events += [asyncio.create_task(self._offline(charger, start_ms, at, span)) for at, span in plan.offline]
            events += [asyncio.create_task(self._fault(charger, start_ms, f)) for f in plan.faults]
        end = asyncio.create_task(self.clock.sleep_until(start_ms + self.scenario.duration_ms))
        halt = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({end, halt}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            interrupted = halt.done() and not end.done()
            for t in [end, halt, *events]:
                t.cancel()
            await asyncio.gather(end, halt, *events, return_exceptions=True)
            for c in self.chargers:
                c.go_online()  # an offline charger gets its chance to deliver
            await asyncio.gather(*(c.stop(flush_timeout_s=flush_timeout_s) for c in self.chargers))
            await asyncio.gather(*runners, return_exceptions=True)
        return self._summary(marks, time.monotonic() - t0, (self.clock.now_ms() - start_ms) / 1000, interrupted)

    async def _arrive(self, start_ms: int, at_ms: int, vehicle_index: int, charger_index: int) -> None:
        await self.clock.sleep_until(start_ms + at_ms)
        charger = self.chargers[charger_index]
        plan = self.scenario.chargers[charger_index]
        vehicle: VehiclePlan = self.scenario.vehicles[vehicle_index]
        while True:  # wait for a free connector (a queue at the charger)
            free = [c for c in charger.connectors.values() if c.tx is None and c.status == "Available"]
            if free:
                break
            if self.clock.elapsed_ms() > self.scenario.duration_ms:
                self.turned_away += 1
                return
            await self.clock.sleep(60)
        await charger.start_session(
            free[0].connector_id,
            vehicle.id_tag,
            demand_wh=vehicle.demand_wh,
            vehicle_max_power_w=vehicle.max_power_w(plan.current_type),
        )

    async def _offline(self, charger: SimCharger, start_ms: int, at_ms: int, span_ms: int) -> None:
        await self.clock.sleep_until(start_ms + at_ms)
        self.offline_periods += 1
        charger.go_offline(span_ms / 1000)

    async def _fault(self, charger: SimCharger, start_ms: int, fault: FaultPlan) -> None:
        await self.clock.sleep_until(start_ms + fault.at_ms)
        self.faults += 1
        if fault.kind == "meter_backwards":
            charger.meter_jump_back(fault.connector_id, fault.backwards_wh)
            return
        charger.fault(fault.connector_id, fault.error_code)
        await self.clock.sleep_ms(fault.clear_after_ms)
        charger.clear_fault(fault.connector_id)

    def _summary(
        self, marks: list[tuple[int, int, Counter[str], int, int]], real_s: float, sim_s: float, interrupted: bool
    ) -> FleetSummary:
        summary = FleetSummary(
            chargers=len(self.chargers),
            versions=self.scenario.versions,
            vehicles=len(self.scenario.vehicles),
            arrivals_turned_away=self.turned_away,
            offline_periods=self.offline_periods,
            faults=self.faults,
            real_s=real_s,
            sim_s=sim_s,
            interrupted=interrupted,
        )
        for c, (n_sessions, rejected, sent, boots, n_errors) in zip(self.chargers, marks, strict=True):
            summary.sessions += [
                SessionSummary(
                    c.charger_id,
                    c.version,
                    tx.connector_id,
                    tx.id_tag,
                    tx.started_ms,
                    tx.energy_wh,
                    tx.stop_reason,
                    tx.completed,
                )
                for tx in c.sessions[n_sessions:]
            ]
            summary.sessions_rejected += c.sessions_rejected - rejected
            round_sent = c.sent - sent
            summary.messages_sent.update(round_sent)
            summary.messages_by_version[c.version] += sum(round_sent.values())
            summary.boots += c.boots - boots
            summary.errors += [f"{c.charger_id}: {e}" for e in c.errors[n_errors:]]
        return summary
