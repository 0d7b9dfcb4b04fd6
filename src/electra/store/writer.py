"""Group commit: many small writes from the event loop, few transactions on the database.

The central system answers a charger only after what the charger sent is durable. Committing once
per message would cap throughput at the database's commit rate, so writes are queued and a single
worker commits everything that queued up while the previous commit ran, in one transaction, on a
thread. Under light load a batch holds one write and latency is one commit; under heavy load
batches grow and the commit cost is shared.

Two kinds of write:

- ``rows``: plain rows appended to a table (bulk ``executemany``), optionally ignoring rows that
  collide with a unique constraint (``INSERT ... ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL);
- ``execute``: one run of a :class:`~electra.store.prepared.Prepared` statement (an update, an
  upsert) with its parameters; all runs of the same statement in a batch become one ``executemany``,
  in the order they were queued, so for the same key the last write wins;
- ``call``: a function of the connection that runs inside the batch and returns a value.

Calls run first, in the order they were queued, then the rows, table by table, then the prepared
statements, statement by statement. Rows and statements are compiled once and run through the
driver (see :mod:`electra.store.prepared`), which is what makes a batch cheap. If a batch fails, it
is rolled back and every write is retried in its own transaction, so one bad write fails alone.
A call may therefore run twice: it must only touch the database.

A write that fails because the database is not there (a PostgreSQL server restarting, a SQLite
file locked by another process) is held and retried, with backoff, for up to ``retry_for_s``: the
charger waiting for its answer just waits a little longer, and gets it once the write is durable.
After that it fails with :class:`~electra.errors.StoreUnavailable`. Every failure reaches its
awaiter as one of the :class:`~electra.errors.StoreError` kinds when it is one (disk full,
read-only, unreachable; see :func:`electra.store.db.store_error`), with the driver's error as its
cause.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, Table

from electra.store.prepared import Prepared, insert_rows

LOG = logging.getLogger("electra.store")


@dataclass
class _Op:
    future: asyncio.Future[Any]
    fn: Callable[[Connection], Any] | None = None
    table: Table | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    ignore_conflicts: bool = False
    stmt: Prepared | None = None
    params: dict[str, Any] | None = None


class GroupCommitWriter:
    def __init__(self, engine: Engine, max_batch: int = 2000, retry_for_s: float = 20.0) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.retry_for_s = retry_for_s
        self.retries = 0  # batches held and retried while the database was not there
        self.unavailable_since: float | None = None
        self._pending: list[_Op] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batches = 0
        self.writes = 0
        self.failed_batches = 0
        self._inserts: dict[tuple[str, bool, tuple[str, ...]], Prepared] = {}

    async def start(self) -> None:
        if self._task is None:
            self._closing = False
            self._wake = asyncio.Event()  # bound to this event loop (a restarted store may run in a new one)
            self._task = asyncio.create_task(self._run(), name="electra-group-commit")

    async def stop(self) -> None:
        """Commits what is queued, then stops."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None

    # -- queueing -------------------------------------------------------------------------------

    def call(self, fn: Callable[[Connection], Any]) -> asyncio.Future[Any]:
        return self._queue(_Op(asyncio.get_running_loop().create_future(), fn=fn))

    def rows(self, table: Table, rows: list[dict[str, Any]], ignore_conflicts: bool = False) -> asyncio.Future[Any]:
        return self._queue(
            _Op(asyncio.get_running_loop().create_future(), table=table, rows=rows, ignore_conflicts=ignore_conflicts)
        )

    def execute(self, stmt: Prepared, params: dict[str, Any]) -> asyncio.Future[Any]:
        return self._queue(_Op(asyncio.get_running_loop().create_future(), stmt=stmt, params=params))

    def _queue(self, op: _Op) -> asyncio.Future[Any]:
        if self._closing or self._task is None:
            op.future.set_exception(_stopped())
            return op.future
        self._pending.append(op)
        self._wake.set()
        return op.future

    # -- the worker ------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            outcomes = await self._commit_while_unavailable(batch)
            self.batches += 1
            self.writes += len(batch)
            for op, (ok, value) in zip(batch, outcomes, strict=True):
                if op.future.done():
                    continue
                if ok:
                    op.future.set_result(value)
                else:
                    op.future.set_exception(value)

    async def _commit_while_unavailable(self, batch: list[_Op]) -> list[tuple[bool, Any]]:
        """Commits the batch; the writes that failed only because the database is not there are
        committed again, with backoff, for up to ``retry_for_s``."""
        from electra.errors import StoreUnavailable
        from electra.store.db import store_error

        outcomes: list[tuple[bool, Any]] = [(False, None)] * len(batch)
        todo = list(range(len(batch)))
        started = time.monotonic()
        delay = 0.1
        while True:
            result = await asyncio.to_thread(self._commit, [batch[i] for i in todo])
            again = []
            for i, (ok, value) in zip(todo, result, strict=True):
                if not ok:
                    known = store_error(value)
                    if known is not None and known is not value:
                        known.__cause__ = value
                        value = known
                    if isinstance(value, StoreUnavailable):
                        again.append(i)
                outcomes[i] = (ok, value)
            waited = time.monotonic() - started
            if not again:
                if self.unavailable_since is not None:
                    down = time.monotonic() - self.unavailable_since
                    LOG.warning("the store answers again after %.1f s; held writes committed", down)
                    self.unavailable_since = None
                return outcomes
            if waited >= self.retry_for_s or self._closing:
                LOG.error("the store is still unavailable after %.0f s: %d writes fail", waited, len(again))
                return outcomes
            if self.unavailable_since is None:
                self.unavailable_since = started
                LOG.error(
                    "%s; holding %d writes and retrying for up to %.0f s",
                    outcomes[again[0]][1].one_line(),
                    len(again),
                    self.retry_for_s,
                )
            self.retries += 1
            todo = again
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _commit(self, batch: list[_Op]) -> list[tuple[bool, Any]]:
        try:
            with self.engine.begin() as conn:
                results = [self._apply(conn, op) for op in batch if op.fn is not None]
                self._apply_rows(conn, [op for op in batch if op.table is not None])
                self._apply_stmts(conn, [op for op in batch if op.stmt is not None])
            it = iter(results)
            return [(True, next(it) if op.fn is not None else None) for op in batch]
        except Exception as batch_error:  # noqa: BLE001 - isolate the failing write below
            self.failed_batches += 1
            LOG.warning("batch of %d writes failed (%s); retrying one by one", len(batch), batch_error)
        outcomes: list[tuple[bool, Any]] = []
        for op in batch:
            try:
                with self.engine.begin() as conn:
                    if op.fn is not None:
                        value = self._apply(conn, op)
                    elif op.stmt is not None:
                        value = self._apply_stmts(conn, [op])
                    else:
                        value = self._apply_rows(conn, [op])
                outcomes.append((True, value))
            except Exception as exc:  # noqa: BLE001 - handed to whoever awaits this write
                outcomes.append((False, exc))
        return outcomes

    @staticmethod
    def _apply(conn: Connection, op: _Op) -> Any:
        assert op.fn is not None
        return op.fn(conn)

    def _apply_rows(self, conn: Connection, ops: list[_Op]) -> None:
        # One executemany per table and column set: rows that name different columns cannot share one.
        groups: dict[tuple[str, bool, tuple[str, ...]], tuple[Table, list[dict[str, Any]]]] = {}
        for op in ops:
            assert op.table is not None
            for row in op.rows:
                key = (op.table.name, op.ignore_conflicts, tuple(sorted(row)))
                groups.setdefault(key, (op.table, []))[1].append(row)
        for key, (table, rows) in groups.items():
            if rows:
                stmt = self._inserts.get(key)
                if stmt is None:
                    stmt = self._inserts[key] = insert_rows(table, key[2], key[1])
                stmt.run(conn, rows)

    @staticmethod
    def _apply_stmts(conn: Connection, ops: list[_Op]) -> None:
        groups: dict[Prepared, list[dict[str, Any]]] = {}
        for op in ops:
            assert op.stmt is not None and op.params is not None
            groups.setdefault(op.stmt, []).append(op.params)
        for stmt, params in groups.items():
            stmt.run(conn, params)


def _stopped() -> Exception:
    from electra.errors import ElectraError

    return ElectraError("the store writer is stopped", "start the central system's store before writing")
