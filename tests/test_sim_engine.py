"""The simulator's engine without a network: compressed time, integer metering, the message queue."""

from __future__ import annotations

import asyncio
import itertools
import time
from types import SimpleNamespace
from typing import Any

import pytest
from eth_account import Account
from hypothesis import given
from hypothesis import strategies as st
from ocpp.exceptions import InternalError

from electra.errors import InvalidInput
from electra.sim import ChargerIdentity, SimChargerV16, SimClock
from electra.sim.base import charger_url, profile_limit_w
from electra.sim.clock import parse_iso_ms

KEY = bytes(Account.from_key("0x" + "33" * 32).key)
START = 1_795_860_000.0  # 2026-11-28T10:00:00Z


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_clock_compression_math() -> None:
    real = FakeClock()
    clock = SimClock(speed=60, start=START, real=real)
    assert clock.now_ms() == 1_795_860_000_000
    assert clock.iso() == "2026-11-28T10:00:00.000Z"
    real.t += 1.0  # one real second is one simulated minute
    assert clock.elapsed_ms() == 60_000
    assert clock.iso() == "2026-11-28T10:01:00.000Z"
    real.t += 59.0  # a real minute is a simulated hour
    assert clock.elapsed_ms() == 3_600_000
    assert clock.to_real_s(3_600_000) == 60.0
    assert clock.to_sim_ms(0.5) == 30_000
    assert parse_iso_ms(clock.iso()) == clock.now_ms()
    assert parse_iso_ms("2026-11-28T10:00:00+01:00") == 1_795_856_400_000
    for bad in (0, -1):
        with pytest.raises(InvalidInput):
            SimClock(speed=bad)
    with pytest.raises(InvalidInput):
        parse_iso_ms("yesterday")


@given(st.floats(min_value=0.5, max_value=10_000), st.integers(min_value=0, max_value=10**9))
def test_sim_and_real_durations_invert(speed: float, sim_ms: int) -> None:
    clock = SimClock(speed=speed, start=START)
    assert abs(clock.to_sim_ms(clock.to_real_s(sim_ms)) - sim_ms) <= 1


def test_clock_sleeps_compressed() -> None:
    clock = SimClock(speed=200)

    async def body() -> tuple[float, int, bool, bool]:
        t0, s0 = time.monotonic(), clock.now_ms()
        await clock.sleep(40)  # 40 simulated seconds: 0.2 real seconds
        real, sim = time.monotonic() - t0, clock.now_ms() - s0
        event = asyncio.Event()
        timed_out = await clock.wait(event, 2_000)
        event.set()
        return real, sim, timed_out, await clock.wait(event, 10**9)

    real, sim, timed_out, was_set = asyncio.run(body())
    assert 0.19 <= real < 1.0
    assert sim >= 40_000
    assert (timed_out, was_set) == (False, True)


def charger(real: FakeClock, **kw: Any) -> SimChargerV16:
    clock = SimClock(speed=1, start=START, real=real)
    return SimChargerV16(ChargerIdentity("SIM-UNIT", KEY, **kw), "ws://127.0.0.1:9", clock)


def test_metering_is_integer_wh_at_the_capped_power() -> None:
    real = FakeClock()
    sim = charger(real, max_power_w=22_000)

    async def body() -> None:
        tx = await sim.start_session(1, "1A2B3C4D", demand_wh=20_000)  # offline: authorized locally
        assert tx is not None and sim.connectors[1].status == "Charging"
        conn = sim.connectors[1]
        real.t += 1_800  # half an hour at 22 kW
        sim.advance(conn)
        assert conn.register_wh == 11_000
        sim.limit_power(1, 7_000, "TxDefaultProfile")
        real.t += 60
        sim.advance(conn)
        assert conn.register_wh == 11_116  # 116.67 Wh: the fraction is carried, not lost
        real.t += 60
        sim.advance(conn)
        assert conn.register_wh == 11_233  # 233.33 Wh after two minutes
        sim.limit_power(0, 3_000, "ChargePointMaxProfile")
        assert sim.power_w(conn) == 3_000
        sim.clear_limits()
        assert sim.power_w(conn) == 22_000
        real.t += 3 * 3_600  # far beyond the demand: the vehicle takes no more
        sim.advance(conn)
        assert (tx.delivered_wh, conn.register_wh) == (20_000, 20_000)
        assert sim.meter_jump_back(1, 500) == 19_500
        sim.stop_session(1, "Local")
        assert (tx.meter_start_wh, tx.meter_stop_wh, tx.energy_wh) == (0, 19_500, 19_500)
        assert [r for _, _, r, _ in tx.signed] == ["B", "E"]
        assert [m.action for m in sim.queued] == ["StartTransaction", "MeterValues", "StopTransaction"]
        assert all(m.offline for m in sim.queued)
        await sim.stop(flush_timeout_s=0)

    asyncio.run(body())


