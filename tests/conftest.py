"""Shared fixtures: one real anvil per test session, Electra deployed on it once, and an EVM
snapshot reverted after every test so tests do not see each other's transactions."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from electra.chain.bindings import Electra
from electra.chain.client import ChainClient, connect
from electra.chain.deploy import deploy
from electra.chain.devchain import DevChain
from electra.config import Settings, load_settings
from electra.store.db import make_engine, migrate
from tests.pgserver import PostgresServer, PostgresUnavailable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's own ELECTRA_* settings."""
    import os

    for k in list(os.environ):
        if k.startswith("ELECTRA_"):
            monkeypatch.delenv(k)


@pytest.fixture(scope="session")
def chain_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    data = tmp_path_factory.mktemp("electra-data")
    s = load_settings(data_dir=data, dev_chain_port=free_port())
    yield s


@pytest.fixture(scope="session")
def devchain(chain_settings: Settings) -> Iterator[DevChain]:
    dev = DevChain(chain_settings)
    _, started = dev.start()
    assert started, "a fresh port must give a fresh anvil"
    yield dev
    dev.stop()


@pytest.fixture(scope="session")
def session_client(devchain: DevChain, chain_settings: Settings) -> ChainClient:
    return connect(chain_settings)


@pytest.fixture(scope="session")
def session_electra(session_client: ChainClient, chain_settings: Settings) -> Electra:
    deployment, fresh = deploy(session_client, chain_settings)
    assert fresh
    return Electra.of(session_client, deployment)


@pytest.fixture
def electra(session_electra: Electra) -> Iterator[Electra]:
    client = session_electra.client
    snap = client.rpc("evm_snapshot")
    yield session_electra
    assert client.rpc("evm_revert", snap) is True


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster of our own for the whole session (see tests/pgserver.py)."""
    try:
        server = PostgresServer()
        server.start()
    except PostgresUnavailable as exc:
        pytest.fail(f"cannot start a test PostgreSQL: {exc}", pytrace=False)
    try:
        server.create_database("electra_test")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """SQLAlchemy URL of the session cluster's `electra_test` database."""
    return postgres_server.url("electra_test")


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database per test, on each backend the store supports."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/electra.db"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"electra_t_{uuid.uuid4().hex[:16]}"
    server.create_database(name)
    yield server.url(name)
    server.drop_database(name)


@pytest.fixture
def store_engine(store_url: str) -> Iterator[Engine]:
    """An engine on the fresh database, migrated to head."""
    engine = make_engine(store_url)
    migrate(engine)
    yield engine
    engine.dispose()
