"""`electra`: every user action from the command line. Each command takes --json."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from electra import __version__, eventloop
from electra.chain.bindings import Electra
from electra.chain.deploy import deploy as deploy_contracts
from electra.chain.deploy import load_deployment, manifest_path
from electra.chain.devchain import DevChain
from electra.chain.governance import wiring_calls
from electra.cli import common
from electra.cli.apikey import apikey_app
from electra.cli.common import JsonOpt, console, emit, handles_errors, kv_table
from electra.cli.dao import dao_app
from electra.cli.find import find as find_command
from electra.cli.intelligence import maintenance_app, pricing_app
from electra.cli.ocpi import ocpi_app
from electra.cli.ocpp import ocpp_app
from electra.cli.rewards import rewards_app
from electra.cli.session import session_app
from electra.cli.sim import sim_app
from electra.cli.site import site_app
from electra.cli.stake import stake_app
from electra.cli.station import station_app
from electra.cli.vehicle import vehicle_app
from electra.cli.verify import audit as audit_command
from electra.cli.verify import verify as verify_command
from electra.cli.wallet import wallet_app
from electra.errors import InvalidInput

app = typer.Typer(
    name="electra",
    help="Electra: EV charging settled on an EVM chain.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
chain_app = typer.Typer(help="The chain: start the embedded dev chain, check health.", no_args_is_help=True)
app.add_typer(chain_app, name="chain")
app.add_typer(station_app, name="station")
app.add_typer(vehicle_app, name="vehicle")
app.add_typer(dao_app, name="dao")
app.add_typer(ocpp_app, name="ocpp")
app.add_typer(ocpi_app, name="ocpi")
app.add_typer(sim_app, name="sim")
app.add_typer(wallet_app, name="wallet")
app.add_typer(session_app, name="session")
app.add_typer(rewards_app, name="rewards")
app.add_typer(pricing_app, name="pricing")
app.add_typer(maintenance_app, name="maintenance")
app.add_typer(site_app, name="site")
app.add_typer(stake_app, name="stake")
app.add_typer(apikey_app, name="api-key")
app.command("verify")(verify_command)
app.command("audit")(audit_command)
app.command("find")(find_command)


@app.callback()
def _root(
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Data directory (ELECTRA_DATA_DIR).")] = None,
    rpc_url: Annotated[str | None, typer.Option("--rpc-url", help="JSON-RPC endpoint (ELECTRA_RPC_URL).")] = None,
) -> None:
    common.STATE.overrides = {"data_dir": data_dir, "rpc_url": rpc_url}
    common.STATE._settings = None


@app.command()
@handles_errors
def version(as_json: JsonOpt = False) -> None:
    """Print Electra's version."""
    emit({"version": __version__}, as_json, lambda: console.print(f"electra {__version__}"))


@chain_app.command("up")
@handles_errors
def chain_up(as_json: JsonOpt = False) -> None:
    """Start the dev chain in the background (or reuse the one running)."""
    s = common.settings()
    if not s.uses_dev_chain:
        raise InvalidInput("ELECTRA_RPC_URL points at an external chain", "unset it to use the embedded dev chain")
    dev = DevChain(s)
    health, started = dev.start()
    data = {
        "rpc_url": health.rpc_url,
        "chain_id": health.chain_id,
        "block_number": health.block_number,
        "started": started,
        "pid": dev.process.pid if dev.process else None,
        "state_file": str(dev.state_file.resolve()),
        "log_file": str(dev.log_file.resolve()),
    }
    emit(
        data,
        as_json,
        lambda: kv_table("dev chain " + ("started" if started else "already running"), list(data.items())),
    )


@chain_app.command("down")
@handles_errors
def chain_down(as_json: JsonOpt = False) -> None:
    """Stop the dev chain of this data directory; it saves its state first."""
    stopped = DevChain(common.settings()).stop()
    emit(
        {"stopped": stopped},
        as_json,
        lambda: console.print("stopped" if stopped else "no dev chain was running"),
    )


