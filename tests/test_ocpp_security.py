"""Security profiles 1 and 2: Basic auth against a scrypt hash, rotation, TLS."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import pytest
from ocpp.v16 import ChargePoint as Cp16
from ocpp.v16 import call as call16
from sqlalchemy import select
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake, InvalidStatus

from electra.errors import InvalidInput
from electra.ocpp.auth import CredentialStore, basic_auth_header, check_password, hash_password, parse_basic_auth
from electra.ocpp.directory import ChargerAdmission, StaticChargerDirectory
from electra.ocpp.gateway import CentralSystem, CsmsStore
from electra.store.models import ChargerCredential
from tests.certs import cert_files

DIRECTORY = StaticChargerDirectory({"CP-SEC": ChargerAdmission("CP-SEC", 1, True)})


def test_password_hash_is_slow_salted_and_checks() -> None:
    h1, h2 = hash_password("correct horse battery"), hash_password("correct horse battery")
    assert h1 != h2, "salted"
    assert h1.startswith("scrypt$16384$8$1$")
    assert check_password("correct horse battery", h1)
    assert not check_password("correct horse batterY", h1)
    assert not check_password("x", "md5$abc")
    assert not check_password("x", "garbage")
    assert parse_basic_auth(basic_auth_header("CP-1", "p:w")) == ("CP-1", "p:w")
    assert parse_basic_auth("Basic !!!") is None
    assert parse_basic_auth("Bearer abc") is None


def test_rotation_stores_only_a_hash_and_invalidates_the_old_password(tmp_path: Path) -> None:
    store = CsmsStore.open(f"sqlite:///{tmp_path}/c.db")
    creds = store.credentials
    old = creds.rotate("CP-SEC")
    assert creds.verify("CP-SEC", old) and creds.verify("CP-SEC", old), "second check takes the fast path"
    with store.engine.connect() as c:
        stored = c.scalar(select(ChargerCredential.password_hash))
    assert stored is not None and old not in stored
    # Rotated by another process (the CLI): this process must stop accepting the old one.
    new = CredentialStore(store.engine).rotate("CP-SEC")
    assert not creds.verify("CP-SEC", old)
    assert creds.verify("CP-SEC", new)
    assert not creds.verify("CP-OTHER", new)
    with pytest.raises(InvalidInput, match="16 to 40"):
        creds.rotate("CP-SEC", "short")


async def _boot(url: str, password: str | None, tls: ssl.SSLContext | None = None) -> str:
    headers = {"Authorization": basic_auth_header("CP-SEC", password)} if password else None
    async with connect(
        url + "CP-SEC",
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        additional_headers=headers,
        ssl=tls,
    ) as ws:
        cp = Cp16("CP-SEC", ws)
        task = asyncio.create_task(cp.start())
        try:
            boot = await cp.call(call16.BootNotification(charge_point_model="M", charge_point_vendor="V"))
            return str(boot.status)
        finally:
            task.cancel()


def _status(exc: pytest.ExceptionInfo[InvalidStatus]) -> int:
    return exc.value.response.status_code


def test_profile_1_needs_the_chargers_own_password(tmp_path: Path) -> None:
    store = CsmsStore.open(f"sqlite:///{tmp_path}/c.db")
    password = store.credentials.rotate("CP-SEC")

    async def body() -> list[Any]:
        system = CentralSystem(DIRECTORY, store, port=0, security_profile=1)
        await system.start()
        out: list[Any] = []
        try:
            for given in (None, "wrong-password-123456", password):
                try:
                    out.append(await _boot(system.url, given))
                except InvalidStatus as e:
                    out.append(e.response.status_code)
                    out.append(e.response.headers.get("WWW-Authenticate", ""))
        finally:
            await system.stop()
        return out

    out = asyncio.run(body())
    assert out[0] == 401 and "Basic" in out[1]
    assert out[2] == 401
    assert out[4] == "Accepted"


def test_profile_2_serves_wss_with_basic_auth(tmp_path: Path) -> None:
    from electra.ocpp.gateway import load_tls

    cert, key = cert_files(tmp_path)
    store = CsmsStore.open(f"sqlite:///{tmp_path}/c.db")
    password = store.credentials.rotate("CP-SEC")
    trust = ssl.create_default_context(cafile=str(cert))

    async def body() -> tuple[str, str, str]:
        system = CentralSystem(DIRECTORY, store, port=0, security_profile=2, ssl_context=load_tls(str(cert), str(key)))
        await system.start()
        try:
            accepted = await _boot(system.url, password, trust)
            try:  # plain ws to a TLS port does not get in
                await _boot(system.url.replace("wss://", "ws://"), password)
                plain = "connected"
            except (InvalidHandshake, OSError) as exc:
                plain = type(exc).__name__
            return system.url, accepted, plain
        finally:
            await system.stop()

    url, accepted, plain = asyncio.run(body())
    assert url.startswith("wss://127.0.0.1:")
    assert accepted == "Accepted"
    assert plain != "connected"


def test_profile_2_without_tls_is_a_configuration_error(tmp_path: Path) -> None:
    store = CsmsStore.open(f"sqlite:///{tmp_path}/c.db")
    with pytest.raises(InvalidInput, match="TLS"):
        CentralSystem(DIRECTORY, store, security_profile=2)
