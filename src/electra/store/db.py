"""Engine creation and schema migration."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from electra.errors import ConfigError
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


def migrate(engine: Engine) -> None:
    """Brings the schema to the newest Alembic revision."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except OperationalError as exc:
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