@chain_app.command("status")
@handles_errors
def chain_status(as_json: JsonOpt = False) -> None:
    """Is the chain reachable, which chain is it, is Electra deployed on it."""
    s = common.settings()
    c = common.client()
    block = c.w3.eth.get_block("latest")
    data: dict[str, Any] = {
        "rpc_url": c.rpc_url,
        "chain_id": c.chain_id,
        "block_number": int(block["number"]),
        "block_time": int(block["timestamp"]),
        "client_version": c.w3.client_version,
        "operator": c.account.address,
        "operator_balance_wei": str(c.w3.eth.get_balance(c.account.address)),
        "dev_chain": s.uses_dev_chain,
        "deployment": None,
    }
    path = manifest_path(s, c.chain_id)
    if path.exists():
        d = load_deployment(s, c.chain_id)
        data["deployment"] = {
            "manifest": str(path.resolve()),
            "block_number": d.block_number,
            **d.addresses,
        }
    emit(data, as_json, lambda: kv_table("chain", _flatten(data)))


@chain_app.command("advance")
@handles_errors
def chain_advance(seconds: Annotated[int, typer.Argument(min=1)], as_json: JsonOpt = False) -> None:
    """Move the dev chain's clock forward and mine a block (anvil only), e.g. past a voting period."""
    c = common.client()
    if not c.is_anvil:
        raise InvalidInput("chain advance works only on the anvil dev chain", "wait for real time to pass")
    c.rpc("evm_increaseTime", seconds)
    c.rpc("evm_mine")
    ts = int(c.w3.eth.get_block("latest")["timestamp"])
    emit({"block_time": ts}, as_json, lambda: console.print(f"chain time is now {ts}"))


