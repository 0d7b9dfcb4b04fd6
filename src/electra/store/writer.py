"""Group commit: many small writes from the event loop, few transactions on the database.

The central system answers a charger only after what the charger sent is durable. Committing once
per message would cap throughput at the database's commit rate, so writes are queued and a single
worker commits everything that queued up while the previous commit ran, in one transaction, on a
thread. Under light load a batch holds the writes of a few milliseconds (batches start at least
``min_interval_s`` apart) and latency is that plus one commit; under heavy load batches grow and
the commit cost is shared.

Two kinds of write:

- ``rows``: plain rows appended to a table (bulk ``executemany``), optionally ignoring rows that
  collide with a unique constraint (``INSERT ... ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL);
- ``execute``: one run of a :class:`~electra.store.prepared.Prepared` statement (an update, an
  upsert) with its parameters; all runs of the same statement in a batch become one ``executemany``,
  in the order they were queued, so for the same key the last write wins;
- ``call``: a function of the connection that runs inside the batch and returns a value.

Calls run first, in the order they were queued, then the rows, table by table, then the prepared
statements, statement by statement, then what the calls handed to :func:`defer`: each flush
function once, with the items of the whole transaction (so that, say, every session opened in a
batch has its log event appended by one append). Rows and statements are compiled once and run through the
driver (see :mod:`electra.store.prepared`), which is what makes a batch cheap. If a batch fails, it
is rolled back and every write is retried in its own transaction, so one bad write fails alone.
A call may therefore run twice: it must only touch the database.

Batches are committed on one thread of the writer's own, over one connection it keeps, so a batch
pays neither a pool checkout nor a hop to a different thread. On SQLite that connection does not
checkpoint the WAL when it commits (SQLite's default is to copy the WAL into the database file,
and fsync it, inside the commit that crosses 1,000 pages, which stalls every write queued behind
it): a :class:`WalCheckpointer` thread does it at most once a second instead, beside the commits.
Durability is the same: a commit is in the WAL, in the operating system's hands, before its
future resolves, checkpointed or not.

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
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, Table

from electra.store.prepared import Prepared, insert_rows

LOG = logging.getLogger("electra.store")
_DEFERRED = "electra.deferred"  # Connection.info key: flush function -> items, for one transaction


def defer(conn: Connection, flush: Callable[[Connection, list[Any]], None], item: Any) -> None:
    """From inside a writer call: ``flush(conn, items)`` runs once at the end of this transaction,
    after every other write in it, with all the items handed to it in the transaction. If the
    transaction fails, the items go with it (a call is retried on its own, and defers again)."""
    deferred = conn.info.get(_DEFERRED)
    if deferred is None:
        from electra.errors import ElectraError

        raise ElectraError("defer() outside a group-commit transaction", "call it from a writer call")
    deferred.setdefault(flush, []).append(item)


@dataclass
class _Op:
    future: asyncio.Future[Any]
    fn: Callable[[Connection], Any] | None = None
    table: Table | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    ignore_conflicts: bool = False
    stmt: Prepared | None = None
    params: dict[str, Any] | None = None


class WalCheckpointer:
    """Checkpoints a SQLite database's WAL on a thread of its own, at most every ``interval_s`` and
    only after :meth:`poke` (a commit) since the last one. PASSIVE: it copies what it can without
    waiting for the writer or for readers, so it never holds a commit up."""

    def __init__(self, engine: Engine, interval_s: float = 1.0) -> None:
        self.engine = engine
        self.interval_s = interval_s
        self.checkpoints = 0
        self._poked = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="electra-wal-checkpoint", daemon=True)
            self._thread.start()

    def poke(self) -> None:
        self._poked.set()

    def stop(self) -> None:
        if self._thread is not None:
            self._stopping.set()
            self._poked.set()
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        conn: Connection | None = None
        try:
            while True:
                self._poked.wait()
                if self._stopping.wait(self.interval_s):
                    return
                self._poked.clear()
                try:
                    if conn is None:
                        conn = self.engine.connect()
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
                    conn.commit()
                    self.checkpoints += 1
                except Exception as exc:  # noqa: BLE001 - logged; the next commit pokes it to try again
                    LOG.warning("WAL checkpoint failed: %s", exc)
                    if conn is not None:
                        conn.invalidate()
                        conn.close()
                        conn = None
        finally:
            if conn is not None:
                conn.close()


class GroupCommitWriter:
    def __init__(
        self,
        engine: Engine,
        max_batch: int = 2000,
        checkpoint_interval_s: float = 1.0,
        min_interval_s: float = 0.004,
        retry_for_s: float = 20.0,
    ) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.retry_for_s = retry_for_s
        self.retries = 0  # batches held and retried while the database was not there
        self.unavailable_since: float | None = None
        self.min_interval_s = min_interval_s  # between the starts of two batches
        self._last_batch_at = float("-inf")
        self._pending: list[_Op] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batches = 0
        self.writes = 0
        self.failed_batches = 0
        self._inserts: dict[tuple[str, bool, tuple[str, ...]], Prepared] = {}
        self._thread: ThreadPoolExecutor | None = None
        self._conn: Connection | None = None  # used on self._thread only
        sqlite = engine.dialect.name == "sqlite"
        self.checkpointer = WalCheckpointer(engine, checkpoint_interval_s) if sqlite else None

    async def start(self) -> None:
        if self._task is None:
            self._closing = False
            self._wake = asyncio.Event()  # bound to this event loop (a restarted store may run in a new one)
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="electra-group-commit")
            if self.checkpointer is not None:
                self.checkpointer.start()
            self._task = asyncio.create_task(self._run(), name="electra-group-commit")

    async def stop(self) -> None:
        """Commits what is queued, then stops."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._close_connection)
            self._thread.shutdown()
            self._thread = None
        if self.checkpointer is not None:
            self.checkpointer.stop()

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
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            # Under light load a commit takes about a millisecond, so without a pause every write
            # would get a batch of its own, and each batch costs about 100 us of CPU whatever its size.
            wait_s = self._last_batch_at + self.min_interval_s - loop.time()
            if wait_s > 0 and not self._closing and len(self._pending) < self.max_batch:
                await asyncio.sleep(wait_s)
            self._last_batch_at = loop.time()
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
            result = await asyncio.get_running_loop().run_in_executor(
                self._thread, self._commit, [batch[i] for i in todo]
            )
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

    def _connection(self) -> Connection:
        if self._conn is None:
            conn = self.engine.connect()
            if self.checkpointer is not None:
                conn.exec_driver_sql("PRAGMA wal_autocheckpoint=0")  # the checkpointer's job
                conn.commit()
            self._conn = conn
        return self._conn

    def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.invalidate()  # not back into the pool: its connection does not checkpoint
            conn.close()

    def _commit(self, batch: list[_Op]) -> list[tuple[bool, Any]]:
        try:
            conn = self._connection()
            with conn.begin(), _deferring(conn):
                results = [self._apply(conn, op) for op in batch if op.fn is not None]
                self._apply_rows(conn, [op for op in batch if op.table is not None])
                self._apply_stmts(conn, [op for op in batch if op.stmt is not None])
            if self.checkpointer is not None:
                self.checkpointer.poke()
            it = iter(results)
            return [(True, next(it) if op.fn is not None else None) for op in batch]
        except Exception as batch_error:  # noqa: BLE001 - isolate the failing write below
            self.failed_batches += 1
            LOG.warning("batch of %d writes failed (%s); retrying one by one", len(batch), batch_error)
            self._close_connection()  # whatever state it is in, the next batch starts on a fresh one
        outcomes: list[tuple[bool, Any]] = []
        for op in batch:
            try:
                with self.engine.begin() as conn, _deferring(conn):
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


@contextlib.contextmanager
def _deferring(conn: Connection) -> Iterator[None]:
    """Collects what the transaction's calls :func:`defer`, and flushes it before the commit."""
    deferred: dict[Callable[[Connection, list[Any]], None], list[Any]] = {}
    conn.info[_DEFERRED] = deferred
    try:
        yield
        for flush, items in deferred.items():
            flush(conn, items)
    finally:
        conn.info.pop(_DEFERRED, None)


def _stopped() -> Exception:
    from electra.errors import ElectraError

    return ElectraError("the store writer is stopped", "start the central system's store before writing")
