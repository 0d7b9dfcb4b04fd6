"""A running platform for the browser tests: what `electra up` runs (the OCPP central system, the
payment gate, the REST API and the web app on a real uvicorn, wired by electra.cli.main's own
_payments and _start_api), in a thread with its own event loop, on the session's anvil.

Before it is ready, a fleet of simulated chargers (OCPP 1.6 and 2.0.1, signed meter values) held by
the host charges its vehicles, and every session is settled and anchored. One more simulated
charger stays connected and idle for the driver to start a charge at. The settlement and anchoring
workers run every half second with force, so a session the browser stops is settled and anchored
within seconds rather than after `electra up`'s batching delays.

A test wallet stands in for a browser extension: an EIP-1193 ``window.ethereum`` injected into the
page, whose requests go to Python (Playwright's expose_function), which signs with a dev key
(eth_account) and sends to anvil.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine

from electra.chain.anchoring import AnchorWorker
from electra.chain.bindings import Electra
from electra.chain.deploy import manifest_path
from electra.cli import common
from electra.config import Settings
from electra.domain.vehicle import vin_hash
from electra.sim.clock import SimClock
from electra.sim.fleet import Fleet
from electra.sim.provision import provision
from electra.sim.scenario import build_scenario, vehicle_account
from electra.store.session_log import SessionLog

HISTORY_SEED, LIVE_SEED, DRIVER_SEED = 23, 41, 97
VEHICLE_DEPOSIT, VEHICLE_MAX_CHARGE = 200 * 10**6, 40 * 10**6  # EUSD base units
HOST_ELC = 5_000 * 10**18


@dataclass
class Platform:
    url: str
    electra: Electra
    engine: Engine
    settings: Settings
    host: LocalAccount
    driver: LocalAccount
    driver_vehicle_id: int
    fleet_chargers: list[str]
    live_charger: str
    history_sessions: int
    errors: list[str] = field(default_factory=list)


class PlatformThread(threading.Thread):
    def __init__(self, settings: Settings, host: LocalAccount, driver: LocalAccount) -> None:
        super().__init__(name="electra-web-platform", daemon=True)
        self.settings = settings
        self.host = host
        self.driver = driver
        self.ready = threading.Event()
        self.platform: Platform | None = None
        self.failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._halt: asyncio.Event | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread, which raises it
            self.failure = exc
            self.ready.set()

    def stop(self) -> None:
        if self._loop is not None and self._halt is not None:
            self._loop.call_soon_threadsafe(self._halt.set)
        self.join(timeout=60)

    async def _main(self) -> None:
        from electra.cli import main as cli_main
        from electra.ocpp.service import central_system

        self._loop = asyncio.get_running_loop()
        self._halt = asyncio.Event()
        e = common.electra()
        system = central_system(self.settings, e)
        payments = cli_main._payments(system)
        assert payments is not None, "PaymentHub must be deployed"
        await system.start()
        api_server, api_task = await cli_main._start_api(system)
        engine = system.store.engine
        url = f"ws://127.0.0.1:{system.port}"
        anchoring = AnchorWorker(SessionLog(engine), e.anchors, max_batch=100, max_age_s=0)
        live_task = None
        try:
            # A history: the host's chargers charge the host's vehicles, all settled and anchored.
            history = build_scenario(HISTORY_SEED, 4, 6, mix=0.5, duration_s=1_800, prefix="WEB")
            done = await asyncio.to_thread(provision, e, history, self.host, engine)
            await asyncio.to_thread(_fund, e, payments, history, done)
            fleet = Fleet(history, url, SimClock(speed=900), passwords=done.passwords)
            summary = await fleet.run(flush_timeout_s=3)
            assert summary.errors == [] and summary.sessions_completed >= 3, summary.to_json()
            await asyncio.to_thread(_work, payments, anchoring, [])
            # ELC for the host to stake with (the operator holds the genesis supply).
            await asyncio.to_thread(e.token.transfer, self.host.address, HOST_ELC)
            # The driver's own vehicle: onboarded by its device key, owned by the driver, no money yet.
            driver_vehicle = build_scenario(DRIVER_SEED, 1, 1, prefix="WEBD").vehicles[0]
            signed = e.vehicles.sign_onboarding(
                vehicle_account(DRIVER_SEED, 0), vin_hash(driver_vehicle.vin), self.driver.address
            )
            vehicle_id, _ = await asyncio.to_thread(e.vehicles.relay_onboarding, signed)
            # A charger that waits for the driver's remote start.
            live = build_scenario(LIVE_SEED, 1, 0, duration_s=36_000, prefix="WEBLIVE")
            live_done = await asyncio.to_thread(provision, e, live, self.host, engine)
            live_fleet = Fleet(live, url, SimClock(speed=30), passwords=live_done.passwords)
            live_task = asyncio.create_task(live_fleet.run(self._halt))
            await _until_connected(engine, live.chargers[0].charger_id)
            port = api_server.servers[0].sockets[0].getsockname()[1]
            self.platform = Platform(
                url=f"http://127.0.0.1:{port}",
                electra=e,
                engine=engine,
                settings=self.settings,
                host=self.host,
                driver=self.driver,
                driver_vehicle_id=vehicle_id,
                fleet_chargers=[c.charger_id for c in history.chargers],
                live_charger=live.chargers[0].charger_id,
                history_sessions=summary.sessions_completed,
            )
            self.ready.set()
            while not self._halt.is_set():
                await asyncio.to_thread(_work, payments, anchoring, self.platform.errors)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._halt.wait(), 0.5)
        finally:
            self._halt.set()
            if live_task is not None:
                await live_task
            api_server.should_exit = True
            await api_task
            await system.stop()


def _fund(e: Electra, payments: Any, scenario: Any, done: Any) -> None:
    coin = e.stablecoin
    for vehicle in scenario.vehicles:
        vehicle_id = done.vehicle_ids[vehicle.index]
        coin.mint(e.client.account.address, VEHICLE_DEPOSIT)
        e.payments.deposit(vehicle_id, coin.address, VEHICLE_DEPOSIT)
        payments.authorizations.ensure(
            vehicle_account(scenario.seed, vehicle.index),
            vehicle_id,
            list(done.station_tokens.values()),
            coin.address,
            VEHICLE_MAX_CHARGE,
            24 * 3600,
        )


def _work(payments: Any, anchoring: AnchorWorker, errors: list[str]) -> None:
    """One forced round of settlement, then anchoring; their errors are kept for the tests."""
    settled = payments.worker.run_once(force=True)
    anchored = anchoring.run_once(force=True)
    errors.extend(str(x) for x in [*settled.errors, *anchored.errors])


async def _until_connected(engine: Engine, charger_id: str, timeout_s: float = 30.0) -> None:
    from sqlalchemy.orm import Session

    from electra.store.models import ConnectorState

    loop = asyncio.get_running_loop()
    until = loop.time() + timeout_s
    while loop.time() < until:
        with Session(engine) as s:
            row = s.get(ConnectorState, (charger_id, 1))
            if row is not None and row.status == "Available":
                return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{charger_id} did not report Available within {timeout_s} s")


def platform_env(base: Path, chain_settings: Settings, chain_id: int, csms_port: int, api_port: int) -> dict[str, str]:
    """The ELECTRA_* environment of the platform: its own data directory (with a copy of the
    session's deployment manifest), the session's anvil, free ports."""
    data = base / "web-data"
    src = manifest_path(chain_settings, chain_id)
    dest = data / src.relative_to(chain_settings.data_dir)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dest)
    return {
        "ELECTRA_DATA_DIR": str(data),
        "ELECTRA_DEV_CHAIN_PORT": str(chain_settings.dev_chain_port),
        "ELECTRA_CSMS_PORT": str(csms_port),
        "ELECTRA_API_PORT": str(api_port),
    }


# ---------------------------------------------------------------- the test wallet

WALLET_JS = """
(() => {
  const listeners = {};
  window.ethereum = {
    isElectraTestWallet: true,
    async request({ method, params }) {
      const answer = JSON.parse(await window.__electraWallet(JSON.stringify({ method, params: params || [] })));
      if (answer.error) {
        const err = new Error(answer.error.message);
        err.code = answer.error.code;
        throw err;
      }
      return answer.result;
    },
    on(event, fn) { (listeners[event] = listeners[event] || []).push(fn); },
    removeListener(event, fn) { listeners[event] = (listeners[event] || []).filter((f) => f !== fn); },
  };
})();
"""


def _uint_types(types: dict[str, list[dict[str, str]]], primary: str) -> set[str]:
    return {f["name"] for f in types[primary] if f["type"].startswith(("uint", "int"))}


class TestWallet:
    """What a wallet extension does for the page, with one dev key: accounts, personal_sign,
    eth_signTypedData_v4 and eth_sendTransaction; other calls go to the chain as they are."""

    __test__ = False  # not a pytest class

    def __init__(self, account: LocalAccount, electra: Electra) -> None:
        self.account = account
        self.electra = electra
        self.calls: list[tuple[str, Any]] = []
        self.signed_messages: list[str] = []
        self.sent: list[str] = []

    def handle(self, payload: str) -> str:
        request = json.loads(payload)
        method, params = request["method"], request.get("params") or []
        self.calls.append((method, params))
        try:
            result = self._answer(method, params)
        except Exception as exc:  # noqa: BLE001 - a wallet answers errors to the page, it does not crash
            return json.dumps({"error": {"code": -32000, "message": f"{type(exc).__name__}: {exc}"}})
        return json.dumps({"result": result})

    def methods(self) -> list[str]:
        return [m for m, _ in self.calls]

    def _answer(self, method: str, params: list[Any]) -> Any:
        me = self.account.address
        w3 = self.electra.client.w3
        if method in ("eth_requestAccounts", "eth_accounts"):
            return [me.lower()]
        if method == "eth_chainId":
            return hex(self.electra.client.chain_id)
        if method == "personal_sign":
            data, who = params
            assert who.lower() == me.lower(), f"asked to sign for {who}"
            text = bytes.fromhex(data.removeprefix("0x")).decode()
            self.signed_messages.append(text)
            return "0x" + self.account.sign_message(encode_defunct(text=text)).signature.hex()
        if method == "eth_signTypedData_v4":
            who, typed_json = params
            assert who.lower() == me.lower(), f"asked to sign for {who}"
            typed = json.loads(typed_json)
            ints = _uint_types(typed["types"], typed["primaryType"])
            typed["message"] = {k: int(v) if k in ints else v for k, v in typed["message"].items()}
            signable = encode_typed_data(full_message=typed)
            return "0x" + Account.sign_message(signable, self.account.key).signature.hex()
        if method == "eth_sendTransaction":
            (tx,) = params
            assert tx["from"].lower() == me.lower(), f"asked to send from {tx['from']}"
            built = {
                "from": me,
                "to": w3.to_checksum_address(tx["to"]),
                "data": tx["data"],
                "value": int(tx.get("value") or "0x0", 16),
                "chainId": self.electra.client.chain_id,
                "nonce": w3.eth.get_transaction_count(me, "pending"),
            }
            built["gas"] = int(w3.eth.estimate_gas(built) * 1.3) + 50_000
            latest = w3.eth.get_block("latest")
            built["maxFeePerGas"] = int(latest["baseFeePerGas"]) * 2 + 10**9
            built["maxPriorityFeePerGas"] = 10**9
            signed = self.account.sign_transaction(built)
            tx_hash = "0x" + w3.eth.send_raw_transaction(signed.raw_transaction).hex().removeprefix("0x")
            self.sent.append(tx_hash)
            return tx_hash
        answer = w3.provider.make_request(method, params)  # type: ignore[arg-type]
        if "error" in answer:
            raise AssertionError(answer["error"])
        return answer.get("result")
