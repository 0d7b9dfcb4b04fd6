"""Statements built and compiled once, then run straight through the database driver.

SQLAlchemy Core builds, coerces and cache-keys a statement every time one is constructed, which
costs ten times more than SQLite executing it. The central system's hot writes (a status change, a
heartbeat, a session update, a meter value) are the same few statements with different values, so
each is described once here, compiled once per dialect, and executed with
``Connection.exec_driver_sql``: inside the caller's transaction, as one ``executemany`` when given
many parameter sets. Values must be plain driver types (int, str, bool, None, bytes): no
SQLAlchemy type processing happens on this path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table, bindparam, insert
from sqlalchemy.engine import CursorResult, Dialect
from sqlalchemy.sql.expression import ClauseElement

from electra.errors import ElectraError


class Prepared:
    """A statement whose bind parameters are named; ``run`` takes dicts keyed by those names."""

    def __init__(self, name: str, build: Callable[[Dialect], ClauseElement]) -> None:
        self.name = name
        self._build = build
        self._compiled: dict[str, tuple[str, tuple[str, ...] | None, frozenset[str]]] = {}

    def __repr__(self) -> str:
        return f"Prepared({self.name})"

    def sql(self, dialect: Dialect) -> tuple[str, tuple[str, ...] | None, frozenset[str]]:
        """The SQL text for this dialect, for positional paramstyles the parameter order, and the
        parameter names."""
        hit = self._compiled.get(dialect.name)
        if hit is None:
            compiled = self._build(dialect).compile(dialect=dialect)
            order = tuple(compiled.positiontup or ()) if compiled.positional else None
            hit = (compiled.string, order, frozenset(compiled.binds))
            self._compiled[dialect.name] = hit
        return hit

    def run(self, conn: Connection, params: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> CursorResult[Any]:
        """Executes once for a mapping, as ``executemany`` for a sequence of them."""
        text, order, names = self.sql(conn.dialect)
        many = not isinstance(params, Mapping)
        sets: Sequence[Mapping[str, Any]] = params if many else [params]  # type: ignore[list-item,assignment]
        if order is None and sets and not names <= sets[0].keys():
            missing = ", ".join(sorted(names - sets[0].keys()))
            raise ElectraError(f"{self.name}: no value for parameter {missing}", "pass every named parameter")
        try:
            args: list[Any] = [tuple(p[n] for n in order) for p in sets] if order is not None else list(sets)
        except KeyError as exc:
            raise ElectraError(f"{self.name}: no value for parameter {exc}", "pass every named parameter") from exc
        return conn.exec_driver_sql(text, args if many else args[0])


def insert_rows(
    table: Table, columns: Sequence[str], ignore_conflicts: bool = False, returning: Sequence[str] = ()
) -> Prepared:
    """``INSERT INTO table (columns) VALUES (...)``, optionally skipping rows that hit a unique
    constraint (``ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL) and returning columns of the
    rows it inserted."""
    cols = tuple(columns)

    def build(dialect: Dialect) -> ClauseElement:
        values = {c: bindparam(c) for c in cols}
        if ignore_conflicts:
            stmt = _dialect_insert(dialect, table).values(values).on_conflict_do_nothing()
        else:
            stmt = insert(table).values(values)
        return stmt.returning(*(table.c[c] for c in returning)) if returning else stmt

    return Prepared(f"insert {table.name}({','.join(cols)}){' ignoring conflicts' if ignore_conflicts else ''}", build)


def upsert_rows(table: Table, columns: Sequence[str], key: Sequence[str]) -> Prepared:
    """``INSERT ... ON CONFLICT (key) DO UPDATE`` of the other columns: the last write wins."""
    cols, keys = tuple(columns), tuple(key)

    def build(dialect: Dialect) -> ClauseElement:
        stmt = _dialect_insert(dialect, table).values({c: bindparam(c) for c in cols})
        return stmt.on_conflict_do_update(
            index_elements=list(keys), set_={c: stmt.excluded[c] for c in cols if c not in keys}
        )

    return Prepared(f"upsert {table.name}({','.join(cols)})", build)


def _dialect_insert(dialect: Dialect, table: Table) -> Any:
    if dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    if dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
    raise ElectraError(f"no upsert for the {dialect.name} dialect", "use SQLite or PostgreSQL")