@app.command()
@handles_errors
def deploy(
    force: Annotated[bool, typer.Option("--force", help="Deploy afresh even if a live deployment exists.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Deploy Electra's contracts, or reuse the live deployment; writes the manifest."""
    s = common.settings()
    c = common.client()
    d, fresh = deploy_contracts(c, s, force=force)
    # A deployment that got staking and rewards added later needs the timelock to wire them.
    pending = len(wiring_calls(Electra.of(c, d)))
    data = {
        "deployed": fresh,
        "manifest": str(manifest_path(s, c.chain_id).resolve()),
        "wiring_pending": pending,
        **d.to_json(),
    }

    def human() -> None:
        kv_table("deployed" if fresh else "reusing deployment", _flatten(data))
        if pending:
            console.print(
                f"[yellow]{pending} governance call(s) still needed for staking and rewards: "
                "propose them with `electra dao wire`[/]"
            )

    emit(data, as_json, human)


@app.command()
@handles_errors
def up(
    once: Annotated[bool, typer.Option("--once", help="Start, deploy, print and exit (for scripts).")] = False,
    demo: Annotated[
        bool, typer.Option("--demo/--no-demo", help="Run a small simulated fleet charging (dev chain only).")
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Run the platform on its embedded defaults: dev chain, contracts, SQLite. Ctrl-C stops it."""
    from electra.platform import Platform

    platform = Platform(common.settings())
    info = platform.start()
    emit(info, as_json, lambda: kv_table("Electra is up", _flatten(info)))
    if once:
        platform.stop(keep_chain=True)
        return
    try:
        eventloop.run(
            _serve_platform(platform, demo and common.settings().uses_dev_chain), common.settings().event_loop
        )
        console.print("stopping: the dev chain saves its state")
    finally:
        platform.stop()
    console.print("stopped")


async def _serve_platform(platform: Any, demo: bool) -> None:
    """The long-running part of `electra up`: the OCPP central system, supervised with the chain,
    and (with --demo) a small simulated fleet charging against it."""
    from electra.ocpp.service import central_system

    s = common.settings()
    system = central_system(s, common.electra())
    # Ctrl-C reaches every process of the terminal's group, and `uv run` forwards it once more:
    # the first SIGINT/SIGTERM starts an orderly stop, later ones must not interrupt it.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    from electra.payments.events import EventBus

    bus = EventBus()  # live updates: sessions and wallets publish, the API's event stream reads
    system.store.sessions.publish = bus.publish
    payments = _payments(system, bus)
    await system.start()
    console.print(f"OCPP central system on {system.url}{{charge_point_id}}", highlight=False)
    api_server, api_task = await _start_api(system, bus)
    balance_task = _start_balancer(system, stop)
    fleet_task = await _start_demo(system, stop, payments) if demo else None
    settle_task = asyncio.create_task(_settle_forever(payments, stop)) if payments is not None else None
    anchoring = _anchoring(system)
    anchor_task = asyncio.create_task(_anchor_forever(anchoring, stop)) if anchoring is not None else None
    console.print("[dim]Ctrl-C stops the platform; its chain and database state are kept.[/]")
    try:
        while not stop.is_set():
            platform.check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
    finally:
        if fleet_task is not None:
            await fleet_task
        if settle_task is not None:
            await settle_task
        if anchor_task is not None:
            await anchor_task
        api_server.should_exit = True
        await api_task
        await balance_task
        await system.stop()


def _start_balancer(system: Any, stop: asyncio.Event) -> asyncio.Task[None]:
    """Site load balancing (electra site ...): TxProfiles shared out every 2 s."""
    from electra.intelligence.load_balancing import LoadBalancer, balance_forever
    from electra.ocpp.commands import Commands

    balancer = LoadBalancer(system.store.engine, Commands(system))
    return asyncio.create_task(
        balance_forever(balancer, stop, report=lambda line: console.print(f"[yellow]{line}[/]", highlight=False))
    )


def _station_indexer(system: Any) -> Any:
    """Discovery's index, kept in step with StationRegistry and the store (None before deployment)."""
    from electra.discovery.indexer import StationIndexer
    from electra.errors import DeploymentMissing

    try:
        e = common.electra()
    except DeploymentMissing:
        return None
    return StationIndexer.for_electra(e, system.store.engine, max_age_s=5.0)


async def _start_api(system: Any, bus: Any = None) -> tuple[Any, asyncio.Task[None]]:
    """The REST API (electra.api) on api_host:api_port, in this event loop, with the central
    system's commands, the live event bus and the sandbox top-up provider; JSON logs to
    ELECTRA_API_LOG (default <data_dir>/logs/api.jsonl)."""
    import sys

    import uvicorn

    from electra.api.app import create_app
    from electra.api.observability import install_json_logs
    from electra.api.ratelimit import limiter_for
    from electra.errors import DeploymentMissing
    from electra.ocpp.commands import Commands
    from electra.payments.providers import SandboxProvider, load_or_create_secret

    known: list[Any] = []

    def bindings() -> Any:
        # Connecting checks the chain id with an RPC call: once per process, not once per request.
        if known:
            return known[0]
        try:
            known.append(common.electra())
        except DeploymentMissing:
            return None
        return known[0]

    s = common.settings()
    indexer = _station_indexer(system)
    log_path = s.api_log or s.data_dir / "logs" / "api.jsonl"
    if str(log_path) == "-":
        install_json_logs(sys.stderr)
    else:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        install_json_logs(log_path.open("a", buffering=1))
    sandbox = SandboxProvider(load_or_create_secret(s.data_dir / "payments" / "sandbox.secret"))
    api = create_app(
        system.store.engine,
        bindings,
        s.effective_rpc_url,
        stations=(lambda: indexer.fresh()) if indexer is not None else None,
        commands=Commands(system),
        system=lambda: system,
        bus=bus,
        providers=[sandbox],
        siwe_domain=s.api_siwe_domain,
        limiter=limiter_for(system.store.engine, s.api_rate_limits),
        settings=s,  # --data-dir and the other options reach the web app's routes too
    )
    server = uvicorn.Server(
        uvicorn.Config(
            api,
            host=s.api_host,
            port=s.api_port,
            log_level="warning",
            lifespan="off",
            access_log=False,  # the API writes its own JSON lines, without query strings
            timeout_graceful_shutdown=5,  # open event streams must not hold up Ctrl-C
        )
    )
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]  # the platform owns the signals
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():
        await asyncio.sleep(0.05)
    if task.done():
        task.result()  # raises why it could not start
    port = server.servers[0].sockets[0].getsockname()[1]
    console.print(
        f"REST API on http://{s.api_host}:{port}/api/v1 (OpenAPI: /api/v1/openapi.json; "
        "a session's proof: /api/v1/sessions/ID/proof)",
        highlight=False,
    )
    return server, task


def _payments(system: Any, bus: Any = None) -> Any:
    """The payment side on this deployment (None before PaymentHub was deployed): the gate admits
    vehicles at Authorize/Start, the settlement worker settles what they charged."""
    from electra.errors import DeploymentMissing
    from electra.payments.service import payments_for

    try:
        payments = payments_for(common.electra(), system.store.engine, max_age_s=SETTLE_AGE_S, bus=bus)
    except DeploymentMissing as exc:
        console.print(f"[yellow]payments off: {exc.one_line()}[/]")
        return None
    system.store.sessions.gate = payments.gate.check
    return payments


SETTLE_EVERY_S, SETTLE_AGE_S = 5.0, 15.0
ANCHOR_EVERY_S, ANCHOR_AGE_S, ANCHOR_BATCH = 10.0, 30.0, 1_000


def _anchoring(system: Any) -> Any:
    """The anchoring worker on this deployment (None before SessionAnchor was deployed)."""
    from electra.chain.anchoring import AnchorWorker
    from electra.errors import DeploymentMissing
    from electra.store.session_log import SessionLog

    try:
        anchors = common.electra().anchors
    except DeploymentMissing as exc:
        console.print(f"[yellow]anchoring off: {exc.one_line()}[/]")
        return None
    return AnchorWorker(SessionLog(system.store.engine), anchors, max_batch=ANCHOR_BATCH, max_age_s=ANCHOR_AGE_S)


async def _settle_forever(payments: Any, stop: asyncio.Event) -> None:
    """Runs the settlement worker every few seconds until the platform stops, then once more."""

    def done(r: Any) -> str | None:
        if not (r.batches or r.recovered):
            return None
        return (
            f"{r.settled} sessions settled, {r.rejected} rejected in {r.batches + r.recovered} batch(es) "
            "on PaymentHub; see `electra session receipt ID`"
        )

    await _every("settlement", payments.worker.run_once, done, SETTLE_EVERY_S, stop)


async def _anchor_forever(worker: Any, stop: asyncio.Event) -> None:
    """Anchors the session log's batches every few seconds until the platform stops, then once more."""

    def done(r: Any) -> str | None:
        if not (r.anchored or r.recovered):
            return None
        return f"{r.sessions} session records anchored on SessionAnchor in {r.anchored + r.recovered} batch(es)"

    await _every("anchoring", worker.run_once, done, ANCHOR_EVERY_S, stop)


async def _every(
    name: str, run_once: Callable[[bool], Any], done: Callable[[Any], str | None], every_s: float, stop: asyncio.Event
) -> None:
    """Runs a worker (in a thread) every ``every_s`` until the platform stops, then once more with
    force; prints what it did and its errors, which it retries."""
    while True:
        report = await asyncio.to_thread(run_once, stop.is_set())
        line = done(report)
        if line:
            console.print(f"{name}: {line}", highlight=False)
        for error in report.errors:
            console.print(f"[yellow]{name}: {error} (retrying)[/]", highlight=False)
        if stop.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)


DEMO_CHARGERS, DEMO_SPEED, DEMO_ROUND_S = 4, 120.0, 2 * 3600


async def _start_demo(system: Any, stop: asyncio.Event, payments: Any) -> asyncio.Task[None]:
    """Provisions the demo fleet (4 chargers, 1.6 and 2.0.1, 8 vehicles) and runs it at 120x, in
    rounds of two simulated hours (one real minute each), until the platform stops."""
    from electra.sim.clock import SimClock
    from electra.sim.fleet import Fleet
    from electra.sim.provision import provision
    from electra.sim.scenario import build_scenario

    scenario = build_scenario(7, DEMO_CHARGERS, mix=0.5, duration_s=DEMO_ROUND_S, prefix="DEMO")
    e = common.electra()
    done = await asyncio.to_thread(provision, e, scenario, e.client.account, system.store.engine)
    if payments is not None:
        await asyncio.to_thread(_fund_demo_vehicles, e, scenario, done, payments)
    url = f"{system.scheme}://{system.host}:{system.port}"
    console.print(
        f"demo: {DEMO_CHARGERS} simulated chargers ({', '.join(p.charger_id for p in scenario.chargers)}) "
        f"and {len(scenario.vehicles)} vehicles charging, clock at {DEMO_SPEED:g}x; "
        "see `electra ocpp sessions` and `electra ocpp chargers`",
        highlight=False,
    )

    async def run() -> None:
        sessions = energy = rounds = 0
        while not stop.is_set():
            # Same chargers and vehicles (they depend on the seed only), another timeline each round.
            rounds += 1
            timeline = build_scenario(7, DEMO_CHARGERS, mix=0.5, duration_s=DEMO_ROUND_S + rounds, prefix="DEMO")
            fleet = Fleet(timeline, url, SimClock(DEMO_SPEED), passwords=done.passwords)
            runner = asyncio.create_task(fleet.run(stop))
            reported: set[int] = set()
            while not runner.done():
                await asyncio.wait({runner}, timeout=2.0)
                if payments is not None:
                    await asyncio.to_thread(_authorize_demo_vehicles, e, scenario, done, payments)
                finished = [tx for c in fleet.chargers for tx in c.sessions if tx.completed and id(tx) not in reported]
                for tx in finished:
                    console.print(
                        f"demo: {_charger_of(fleet, tx)} charged vehicle token {tx.id_tag}: "
                        f"{tx.energy_wh} Wh, meter values signed (OCMF)",
                        highlight=False,
                    )
                reported.update(id(tx) for tx in finished)
            summary = runner.result()
            sessions, energy = sessions + summary.sessions_completed, energy + summary.energy_wh
        console.print(f"demo: {sessions} sessions completed, {energy} Wh in all", highlight=False)

    return asyncio.create_task(run())


DEMO_DEPOSIT, DEMO_MAX_CHARGE = 200 * 10**6, 40 * 10**6  # EUSD base units (6 decimals)


def _fund_demo_vehicles(e: Any, scenario: Any, done: Any, payments: Any) -> None:
    """Tops each demo vehicle's PaymentHub deposit up to 200 EUSD (minted: the dev chain's fiat)."""
    coin = e.stablecoin
    for vehicle_id in done.vehicle_ids.values():
        balance = e.payments.balance(vehicle_id, coin.address)
        if balance < DEMO_DEPOSIT // 2:
            coin.mint(e.client.account.address, DEMO_DEPOSIT - balance)
            e.payments.deposit(vehicle_id, coin.address, DEMO_DEPOSIT - balance)
    _authorize_demo_vehicles(e, scenario, done, payments)
    console.print(
        f"demo: {len(done.vehicle_ids)} vehicles hold up to {DEMO_DEPOSIT // 10**6} EUSD on PaymentHub and sign "
        f"charge authorizations of at most {DEMO_MAX_CHARGE // 10**6} EUSD per session",
        highlight=False,
    )


def _authorize_demo_vehicles(e: Any, scenario: Any, done: Any, payments: Any) -> None:
    from electra.sim.scenario import vehicle_account

    tokens = list(done.station_tokens.values())
    for vehicle in scenario.vehicles:
        device = vehicle_account(scenario.seed, vehicle.index)
        payments.authorizations.ensure(
            device, done.vehicle_ids[vehicle.index], tokens, e.stablecoin.address, DEMO_MAX_CHARGE, 24 * 3600
        )


def _charger_of(fleet: Any, tx: Any) -> str:
    return next(c.charger_id for c in fleet.chargers if tx in c.sessions)


@app.command()
@handles_errors
def csms(
    port: Annotated[int | None, typer.Option("--port", help="Listen port (ELECTRA_CSMS_PORT, default 9000).")] = None,
) -> None:
    """Run the OCPP central system: ws://HOST:PORT/ocpp/{charge_point_id}, OCPP 1.6J and 2.0.1."""
    from electra.ocpp.service import central_system

    s = common.settings()
    system = central_system(s, common.electra(), port)

    async def serve() -> None:
        await system.start()
        console.print(f"OCPP central system on {system.url}{{charge_point_id}}", highlight=False)
        console.print(
            f"security profile {system.security_profile}; store {s.effective_db_url}; "
            f"event loop {eventloop.loop_in_use(s.event_loop)}; commands: electra ocpp --help",
            highlight=False,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        balance_task = _start_balancer(system, stop)
        await stop.wait()
        await balance_task
        await system.stop()

    eventloop.run(serve(), s.event_loop)


def _flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for k, v in data.items():
        if isinstance(v, dict):
            rows.extend(_flatten(v, f"{prefix}{k}."))
        elif isinstance(v, list):
            rows.append((prefix + k, json.dumps(v)))
        else:
            rows.append((prefix + k, v))
    return rows


def main() -> None:
    app()


if __name__ == "__main__":
    main()
