"""Helpers for the REST API's tests: a real uvicorn on 127.0.0.1, sign-in with a wallet, and a
small world of a driver, a host, a stranger, an operator and an admin on a real anvil."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from sqlalchemy import Engine

from electra.api.auth import ApiKeyBook
from electra.chain.bindings import Electra
from electra.chain.keys import dev_account
from electra.domain.station import StationSpec
from electra.store.models import SessionRecord
from tests.conftest import free_port

HOST_KEY, DRIVER_KEY = dev_account(3), dev_account(4)
STRANGER_KEY = Account.from_key("0x" + "42" * 32)  # owns nothing


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """The app on a real uvicorn on 127.0.0.1, in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", access_log=False, timeout_graceful_shutdown=2
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        time.sleep(0.01)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextlib.asynccontextmanager
async def serve_here(app: Any) -> AsyncIterator[str]:
    """The app on a real uvicorn on 127.0.0.1 in the running event loop (next to a central system)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
    )
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def sign_in(url: str, account: LocalAccount, sign: Any = None) -> str:
    """Nonce, EIP-4361 message, personal_sign, token: what a wallet app does."""
    r = httpx.post(f"{url}/api/v1/auth/nonce", json={"address": account.address}, timeout=10)
    assert r.status_code == 200, r.text
    message = r.json()["message"]
    signature = (
        sign(message) if sign else "0x" + bytes(account.sign_message(encode_defunct(text=message)).signature).hex()
    )
    r = httpx.post(f"{url}/api/v1/auth/siwe", json={"message": message, "signature": signature}, timeout=30)
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def register_charger(e: Electra, charger_id: str, owner: LocalAccount) -> int:
    device = Account.from_key(keccak(b"electra-test-api-device:" + charger_id.encode()))
    spec = StationSpec(charger_id, 52_520_000, 13_400_000, 22_000, 2, 3, b"DEELC")
    return e.stations.register(spec, device, owner=owner)[0]


def register_vehicle(e: Electra, vin: str, owner: str) -> int:
    device = Account.create()
    signed = e.vehicles.sign_onboarding(device, keccak(text=vin), owner)
    return e.vehicles.relay_onboarding(signed)[0]


def add_session(engine: Engine, charger_id: str, vehicle_id: int | None, status: str = "completed", **kw: Any) -> int:
    from sqlalchemy.orm import Session

    now = int(time.time() * 1000)
    row = SessionRecord(
        charger_id=charger_id,
        connector_id=1,
        transaction_uid=kw.pop("uid", f"T{now}{vehicle_id}{status}"),
        ocpp_version="1.6",
        id_token=kw.pop("id_token", "TAG1"),
        token_status="Accepted",
        vehicle_id=vehicle_id,
        status=status,
        started_at_ms=kw.pop("started_at_ms", now - 3_600_000),
        meter_start_wh=1_000,
        stopped_at_ms=kw.pop("stopped_at_ms", now - 600_000 if status == "completed" else None),
        meter_stop_wh=12_000 if status == "completed" else None,
        energy_wh=11_000 if status == "completed" else None,
        billable_wh=11_000 if status == "completed" else None,
        flags="",
        updated_at_ms=now,
        **kw,
    )
    with Session(engine) as s, s.begin():
        s.add(row)
        s.flush()
        return int(row.id)


@dataclass
class World:
    """Who is who: a host holding a charger, a driver owning a vehicle, a stranger owning
    nothing, and API keys of an operator and an admin."""

    electra: Electra
    engine: Engine
    charger_id: str
    token_id: int
    vehicle_id: int
    session_id: int
    operator_key: str
    admin_key: str
    host: LocalAccount = HOST_KEY
    driver: LocalAccount = DRIVER_KEY
    stranger: LocalAccount = STRANGER_KEY


def make_world(e: Electra, engine: Engine, tag: str = "") -> World:
    cid = f"CP-API-{tag or 'W'}"
    token_id = register_charger(e, cid, HOST_KEY)
    vehicle_id = register_vehicle(e, f"WVWZZZAPI{tag}{time.time_ns()}", DRIVER_KEY.address)
    session_id = add_session(engine, cid, vehicle_id)
    keys = ApiKeyBook(engine)
    return World(
        e,
        engine,
        cid,
        token_id,
        vehicle_id,
        session_id,
        keys.create("test operator", "operator").secret,
        keys.create("test admin", "admin").secret,
    )