def test_a_faulted_connector_does_not_meter() -> None:
    real = FakeClock()
    sim = charger(real)

    async def body() -> None:
        tx = await sim.start_session(1, "tok-1")
        assert tx is not None
        sim.fault(1, "OverCurrentFailure", stop_session=False)
        real.t += 3_600
        sim.advance(sim.connectors[1])
        assert (sim.connectors[1].register_wh, sim.connectors[1].error_code) == (0, "OverCurrentFailure")
        sim.clear_fault(1)
        real.t += 3_600
        sim.advance(sim.connectors[1])
        assert sim.connectors[1].register_wh == 22_000
        await sim.stop(flush_timeout_s=0)

    asyncio.run(body())


class Request:
    def __init__(self, name: str) -> None:
        self.name = name


class ScriptedCp:
    """Answers calls from a script: "ok", "timeout" (no answer) or "error" (a CallError)."""

    def __init__(self, script: list[str]) -> None:
        self.script = script
        self.calls: list[str] = []

    async def call(self, request: Request, suppress: bool = True) -> str:
        self.calls.append(request.name)
        outcome = self.script.pop(0) if self.script else "ok"
        if outcome == "timeout":
            raise TimeoutError
        if outcome == "error":
            raise InternalError(description="boom")
        return f"answer to {request.name}"


def test_queue_resends_until_answered_and_drops_after_errors() -> None:
    real = FakeClock()
    sim = charger(real)
    sim.clock = SimClock(speed=1_000, start=START)  # retry intervals of 10 sim s take 10 ms
    answered: list[str] = []

    async def body() -> None:
        cp = ScriptedCp(["timeout", "timeout", "ok", "error", "error", "error", "ok"])
        for name in ("A", "B", "C"):
            sim.enqueue(name, lambda m, n=name: Request(n), answered.append)
        sim.enqueue("D", lambda m: None)  # e.g. the transaction it belongs to was never accepted
        sim._cp = cp
        sim.booted.set()
        drain = asyncio.create_task(sim._drain())
        await sim.wait_flushed(2)
        drain.cancel()
        assert cp.calls == ["A", "A", "A", "B", "B", "B", "C"]

    asyncio.run(body())
    assert answered == ["answer to A", "answer to C"]
    assert sim.sent == {"Request": 7} and sim.answered == {"Request": 2}
    assert any("dropped B after 3 errors" in e for e in sim.errors)
    assert any("dropped D" in e for e in sim.errors)


def test_helpers() -> None:
    assert charger_url("ws://h:9000", "CP-1") == "ws://h:9000/ocpp/CP-1"
    assert charger_url("wss://h:9000/ocpp/", "CP-1") == "wss://h:9000/ocpp/CP-1"
    with pytest.raises(InvalidInput):
        charger_url("http://h", "CP-1")
    assert profile_limit_w({"charging_rate_unit": "W", "charging_schedule_period": [{"limit": 7_400.0}]}, 3) == 7_400
    amps = {"charging_rate_unit": "A", "charging_schedule_period": [{"start_period": 0, "limit": 16}]}
    assert profile_limit_w(amps, 3) == 16 * 230 * 3
    one_phase = {"charging_rate_unit": "A", "charging_schedule_period": [{"limit": 10, "number_phases": 1}]}
    assert profile_limit_w(one_phase, 3) == 2_300
    with pytest.raises(InvalidInput):
        profile_limit_w({"charging_schedule_period": []}, 3)
    with pytest.raises(InvalidInput):
        ChargerIdentity("bad id!", KEY)
    with pytest.raises(InvalidInput):
        SimChargerV16(ChargerIdentity("SIM-X", KEY), "ws://h", SimClock(), config={"Nope": "1"})


