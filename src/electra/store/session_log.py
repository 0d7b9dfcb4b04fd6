"""The session log in SQL: per-charger hash chains of events, records with a gap-free global
sequence, and the Merkle batches an anchoring worker puts on-chain (electra.domain.session_log
says what is hashed; docs/formats.md says it for outsiders).

**Appending.** Events are chained onto their charger's head row (``session_log_heads``). Every
append first upserts the heads it touches (sorted by charger, so two appends never wait on each
other in a cycle) and reads them ``FOR UPDATE`` on PostgreSQL; on SQLite that first write takes the
database's single write lock, so the heads read next cannot change before the commit. An append
therefore never forks a chain, whichever process or thread runs it. Events already in the log (same
digest: same charger, type, session, time and data) are skipped, so sending the same events twice
logs them once. The rows go in as one ``executemany`` (see :mod:`electra.store.prepared`), inside a
savepoint that a duplicate rolls back (then the duplicates are looked up and left out).

**Records.** :meth:`SessionLog.append_record` runs inside the caller's transaction (billing logs a
record in the transaction that writes its settlement row). It takes the next seq from the
``record_seq`` counter under a row lock, held to the commit, so seqs are contiguous whatever rolls
back, and logs a ``session.recorded`` event naming that seq and the record's leaf on the charger's
chain. Lock order everywhere: charger heads (sorted), then the ``record_seq`` counter.

**Batches.** :meth:`SessionLog.build_batch` takes the records not yet in a batch (the next seqs),
computes their Merkle root and stores the batch (``built``) with it before anything is sent; an
anchoring worker then stores its signed transaction (:meth:`mark_submitted`) before sending it, and
:meth:`mark_anchored` once mined.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, bindparam, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from electra.domain.merkle import MerkleTree
from electra.domain.merkle import verify as verify_proof
from electra.domain.record import SessionRecord
from electra.domain.session_log import (
    EMPTY_HEAD,
    Break,
    ChainedEvent,
    ChainHead,
    LogEvent,
    LoggedRecord,
    RecordedEntry,
    chain,
    encode,
    recorded_entry,
    recorded_event,
    verify_batch,
    verify_chain,
    verify_records,
)
from electra.errors import ElectraError
from electra.store.models import (
    AnchorBatchRecord,
    LogCounterRecord,
    LogEventRecord,
    LogHeadRecord,
    SessionLogRecord,
)
from electra.store.prepared import Prepared, insert_rows, upsert_rows

EVENTS = cast(Table, LogEventRecord.__table__)
HEADS = cast(Table, LogHeadRecord.__table__)
COUNTERS = cast(Table, LogCounterRecord.__table__)
RECORDS = cast(Table, SessionLogRecord.__table__)
BATCHES = cast(Table, AnchorBatchRecord.__table__)

BUILT, SUBMITTED, ANCHORED = "built", "submitted", "anchored"

_EVENT_COLUMNS = (
    "charger_id",
    "chain_index",
    "type",
    "session_id",
    "payload",
    "digest",
    "prev_hash",
    "hash",
    "created_at_ms",
)
INSERT_EVENTS = insert_rows(EVENTS, _EVENT_COLUMNS)
_HEAD_COLUMNS = ("charger_id", "last_index", "last_hash", "updated_at_ms")
TOUCH_HEADS = insert_rows(HEADS, _HEAD_COLUMNS, ignore_conflicts=True)
MOVE_HEADS = upsert_rows(HEADS, _HEAD_COLUMNS, key=("charger_id",))
_RECORD_COLUMNS = (
    "seq",
    "session_id",
    "charger_id",
    "charger_token_id",
    "vehicle_id",
    "started_at_ms",
    "stopped_at_ms",
    "meter_start_wh",
    "meter_stop_wh",
    "energy_wh",
    "asset",
    "amount",
    "leaf",
    "event_hash",
    "created_at_ms",
)
INSERT_RECORD = insert_rows(RECORDS, _RECORD_COLUMNS)
COUNTER_STEP = Prepared(
    "counter step",
    lambda d: (
        update(COUNTERS)
        .where(COUNTERS.c.name == bindparam("name"))
        .values(value=COUNTERS.c.value + bindparam("step"))
        .returning(COUNTERS.c.value)
    ),
)
# The heads of a set of chargers, as one statement with one parameter (so it compiles once):
# a JSON array on SQLite, an array locked row by row on PostgreSQL.
HEADS_OF_SQLITE = Prepared(
    "heads of chargers",
    lambda d: text(
        "SELECT charger_id, last_index, last_hash FROM session_log_heads"
        " WHERE charger_id IN (SELECT value FROM json_each(:ids))"
    ),
)
LOCK_HEADS_PG = Prepared(
    "lock heads of chargers",
    lambda d: text(
        "SELECT charger_id, last_index, last_hash FROM session_log_heads"
        " WHERE charger_id = ANY(:ids) ORDER BY charger_id FOR UPDATE"
    ),
)
RECORD_SEQ_OF = Prepared(
    "record seq of session", lambda d: select(RECORDS.c.seq).where(RECORDS.c.session_id == bindparam("sid"))
)
_ZERO = "0x" + "00" * 32


class LogTampered(ElectraError):
    """The log does not hold together where an operation relies on it (a record whose values no
    longer give its leaf, a batch whose records no longer give its root)."""


@dataclass(frozen=True)
class AnchorBatch:
    id: int
    first_seq: int
    last_seq: int
    count: int
    root: bytes
    status: str
    tx_hash: str | None = None
    raw_tx: str | None = None
    nonce: int | None = None
    block_number: int | None = None
    created_at_ms: int = 0
    updated_at_ms: int = 0
    block_hash: str | None = None


@dataclass(frozen=True)
class RecordProof:
    """What an auditor needs to check one session against the anchor: the record, its leaf, the
    proof and the batch (None, and an empty proof, while the record is in no batch yet)."""

    record: LoggedRecord
    leaf: bytes
    proof: list[bytes]
    batch: AnchorBatch | None

    def verify(self) -> bool:
        """The record's values, hashed again, lead through the proof to the batch's root."""
        return self.batch is not None and verify_proof(self.batch.root, self.record.record.leaf(), self.proof)


def _run_rows(conn: Connection, stmt: Prepared, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """``stmt.run`` for rows given as tuples in ``columns`` order: no dict per row on the hot path."""
    text, order, _ = stmt.sql(conn.dialect)
    if order is None:  # named parameters (PostgreSQL's psycopg)
        conn.exec_driver_sql(text, [dict(zip(columns, r, strict=True)) for r in rows])
        return
    if order != columns:
        picks = [columns.index(name) for name in order]
        rows = [tuple(r[i] for i in picks) for r in rows]
    conn.exec_driver_sql(text, rows)


def _new_head(charger_id: str, now_ms: int) -> dict[str, Any]:
    return {"charger_id": charger_id, "last_index": 0, "last_hash": _ZERO, "updated_at_ms": now_ms}


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def _bytes(h: str) -> bytes:
    return bytes.fromhex(h[2:])


class SessionLog:
    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock
        self._trees: dict[tuple[int, bytes], MerkleTree] = {}

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- appending -------------------------------------------------------------------------------

    def append(self, events: Sequence[LogEvent]) -> list[ChainedEvent]:
        """Logs events in their own transaction; returns those that were new, chained."""
        with self.engine.begin() as conn:
            return self.append_in(conn, events)

    def append_in(self, conn: Connection, events: Sequence[LogEvent]) -> list[ChainedEvent]:
        """Logs events inside the caller's transaction (in the given order per charger); returns
        those that were new, chained."""
        if not events:
            return []
        fresh: dict[tuple[int, bytes], tuple[LogEvent, bytes, bytes]] = {}
        for e in events:
            item = encode(e)
            fresh.setdefault((e.session_id, item[2]), item)  # the same event twice in one call: once
        items = list(fresh.values())
        heads = self._lock_heads(conn, {item[0].charger_id for item in items})
        # Optimistic: events are almost always new, and looking each up first would cost as much as
        # inserting it. If one is already logged the unique (session, digest) index refuses the
        # insert; only then are the logged ones looked up and the rest chained again.
        conn.exec_driver_sql("SAVEPOINT session_log_append")  # raw: begin_nested() adds bookkeeping per append
        try:
            written = self._write_events(conn, dict(heads), items)
        except IntegrityError:
            conn.exec_driver_sql("ROLLBACK TO SAVEPOINT session_log_append")
            conn.exec_driver_sql("RELEASE SAVEPOINT session_log_append")
            logged = self._logged(conn, items)
            return self._write_events(conn, heads, [i for i in items if (i[0].session_id, i[2]) not in logged])
        conn.exec_driver_sql("RELEASE SAVEPOINT session_log_append")
        return written

    def append_record(self, conn: Connection, record: SessionRecord, charger_id: str, at_ms: int | None = None) -> int:
        """Logs a finished session's record inside the caller's transaction and returns its seq;
        the seq it already has if it was logged before."""
        heads = self._lock_heads(conn, {charger_id})
        existing = RECORD_SEQ_OF.run(conn, {"sid": record.session_id}).scalar()
        if existing is not None:
            return int(existing)
        seq = self._step(conn, "record_seq", 1)
        leaf = record.leaf()
        now = self._now_ms()
        event = recorded_event(charger_id, seq, record, leaf, now if at_ms is None else at_ms)
        (logged,) = self._write_events(conn, heads, [encode(event)])
        r = record
        INSERT_RECORD.run(
            conn,
            {
                "seq": seq,
                "session_id": r.session_id,
                "charger_id": charger_id,
                "charger_token_id": r.charger_token_id,
                "vehicle_id": r.vehicle_id,
                "started_at_ms": r.started_at_ms,
                "stopped_at_ms": r.stopped_at_ms,
                "meter_start_wh": r.meter_start_wh,
                "meter_stop_wh": r.meter_stop_wh,
                "energy_wh": r.energy_wh,
                "asset": r.asset,
                "amount": str(r.amount),
                "leaf": _hex(leaf),
                "event_hash": _hex(logged.hash),
                "created_at_ms": now,
            },
        )
        return seq

    def _lock_heads(self, conn: Connection, charger_ids: Iterable[str]) -> dict[str, ChainHead]:
        """The heads of these chargers' chains, which cannot move until this transaction ends."""
        ids = sorted(charger_ids)
        now = self._now_ms()
        if conn.dialect.name == "postgresql":
            # Every head row must exist to be locked; created in sorted order, then locked in sorted
            # order, so two appends never wait on each other in a cycle.
            TOUCH_HEADS.run(conn, [_new_head(c, now) for c in ids])
            rows = LOCK_HEADS_PG.run(conn, {"ids": ids}).all()
        else:
            # SQLite has one writer: any write takes the database's write lock for the rest of the
            # transaction, so the heads read after this one-row write cannot change under us.
            TOUCH_HEADS.run(conn, _new_head(ids[0], now))
            rows = HEADS_OF_SQLITE.run(conn, {"ids": json.dumps(ids)}).all()
        return {c: ChainHead(int(i), _bytes(h)) for c, i, h in cast("list[tuple[str, int, str]]", rows)}

    def _logged(self, conn: Connection, items: list[tuple[LogEvent, bytes, bytes]]) -> set[tuple[int, bytes]]:
        by_session: dict[int, list[str]] = {}
        for e, _, digest in items:
            by_session.setdefault(e.session_id, []).append(_hex(digest))
        found: set[tuple[int, bytes]] = set()
        for session_id, digests in by_session.items():
            q = select(EVENTS.c.digest).where(EVENTS.c.session_id == session_id, EVENTS.c.digest.in_(digests))
            found.update((session_id, _bytes(d)) for d in conn.execute(q).scalars())
        return found

    def _write_events(
        self, conn: Connection, heads: dict[str, ChainHead], events: list[tuple[LogEvent, bytes, bytes]]
    ) -> list[ChainedEvent]:
        now = self._now_ms()
        chained = chain(heads, events)
        rows = [
            (
                c.charger_id,
                c.chain_index,
                c.type,
                c.session_id,
                c.canonical.decode("ascii"),
                _hex(digest),
                _hex(c.prev_hash),
                _hex(c.hash),
                now,
            )
            for c, (_, _, digest) in zip(chained, events, strict=True)
        ]
        if rows:
            moved = {c.charger_id: (c.charger_id, c.chain_index, _hex(c.hash), now) for c in chained}  # the last wins
            _run_rows(conn, INSERT_EVENTS, _EVENT_COLUMNS, rows)
            _run_rows(conn, MOVE_HEADS, _HEAD_COLUMNS, list(moved.values()))
        return chained

    def _step(self, conn: Connection, name: str, step: int) -> int:
        value = COUNTER_STEP.run(conn, {"name": name, "step": step}).scalar()
        if value is None:  # a database migrated without the counter row: the first use creates it
            conn.execute(insert(COUNTERS).values(name=name, value=step))
            return step
        return int(value)

    # -- reading ---------------------------------------------------------------------------------

    def head(self, charger_id: str) -> ChainHead:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(HEADS.c.last_index, HEADS.c.last_hash).where(HEADS.c.charger_id == charger_id)
            ).first()
        return EMPTY_HEAD if row is None else ChainHead(int(row[0]), _bytes(row[1]))

    def events(self, charger_id: str, after_index: int = 0, limit: int | None = None) -> list[ChainedEvent]:
        """A charger's events in chain order."""
        q = (
            select(*_EVENT_SELECT)
            .where(EVENTS.c.charger_id == charger_id, EVENTS.c.chain_index > after_index)
            .order_by(EVENTS.c.chain_index)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_event(row) for row in conn.execute(q)]

    def last_seq(self) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(select(COUNTERS.c.value).where(COUNTERS.c.name == "record_seq")).scalar()
        return int(value or 0)

    def records(self, first_seq: int = 1, last_seq: int | None = None) -> list[LoggedRecord]:
        q = select(RECORDS).where(RECORDS.c.seq >= first_seq).order_by(RECORDS.c.seq)
        if last_seq is not None:
            q = q.where(RECORDS.c.seq <= last_seq)
        with self.engine.connect() as conn:
            return [_record(row) for row in conn.execute(q)]

    def record_by_session(self, session_id: int) -> LoggedRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(RECORDS).where(RECORDS.c.session_id == session_id)).first()
        return None if row is None else _record(row)

    # -- anchor batches --------------------------------------------------------------------------

    def build_batch(self, max_count: int) -> AnchorBatch | None:
        """The next batch: up to ``max_count`` records that are in no batch yet, consecutive seqs
        from the one after the last batch, stored with its Merkle root. None when there are none.
        Refuses (LogTampered) a record whose values no longer give its logged leaf."""
        if max_count < 1:
            raise ElectraError(f"a batch holds at least one record, not {max_count}")
        with self.engine.begin() as conn:
            self._step(conn, "anchor_batch", 0)  # held to the commit: one builder at a time
            last = conn.execute(select(BATCHES.c.last_seq).order_by(BATCHES.c.last_seq.desc()).limit(1)).scalar()
            first = int(last or 0) + 1
            rows = conn.execute(
                select(RECORDS).where(RECORDS.c.seq >= first).order_by(RECORDS.c.seq).limit(max_count)
            ).all()
            if not rows:
                return None
            records = [_record(r) for r in rows]
            for expected, r in enumerate(records, first):
                if r.seq != expected:
                    raise LogTampered(f"record seq {expected} is missing", "run `electra audit`")
                if r.record.leaf() != r.leaf:
                    raise LogTampered(
                        f"record seq {r.seq} (session {r.record.session_id}) does not hash to its logged leaf",
                        "run `electra audit`",
                    )
            tree = MerkleTree.of([r.leaf for r in records])
            now = self._now_ms()
            values = {
                "first_seq": first,
                "last_seq": records[-1].seq,
                "count": len(records),
                "root": _hex(tree.root),
                "status": BUILT,
                "created_at_ms": now,
                "updated_at_ms": now,
            }
            batch_id = int(conn.execute(insert(BATCHES).values(values).returning(BATCHES.c.id)).scalar_one())
            conn.execute(
                update(RECORDS)
                .where(RECORDS.c.seq >= first, RECORDS.c.seq <= records[-1].seq)
                .values(batch_id=batch_id)
            )
        self._trees[(batch_id, tree.root)] = tree
        return AnchorBatch(
            batch_id, first, records[-1].seq, len(records), tree.root, BUILT, created_at_ms=now, updated_at_ms=now
        )

    def batch(self, batch_id: int) -> AnchorBatch | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(BATCHES).where(BATCHES.c.id == batch_id)).first()
        return None if row is None else _batch(row)

    def batches(self, status: str | None = None) -> list[AnchorBatch]:
        q = select(BATCHES).order_by(BATCHES.c.id)
        if status is not None:
            q = q.where(BATCHES.c.status == status)
        with self.engine.connect() as conn:
            return [_batch(row) for row in conn.execute(q)]

    def mark_submitted(self, batch_id: int, tx_hash: str, raw_tx: str, nonce: int) -> None:
        """Stores the signed anchoring transaction before it is sent."""
        self._set_batch(batch_id, BUILT, status=SUBMITTED, tx_hash=tx_hash, raw_tx=raw_tx, nonce=nonce)

    def mark_anchored(self, batch_id: int, block_number: int, block_hash: str | None = None) -> None:
        self._set_batch(batch_id, SUBMITTED, status=ANCHORED, block_number=block_number, block_hash=block_hash)

    def release(self, batch_id: int) -> None:
        """A submitted batch whose transaction can never be mined goes back to ``built``."""
        self._set_batch(batch_id, SUBMITTED, status=BUILT, tx_hash=None, raw_tx=None, nonce=None)

    def adopt_anchored(self, batch_id: int) -> None:
        """A built batch that the chain already holds (anchored by an earlier transaction whose
        record was lost) is marked anchored without a transaction of its own."""
        self._set_batch(batch_id, BUILT, status=ANCHORED)

    def anchored_after(self, seq: int) -> list[AnchorBatch]:
        """Anchored batches that end after ``seq``, oldest first."""
        q = select(BATCHES).where(BATCHES.c.status == ANCHORED, BATCHES.c.last_seq > seq).order_by(BATCHES.c.id)
        with self.engine.connect() as conn:
            return [_batch(row) for row in conn.execute(q)]

    def anchored_since(self, block_number: int) -> list[AnchorBatch]:
        """Anchored batches recorded in a block after ``block_number``."""
        q = select(BATCHES).where(BATCHES.c.status == ANCHORED, BATCHES.c.block_number > block_number)
        with self.engine.connect() as conn:
            return [_batch(row) for row in conn.execute(q.order_by(BATCHES.c.id))]

    def move_anchor(self, batch_id: int, block_number: int, block_hash: str) -> None:
        """An anchoring transaction that a reorg moved into another block."""
        self._set_batch(batch_id, ANCHORED, block_number=block_number, block_hash=block_hash)

    def unanchor(self, batch_id: int) -> None:
        """An anchored batch whose anchor left the chain (a reorg): back to ``submitted`` with its
        stored transaction, to be resolved again, or to ``built`` when it had none of its own."""
        batch = self.batch(batch_id)
        if batch is None or batch.status != ANCHORED:
            raise ElectraError(f"anchor batch {batch_id} is not anchored", "read its status again")
        to = SUBMITTED if batch.tx_hash is not None else BUILT
        self._set_batch(batch_id, ANCHORED, status=to, block_number=None, block_hash=None)

    def last_batched_seq(self) -> int:
        """The last sequence number in a batch (0 before the first)."""
        with self.engine.connect() as conn:
            value = conn.execute(select(BATCHES.c.last_seq).order_by(BATCHES.c.last_seq.desc()).limit(1)).scalar()
        return int(value or 0)

    def _set_batch(self, batch_id: int, from_status: str, **values: Any) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(
                update(BATCHES)
                .where(BATCHES.c.id == batch_id, BATCHES.c.status == from_status)
                .values(updated_at_ms=self._now_ms(), **values)
            ).rowcount
        if done != 1:
            raise ElectraError(f"anchor batch {batch_id} is not {from_status}", "read its status again")

    def proof(self, session_id: int) -> RecordProof | None:
        """A session's record with its Merkle proof against its batch's root (None: no record)."""
        record = self.record_by_session(session_id)
        if record is None:
            return None
        if record.batch_id is None:
            return RecordProof(record, record.leaf, [], None)
        batch = self.batch(record.batch_id)
        if batch is None:
            raise LogTampered(f"record seq {record.seq} names batch {record.batch_id}, which does not exist")
        tree = self._trees.get((batch.id, batch.root))
        if tree is None:
            tree = MerkleTree.of([r.leaf for r in self.records(batch.first_seq, batch.last_seq)])
            if tree.root != batch.root:
                raise LogTampered(f"the records of batch {batch.id} no longer give its root", "run `electra audit`")
            if len(self._trees) >= 64:
                self._trees.pop(next(iter(self._trees)))
            self._trees[(batch.id, batch.root)] = tree
        return RecordProof(record, record.leaf, tree.proof(record.seq - batch.first_seq), batch)

    # -- audit -----------------------------------------------------------------------------------

    def verify_chains(self) -> list[Break]:
        """Every break in every charger's chain (events and heads)."""
        return self._walk_chains({})

    def audit_local(self) -> list[Break]:
        """Everything the database alone can show: the chains, the records against their values
        and their session.recorded events, and each batch against its root."""
        logged: dict[bytes, RecordedEntry] = {}
        breaks = self._walk_chains(logged)
        records = self.records()
        breaks += verify_records(records, logged)
        by_seq = {r.seq: r for r in records}
        for b in self.batches():
            inside = [by_seq[s] for s in range(b.first_seq, b.last_seq + 1) if s in by_seq]
            breaks += verify_batch(b.id, b.first_seq, b.last_seq, b.count, b.root, inside)
        return breaks

    def _walk_chains(self, logged: dict[bytes, RecordedEntry]) -> list[Break]:
        breaks: list[Break] = []
        with self.engine.connect() as conn:
            heads = {
                c: ChainHead(int(i), _bytes(h))
                for c, i, h in conn.execute(select(HEADS.c.charger_id, HEADS.c.last_index, HEADS.c.last_hash))
            }
            q = select(*_EVENT_SELECT).order_by(EVENTS.c.charger_id, EVENTS.c.chain_index, EVENTS.c.id)
            current: str | None = None
            events: list[ChainedEvent] = []
            for row in conn.execution_options(stream_results=True, yield_per=10_000).execute(q):
                e = _event(row)
                if e.charger_id != current:
                    if current is not None:
                        breaks += verify_chain(current, events, heads.pop(current, None))
                    current, events = e.charger_id, []
                events.append(e)
                entry = recorded_entry(e)
                if entry is not None:
                    logged[entry.hash] = entry
            if current is not None:
                breaks += verify_chain(current, events, heads.pop(current, None))
        for charger_id, head in sorted(heads.items()):  # heads whose every event is gone
            if head.last_index:
                breaks += verify_chain(charger_id, [], head)
        return breaks


