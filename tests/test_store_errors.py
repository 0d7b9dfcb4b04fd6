"""Store failures the operator must be told about in one line (disk full, read-only, locked,
unreachable), and the group-commit writer holding writes while the database is not there."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from electra.errors import ElectraError, StoreFull, StoreReadOnly, StoreUnavailable
from electra.store.db import make_engine, migrate, store_error
from electra.store.models import OcppMessage
from electra.store.writer import GroupCommitWriter

ROW = {"charger_id": "CP-1", "message_id": "m", "action": "Heartbeat", "received_at_ms": 1, "payload": "[]"}


def failure(url: str, sql: str, setup: str | None = None) -> OperationalError:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            if setup:
                conn.exec_driver_sql(setup)
            conn.exec_driver_sql(sql)
    except OperationalError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError(f"{sql} did not fail")


def test_sqlite_failures_map_to_named_store_errors(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    sqlite3.connect(db).execute("create table t (x blob)").connection.commit()
    full = store_error(
        failure(f"sqlite:///{db}", "insert into t values (zeroblob(100000))", "PRAGMA max_page_count = 2")
    )
    assert isinstance(full, StoreFull) and "disk is full" in full.cause and full.fix
    read_only = store_error(failure(f"sqlite:///file:{db}?mode=ro&uri=true", "insert into t values (1)"))
    assert isinstance(read_only, StoreReadOnly) and "read-only" in read_only.one_line()
    assert store_error(ValueError("not a database error")) is None
    missing_table = failure(f"sqlite:///{db}", "insert into nowhere values (1)")
    assert store_error(missing_table) is None  # a bug, not the operator's problem: shown as it is


def test_postgres_down_is_unavailable() -> None:
    exc = failure("postgresql+psycopg://postgres@127.0.0.1:1/none", "select 1")
    known = store_error(exc)
    assert isinstance(known, StoreUnavailable) and "does not answer" in known.cause


def test_the_writer_holds_writes_while_the_database_is_locked_and_commits_them_after(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/w.db"
    migrate(make_engine(url))
    engine = create_engine(url, connect_args={"timeout": 0.05})  # "database is locked" after 50 ms
    locker = sqlite3.connect(tmp_path / "w.db", isolation_level=None, check_same_thread=False)
    locker.execute("BEGIN EXCLUSIVE")
    threading.Timer(1.0, lambda: locker.execute("COMMIT")).start()

    async def body() -> tuple[float, GroupCommitWriter]:
        writer = GroupCommitWriter(engine, retry_for_s=10)
        await writer.start()
        t0 = time.monotonic()
        await writer.rows(OcppMessage.__table__, [ROW])
        waited = time.monotonic() - t0
        await writer.stop()
        return waited, writer

    waited, writer = asyncio.run(body())
    assert writer.retries >= 1 and writer.unavailable_since is None
    assert 0.9 < waited < 9
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from ocpp_messages")).scalar() == 1
    locker.close()
    engine.dispose()


def test_the_writer_gives_up_after_its_window_with_a_named_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/w.db"
    migrate(make_engine(url))
    engine = create_engine(url, connect_args={"timeout": 0.05})
    locker = sqlite3.connect(tmp_path / "w.db", isolation_level=None, check_same_thread=False)
    locker.execute("BEGIN EXCLUSIVE")

    async def body() -> BaseException | None:
        writer = GroupCommitWriter(engine, retry_for_s=0.5)
        await writer.start()
        try:
            await writer.rows(OcppMessage.__table__, [ROW])
        except ElectraError as exc:
            return exc
        finally:
            await writer.stop()
        return None

    err = asyncio.run(body())
    locker.execute("ROLLBACK")
    locker.close()
    assert isinstance(err, StoreUnavailable) and "locked" in err.cause
    assert isinstance(err.__cause__, OperationalError)
    engine.dispose()