class BootCp:
    """Answers BootNotification with Pending, then Rejected, then Accepted."""

    def __init__(self) -> None:
        self.answers = [("Pending", 20), ("Rejected", 0), ("Accepted", 45)]
        self.at_ms: list[int] = []
        self.clock: SimClock | None = None

    async def call(self, request: Any, suppress: bool = True) -> Any:
        assert type(request).__name__ == "BootNotification" and self.clock is not None
        self.at_ms.append(self.clock.now_ms())
        status, interval = self.answers.pop(0)
        return SimpleNamespace(status=status, interval=interval)


def test_boot_is_retried_until_accepted_at_the_given_interval() -> None:
    sim = charger(FakeClock())
    sim.clock = SimClock(speed=1_000)
    cp = BootCp()
    cp.clock = sim.clock

    async def body() -> None:
        sim._cp = cp
        await asyncio.wait_for(sim._boot(), 2)

    asyncio.run(body())
    assert (sim.boots, sim.registration, sim.booted.is_set()) == (3, "Accepted", True)
    assert sim.heartbeat_interval_s == 45
    gaps = [b - a for a, b in itertools.pairwise(cp.at_ms)]
    assert gaps[0] >= 20_000  # Pending: wait the interval the CSMS gave
    assert gaps[1] >= 30_000  # Rejected with interval 0: the default wait


def test_stop_is_prompt_when_the_central_system_is_unreachable() -> None:
    from tests.conftest import free_port

    clock = SimClock(speed=60)
    sim = SimChargerV16(
        ChargerIdentity("SIM-NOWHERE", KEY), f"ws://127.0.0.1:{free_port()}", clock, response_timeout_s=30
    )

    async def body() -> float:
        task = asyncio.create_task(sim.run())
        while sim.connect_failures < 3:  # backing off between attempts by now
            await asyncio.sleep(0.01)
        t0 = time.monotonic()
        await sim.stop()
        await asyncio.wait_for(task, 2)
        return time.monotonic() - t0

    assert asyncio.run(body()) < 0.5
    assert not sim.connected and "cannot connect" in sim.errors[0]


def test_a_call_given_up_on_leaves_no_unread_error_behind() -> None:
    """A caller cancelled while its call is in flight (a fleet stopping, a session task ending): the
    library later ends the call with its own timeout; asyncio must not be left holding that error
    unread ("Task exception was never retrieved", as a soak run logged 120 times)."""
    import gc
    import json

    from ocpp.v16 import call
    from websockets.asyncio.server import serve

    async def central_system(ws: Any) -> None:  # answers all but Heartbeat
        async for text in ws:
            frame = json.loads(text)
            if frame[2] == "BootNotification":
                await ws.send(
                    json.dumps(
                        [3, frame[1], {"status": "Accepted", "currentTime": "2026-01-05T00:00:00Z", "interval": 300}]
                    )
                )
            elif frame[2] != "Heartbeat":
                await ws.send(json.dumps([3, frame[1], {}]))

    unread: list[str] = []

    async def body() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: unread.append(str(ctx.get("message"))))
        async with serve(central_system, "127.0.0.1", 0, subprotocols=["ocpp1.6"]) as server:  # type: ignore[list-item]
            port = next(iter(server.sockets)).getsockname()[1]
            sim = SimChargerV16(
                ChargerIdentity("SIM-GIVEUP", KEY), f"ws://127.0.0.1:{port}", SimClock(speed=1), response_timeout_s=0.3
            )
            runner = asyncio.create_task(sim.run())
            await sim.wait_booted(5)
            caller = asyncio.create_task(sim.call(call.Heartbeat()))
            await asyncio.sleep(0.1)
            caller.cancel()
            with pytest.raises(asyncio.CancelledError):
                await caller
            await asyncio.sleep(0.6)  # past the library's own timeout for the call
            gc.collect()
            await sim.stop()
            await asyncio.wait_for(runner, 5)
        gc.collect()
        await asyncio.sleep(0)

    asyncio.run(body())
    assert [m for m in unread if "never retrieved" in m] == []