_EVENT_SELECT = (
    EVENTS.c.charger_id,
    EVENTS.c.chain_index,
    EVENTS.c.type,
    EVENTS.c.session_id,
    EVENTS.c.payload,
    EVENTS.c.prev_hash,
    EVENTS.c.hash,
    EVENTS.c.id,
)


def _event(row: Any) -> ChainedEvent:
    charger_id, index, type_, session_id, payload, prev_hash, hash_, event_id = row
    return ChainedEvent(
        charger_id,
        int(index),
        type_,
        int(session_id),
        payload.encode(),
        _bytes(prev_hash),
        _bytes(hash_),
        int(event_id),
    )


def _record(row: Any) -> LoggedRecord:
    m = row._mapping
    record = SessionRecord(
        session_id=int(m["session_id"]),
        charger_token_id=int(m["charger_token_id"]),
        vehicle_id=int(m["vehicle_id"]),
        started_at_ms=int(m["started_at_ms"]),
        stopped_at_ms=int(m["stopped_at_ms"]),
        meter_start_wh=int(m["meter_start_wh"]),
        meter_stop_wh=int(m["meter_stop_wh"]),
        energy_wh=int(m["energy_wh"]),
        asset=m["asset"],
        amount=int(m["amount"]),
    )
    batch_id = m["batch_id"]
    return LoggedRecord(
        int(m["seq"]),
        m["charger_id"],
        record,
        _bytes(m["leaf"]),
        _bytes(m["event_hash"]),
        None if batch_id is None else int(batch_id),
    )


def _batch(row: Any) -> AnchorBatch:
    m = row._mapping
    return AnchorBatch(
        int(m["id"]),
        int(m["first_seq"]),
        int(m["last_seq"]),
        int(m["count"]),
        _bytes(m["root"]),
        m["status"],
        m["tx_hash"],
        m["raw_tx"],
        m["nonce"],
        m["block_number"],
        int(m["created_at_ms"]),
        int(m["updated_at_ms"]),
        m["block_hash"],
    )
