"""The store on both backends it supports: SQLite and a real PostgreSQL (a throwaway cluster, tests/pgserver.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, event, inspect, select, text
from sqlalchemy.orm import Session

from electra.errors import ConfigError
from electra.store.db import MIGRATIONS, make_engine, migrate, record_run
from electra.store.models import Base, PlatformRun
from tests.conftest import free_port
from tests.pgserver import PostgresServer, PostgresUnavailable, find_bin_dir

WRITES = ("CREATE", "ALTER", "DROP", "INSERT", "UPDATE", "DELETE")


def _head() -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def _version(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.scalars(text("SELECT version_num FROM alembic_version")))


def _run(started_at: int = 1_700_000_000, chain_id: int = 31337) -> PlatformRun:
    return PlatformRun(
        started_at=started_at,
        chain_id=chain_id,
        rpc_url="http://127.0.0.1:8545",
        deployment_block=7,
        electra_version="0.1.0",
    )


def test_fresh_database_is_empty(store_url: str) -> None:
    engine = make_engine(store_url)
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_migrate_brings_a_fresh_database_to_head(store_url: str) -> None:
    engine = make_engine(store_url)
    try:
        migrate(engine)
        insp = inspect(engine)
        # Head is the schema the ORM models describe, plus Alembic's own bookkeeping table.
        assert set(insp.get_table_names()) == {*Base.metadata.tables, "alembic_version"}
        columns = {c["name"] for c in insp.get_columns("platform_runs")}
        assert columns == {"id", "started_at", "chain_id", "rpc_url", "deployment_block", "electra_version"}
        assert _version(engine) == [_head()]
    finally:
        engine.dispose()


def test_second_migrate_is_a_no_op(store_engine: Engine) -> None:
    assert record_run(store_engine, _run()) == 1
    statements: list[str] = []

    def _log(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        statements.append(statement.strip())

    event.listen(store_engine, "before_cursor_execute", _log)
    try:
        migrate(store_engine)
    finally:
        event.remove(store_engine, "before_cursor_execute", _log)

    assert statements, "migrate must at least read the current revision"
    assert [s for s in statements if s.upper().startswith(WRITES)] == []
    assert _version(store_engine) == [_head()]
    with Session(store_engine) as s:
        assert s.scalar(select(PlatformRun.started_at)) == 1_700_000_000


def test_record_run_counts_runs(store_engine: Engine) -> None:
    big_chain = 2**40 + 7  # BIGINT on both backends
    counts = [record_run(store_engine, _run(started_at=1_700_000_000 + i, chain_id=big_chain)) for i in range(3)]
    assert counts == [1, 2, 3]
    with Session(store_engine) as s:
        rows = s.scalars(select(PlatformRun).order_by(PlatformRun.id)).all()
    assert [r.started_at for r in rows] == [1_700_000_000, 1_700_000_001, 1_700_000_002]
    assert {r.chain_id for r in rows} == {big_chain}
    assert len({r.id for r in rows}) == 3


def test_runs_persist_across_engines(store_url: str, store_engine: Engine) -> None:
    assert record_run(store_engine, _run()) == 1
    store_engine.dispose()
    again = make_engine(store_url)
    try:
        migrate(again)
        assert record_run(again, _run()) == 2
    finally:
        again.dispose()


def test_unreachable_postgres_is_a_config_error() -> None:
    port = free_port()  # nothing listens there
    engine = make_engine(f"postgresql+psycopg://electra@127.0.0.1:{port}/electra")
    try:
        with pytest.raises(ConfigError) as info:
            migrate(engine)
    finally:
        engine.dispose()
    assert info.value.cause.startswith("cannot open the database")
    assert str(port) in info.value.cause
    assert info.value.fix is not None and "ELECTRA_DB_URL" in info.value.fix


def test_missing_postgres_database_is_a_config_error(postgres_server: PostgresServer) -> None:
    engine = make_engine(postgres_server.url("no_such_electra_db"))
    try:
        with pytest.raises(ConfigError) as info:
            migrate(engine)
    finally:
        engine.dispose()
    assert "no_such_electra_db" in info.value.cause


def test_sqlite_path_that_is_a_directory_is_a_config_error(tmp_path: Path) -> None:
    taken = tmp_path / "electra.db"
    taken.mkdir()
    engine = make_engine(f"sqlite:///{taken}")
    try:
        with pytest.raises(ConfigError) as info:
            migrate(engine)
    finally:
        engine.dispose()
    assert info.value.cause.startswith("cannot open the database")
    assert info.value.fix is not None and "ELECTRA_DB_URL" in info.value.fix


# The throwaway cluster itself.


def test_postgres_url_reaches_the_session_database(postgres_url: str, postgres_server: PostgresServer) -> None:
    assert postgres_url == f"postgresql+psycopg://postgres@127.0.0.1:{postgres_server.port}/electra_test"
    engine = make_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT current_database()")) == "electra_test"
    finally:
        engine.dispose()


def test_test_cluster_is_private_and_fast(postgres_server: PostgresServer) -> None:
    assert postgres_server.base is not None
    assert postgres_server.port != 5432
    with postgres_server.connect("electra_test") as conn:
        setting = {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in ("listen_addresses", "fsync")}  # type: ignore[index]
        socket_dir = conn.execute("SHOW unix_socket_directories").fetchone()[0]  # type: ignore[index]
        rules = conn.execute("SELECT type, address, auth_method FROM pg_hba_file_rules").fetchall()
    assert setting == {"listen_addresses": "127.0.0.1", "fsync": "off"}
    assert Path(socket_dir) == postgres_server.base
    assert rules == [("host", "127.0.0.1", "trust")]


def test_databases_come_and_go(postgres_server: PostgresServer) -> None:
    def names() -> list[str]:
        with postgres_server.connect() as conn:
            return [row[0] for row in conn.execute("SELECT datname FROM pg_database")]

    assert "electra_test" in names()
    postgres_server.create_database("electra_come_and_go")
    engine = make_engine(postgres_server.url("electra_come_and_go"))
    try:
        migrate(engine)
        with engine.connect():
            # An open connection must not stop the drop (DROP DATABASE ... WITH (FORCE)).
            assert "electra_come_and_go" in names()
            postgres_server.drop_database("electra_come_and_go")
    finally:
        engine.dispose()
    assert "electra_come_and_go" not in names()


def _fake_bin(root: Path, version: str, tools: tuple[str, ...] = ("initdb", "pg_ctl")) -> Path:
    bin_dir = root / version / "bin"
    bin_dir.mkdir(parents=True)
    for tool in tools:
        (bin_dir / tool).write_text("#!/bin/sh\n")
    return bin_dir


def test_find_bin_dir_picks_the_newest_complete_version(tmp_path: Path) -> None:
    _fake_bin(tmp_path, "9.6")
    _fake_bin(tmp_path, "13")
    newest = _fake_bin(tmp_path, "15")
    _fake_bin(tmp_path, "17", tools=("initdb",))  # no pg_ctl: not usable
    assert find_bin_dir(tmp_path) == newest


def test_missing_binaries_say_how_to_install_them(tmp_path: Path) -> None:
    with pytest.raises(PostgresUnavailable, match=r"make pg-deps"):
        find_bin_dir(tmp_path)


def test_root_without_a_postgres_user_is_a_clear_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    def _no_such_user(name: str) -> None:
        raise KeyError(name)

    monkeypatch.setattr("tests.pgserver.os.geteuid", lambda: 0)
    monkeypatch.setattr("tests.pgserver.pwd.getpwnam", _no_such_user)
    server = PostgresServer(bin_dir=Path("/nonexistent/bin"))
    with pytest.raises(PostgresUnavailable, match=r"no `postgres` system user.*make pg-deps"):
        server.start()
    assert server.base is None  # nothing was left behind
