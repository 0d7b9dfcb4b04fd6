"""`electra sim`: run a fleet of simulated chargers and vehicles against the central system."""

from __future__ import annotations

import asyncio
import signal
import ssl
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import Progress
from rich.table import Table

from electra.cli import common
from electra.cli.common import JsonOpt, console, emit, err_console, handles_errors

if TYPE_CHECKING:  # the simulator (and pyocmf under it) loads only when `electra sim` runs
    from electra.sim.clock import SimClock
    from electra.sim.fleet import Fleet, FleetSummary
    from electra.sim.scenario import Scenario

sim_app = typer.Typer(
    help="Simulated chargers (OCPP 1.6J and 2.0.1) and vehicles, on a compressed clock.",
    invoke_without_command=True,
)


@sim_app.callback(invoke_without_command=True)
@handles_errors
def sim(
    chargers: Annotated[int, typer.Option("--chargers", "-n", min=1, help="Number of chargers.")] = 4,
    vehicles: Annotated[int | None, typer.Option("--vehicles", min=0, help="Vehicles (default 2 per charger).")] = None,
    mix: Annotated[float, typer.Option("--mix", min=0.0, max=1.0, help="Share of OCPP 2.0.1 chargers.")] = 0.5,
    speed: Annotated[float, typer.Option("--speed", min=0.001, help="Simulated seconds per real second.")] = 60.0,
    duration: Annotated[float, typer.Option("--duration", min=0.1, help="Real seconds to run.")] = 60.0,
    url: Annotated[str | None, typer.Option("--url", help="CSMS, ws://HOST:PORT (default from settings).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Scenario seed: same seed, same fleet and timeline.")] = 1,
    offline_rate: Annotated[
        float, typer.Option("--offline-rate", min=0.0, max=1.0, help="Share of chargers that go offline once.")
    ] = 0.0,
    fault_rate: Annotated[
        float, typer.Option("--fault-rate", min=0.0, max=1.0, help="Share of chargers that get one fault.")
    ] = 0.0,
    provision: Annotated[
        bool,
        typer.Option(
            "--provision/--no-provision",
            help="Register missing charger NFTs and vehicles, set charger passwords, issue id tokens.",
        ),
    ] = True,
    prefix: Annotated[str | None, typer.Option("--prefix", help="Charger id prefix (default SIM{seed}).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run N chargers (mixed 1.6/2.0.1) with arriving vehicles; print a summary. Ctrl-C stops cleanly."""
    from electra.sim.scenario import build_scenario

    s = common.settings()
    sim_s = max(1, round(duration * speed))
    scenario = build_scenario(
        seed,
        chargers,
        vehicles,
        mix=mix,
        duration_s=sim_s,
        offline_rate=offline_rate,
        fault_rate=fault_rate,
        prefix=prefix,
    )
    passwords = _provision(scenario) if provision else {}
    scheme = "wss" if s.ocpp_tls_cert else "ws"
    target = url or f"{scheme}://{s.csms_host}:{s.csms_port}"
    tls = None
    if s.ocpp_tls_cert and target.startswith("wss://"):
        tls = ssl.create_default_context(cafile=str(s.ocpp_tls_cert))  # trust the CSMS's own certificate
    out = err_console if as_json else console
    versions = ", ".join(f"{n} x OCPP {v}" for v, n in scenario.versions.items() if n)
    out.print(
        f"simulating {chargers} chargers ({versions}) and {len(scenario.vehicles)} vehicles against {target}: "
        f"{duration:g} s at {speed:g}x ({sim_s} simulated s). Ctrl-C stops.",
        highlight=False,
    )
    summary = asyncio.run(_run(scenario, target, speed, passwords, tls, as_json))
    emit(summary.to_json(), as_json, lambda: _print(summary))


def _provision(scenario: Scenario) -> dict[str, str]:
    from electra.sim.provision import provision
    from electra.store.db import make_engine, migrate

    e = common.electra()
    engine = make_engine(common.settings().effective_db_url)
    migrate(engine)
    total = len(scenario.chargers) + len(scenario.vehicles)
    with Progress(console=err_console, transient=True) as bar:
        task = bar.add_task("provisioning chargers and vehicles", total=total)
        done = provision(e, scenario, e.client.account, engine, progress=lambda _: bar.advance(task))
    engine.dispose()
    err_console.print(
        f"provisioned: {done.chargers_registered} charger NFTs and {done.vehicles_registered} vehicles registered "
        f"(the rest existed), {len(done.passwords)} passwords set, {done.tokens_issued} id tokens issued",
        highlight=False,
    )
    return done.passwords


async def _run(
    scenario: Scenario, url: str, speed: float, passwords: dict[str, str], tls: ssl.SSLContext | None, quiet: bool
) -> FleetSummary:
    from electra.sim.clock import SimClock
    from electra.sim.fleet import Fleet

    clock = SimClock(speed)
    fleet = Fleet(scenario, url, clock, passwords=passwords, ssl=tls)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)  # the first one stops the run; later ones change nothing
    run = asyncio.create_task(fleet.run(stop))
    if quiet:
        return await run
    with console.status("") as status:
        while not run.done():
            status.update(_progress(fleet, clock))
            await asyncio.wait({run}, timeout=0.5)
    return await run


def _progress(fleet: Fleet, clock: SimClock) -> str:
    sessions = [tx for c in fleet.chargers for tx in c.sessions]
    online = sum(1 for c in fleet.chargers if c.online)
    elapsed = clock.elapsed_ms() // 1000
    return (
        f"simulated {elapsed // 3600:02d}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}  "
        f"{online}/{len(fleet.chargers)} chargers online  {len(sessions)} sessions "
        f"({sum(1 for t in sessions if t.completed)} done)  "
        f"{sum(sum(c.sent.values()) for c in fleet.chargers)} messages"
    )


def _print(summary: FleetSummary) -> None:
    from electra.metering.ocmf import format_kwh

    t = Table(title="simulation", title_justify="left")
    for col in ("OCPP", "chargers", "sessions", "completed", "energy kWh", "messages"):
        t.add_column(col, justify="left" if col == "OCPP" else "right")
    rows: dict[str, dict[str, Any]] = {}
    for v, n in summary.versions.items():
        rows[v] = {"chargers": n, "sessions": 0, "completed": 0, "wh": 0}
    for session in summary.sessions:
        r = rows[session.version]
        r["sessions"] += 1
        r["completed"] += int(session.completed)
        r["wh"] += session.energy_wh
    messages = summary.messages_by_version
    for v, r in rows.items():
        t.add_row(v, str(r["chargers"]), str(r["sessions"]), str(r["completed"]), format_kwh(r["wh"]), str(messages[v]))
    t.add_row(
        "all",
        str(summary.chargers),
        str(summary.sessions_started),
        str(summary.sessions_completed),
        format_kwh(summary.energy_wh),
        str(sum(summary.messages_sent.values())),
        style="bold",
    )
    console.print(t)
    console.print(
        f"{summary.sessions_rejected} starts refused, {summary.arrivals_turned_away} vehicles found no free "
        f"connector, {summary.offline_periods} offline periods, {summary.faults} faults, {summary.boots} boots; "
        f"{summary.sim_s:.0f} simulated s in {summary.real_s:.1f} real s"
        + ("; stopped by Ctrl-C" if summary.interrupted else ""),
        highlight=False,
    )
    if summary.errors:
        console.print(f"[yellow]{len(summary.errors)} errors[/], the first ones:")
        for e in summary.errors[:5]:
            console.print(f"  {e}", highlight=False, markup=False)
