"""Engine creation and schema migration."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from electra.errors import ConfigError, StoreError, StoreFull, StoreReadOnly, StoreUnavailable
from electra.store.models import PlatformRun

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        folder = Path(url.removeprefix("sqlite:///")).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create {folder}: {exc.strerror}", "check ELECTRA_DB_URL / ELECTRA_DATA_DIR"
            ) from exc
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    return engine


def store_error(exc: BaseException, where: str = "the database", path: str | None = None) -> StoreError | None:
    """What a driver's failure means for the operator, as one of the :class:`StoreError` kinds
    with a cause and a fix; None for a failure that is none of them (a constraint, a bug).

    SQLite says ``database or disk is full`` (ENOSPC, a quota), ``attempt to write a readonly
    database`` (a read-only file, directory or mount) and ``disk I/O error`` (the write itself
    failed, e.g. the file system went read-only under it); ``database is locked`` is another writer
    holding it too long. PostgreSQL's operational errors (refused, closed, shut down, too many
    connections) mean the server is not there for us right now. ``path`` (a SQLite file) lets
    ``unable to open database file`` say whether its directory is read-only."""
    if isinstance(exc, StoreError):
        return exc
    if not isinstance(exc, DBAPIError):
        return None
    text = " ".join(str(exc.orig).split())
    low = text.lower()
    if "disk is full" in low or "no space left" in low or "disk quota" in low:
        return StoreFull(f"{where} cannot grow: the disk is full ({text})", "free space on its file system")
    if "readonly database" in low or "read-only file system" in low or "read only" in low:
        return StoreReadOnly(
            f"{where} cannot be written: it or its directory is read-only ({text})",
            "make the data directory (ELECTRA_DATA_DIR) and the database file writable",
        )
    if "unable to open database file" in low and path and _read_only_dir(Path(path).parent):
        return StoreReadOnly(
            f"{where} cannot be opened: its directory {Path(path).parent} is read-only ({text})",
            "make the data directory (ELECTRA_DATA_DIR) writable: SQLite writes its journal beside the file",
        )
    if "disk i/o error" in low:
        return StoreError(
            f"{where}: a write to the disk failed ({text})",
            "check the disk and its file system (full, read-only, failing), then restart",
        )
    if "database is locked" in low or "database is busy" in low:
        return StoreUnavailable(f"{where} is locked by another writer ({text})", "stop the other process writing it")
    sqlite = type(exc.orig).__module__.startswith("sqlite3")
    if exc.connection_invalidated or (isinstance(exc, OperationalError) and not sqlite):
        return StoreUnavailable(f"{where} does not answer ({text})", "check that the database server is running")
    return None


def _read_only_dir(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY) or not os.access(folder, os.W_OK)
    except OSError:
        return False


def migrate(engine: Engine) -> None:
    """Brings the schema to the newest Alembic revision."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except OperationalError as exc:
        sqlite_file = engine.url.database if engine.dialect.name == "sqlite" else None
        known = store_error(exc, f"the database {engine.url.render_as_string(hide_password=True)}", sqlite_file)
        if known is not None and not isinstance(known, StoreUnavailable):
            raise known from exc
        raise ConfigError(
            f"cannot open the database: {' '.join(str(exc.orig).split())}",
            "check ELECTRA_DB_URL and the data directory",
        ) from exc


def record_run(engine: Engine, run: PlatformRun) -> int:
    """Stores a platform start and returns how many starts this database has seen."""
    with Session(engine) as s, s.begin():
        s.add(run)
    with Session(engine) as s:
        return int(s.scalar(select(func.count()).select_from(PlatformRun)) or 0)
