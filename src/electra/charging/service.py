"""The session service: charger events in, durable sessions out.

It sits between the OCPP gateway (which speaks 1.6 and 2.0.1) and the store, and is the same for
both versions. Every decision about a session is the pure state machine's
(:mod:`electra.domain.session`); this module keeps the active sessions in memory, loads a session
from the store when it is not in memory (after a restart), and persists every change through the
group-commit writer before the gateway answers the charger. A retransmitted or replayed message
finds the session already there and changes nothing.

Each session's start and stop are also logged in its charger's hash chain
(:mod:`electra.store.session_log`), committed before the charger is answered, with one log append
per commit batch for the starts (in the transaction that opens their sessions) and one for the other
events, whatever the number of messages in it: 5 to 15% more CPU per call in this service
(bench/ledger.py, docs/benchmarks.md). Every accepted meter value can be logged too
(``log_meter_values``); it is off by default because it costs about 70% more CPU per call here, and
the readings themselves are stored in ``meter_values`` either way.

Signed meter data is checked on receipt when the service has a :class:`MeterDataVerifier` (the
central system always gives it one): each reading's OCMF record against the charger's registered
key, its outcome stored with the reading; an invalid record flags the session at once
(``METER_DATA_UNVERIFIED``), and at the stop the session's records are judged together (pagination,
begin and end records, one meter; :func:`electra.domain.meter_data.judge`). A flagged session is
not billed automatically. A record that comes again for a reading that already has it (a 1.6
charger repeats the begin record in StopTransaction) is not checked again.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select, update

from electra.charging.meter_data import MeterDataVerifier, MeterTrust
from electra.charging.tokens import TokenInfo, TokenRegistry
from electra.domain.meter_data import MeterData, ReadingCheck, Verification, judge
from electra.domain.session import (
    ChargingSession,
    Flag,
    MeterReading,
    Outcome,
    Sampled,
    SessionStatus,
    Started,
    Stopped,
)
from electra.domain.session_log import EventType, LogEvent, printable
from electra.errors import InvalidInput
from electra.ocpp.meter import RegisterReading, SignedMeter
from electra.store.models import (
    ChargeAuthorizationRecord,
    ChargerState,
    ConnectorState,
    MeterValueRecord,
    SessionRecord,
    TransactionEventSeen,
)
from electra.store.prepared import Prepared, insert_rows, upsert_rows
from electra.store.session_log import SessionLog
from electra.store.writer import GroupCommitWriter, defer

LOG = logging.getLogger("electra.sessions")
SESSIONS = SessionRecord.__table__
METER_VALUES = MeterValueRecord.__table__
TX_EVENTS = TransactionEventSeen.__table__
CHARGERS = ChargerState.__table__
CONNECTORS = ConnectorState.__table__

# The hot statements, compiled once (see electra.store.prepared).
CHARGER_BOOTED = upsert_rows(
    CHARGERS,
    ("charger_id", "ocpp_version", "vendor", "model", "firmware", "registration", "booted_at_ms", "last_seen_ms"),
    key=("charger_id",),
)
CHARGER_SEEN = Prepared(
    "charger seen",
    lambda d: update(CHARGERS).where(CHARGERS.c.charger_id == bindparam("cid")).values(last_seen_ms=bindparam("now")),
)
CONNECTOR_STATUS = upsert_rows(
    CONNECTORS,
    ("charger_id", "connector_id", "status", "error_code", "updated_at_ms"),
    key=("charger_id", "connector_id"),
)
SESSION_INSERT = insert_rows(
    SESSIONS,
    (
        "charger_id",
        "connector_id",
        "transaction_uid",
        "ocpp_version",
        "id_token",
        "token_status",
        "vehicle_id",
        "status",
        "started_at_ms",
        "meter_start_wh",
        "flags",
        "offline",
        "updated_at_ms",
        "meter_data",
        "meter_data_detail",
    ),
    ignore_conflicts=True,
    returning=("id",),
)
SESSION_FIND = Prepared(
    "find session",
    lambda d: select(SESSIONS.c.id, SESSIONS.c.transaction_uid, SESSIONS.c.token_status).where(
        SESSIONS.c.charger_id == bindparam("cid"),
        (SESSIONS.c.transaction_uid == bindparam("uid"))
        | ((SESSIONS.c.connector_id == bindparam("connector")) & (SESSIONS.c.started_at_ms == bindparam("started"))),
    ),
)
SESSION_UID = Prepared(
    "name session",
    lambda d: update(SESSIONS).where(SESSIONS.c.id == bindparam("sid")).values(transaction_uid=bindparam("uid")),
)
_FLAG_COLUMNS = ("flags", "updated_at_ms", "meter_start_wh", "meter_data", "meter_data_detail")
_STOP_COLUMNS = ("status", "stopped_at_ms", "meter_stop_wh", "stop_reason", "energy_wh", "billable_wh")
SESSION_FLAGS = Prepared(
    "session flags",
    lambda d: (
        update(SESSIONS).where(SESSIONS.c.id == bindparam("sid")).values({c: bindparam(c) for c in _FLAG_COLUMNS})
    ),
)
SESSION_STOPPED = Prepared(
    "session stopped",
    lambda d: (
        update(SESSIONS)
        .where(SESSIONS.c.id == bindparam("sid"))
        .values({c: bindparam(c) for c in _FLAG_COLUMNS + _STOP_COLUMNS})
    ),
)
AUTHORIZATIONS = ChargeAuthorizationRecord.__table__
BIND = Prepared(  # an authorization pays for one session: bound once, never rebound
    "bind authorization",
    lambda d: (
        update(AUTHORIZATIONS)
        .where(AUTHORIZATIONS.c.id == bindparam("aid"), AUTHORIZATIONS.c.session_id.is_(None))
        .values(session_id=bindparam("sid"))
    ),
)
CHECK_COLUMNS = ("verification", "verification_detail", "ocmf_pagination", "ocmf_tx", "meter_serial", "gateway_serial")
METER_VALUE_ROWS = insert_rows(
    METER_VALUES,
    (
        *("session_id", "timestamp_ms", "register_wh", "context", "signed_data", "signing_method", "public_key"),
        *CHECK_COLUMNS,
    ),
    ignore_conflicts=True,
)
_READING = (
    METER_VALUES.c.session_id == bindparam("sid"),
    METER_VALUES.c.timestamp_ms == bindparam("ts"),
    METER_VALUES.c.register_wh == bindparam("wh"),
)
METER_VALUE_SIGNED = Prepared(
    "attach signature",
    lambda d: (
        update(METER_VALUES)
        .where(*_READING, METER_VALUES.c.signed_data.is_(None))
        .values(
            signed_data=bindparam("signed_data"),
            signing_method=bindparam("method"),
            public_key=bindparam("key"),
            **{c: bindparam(c) for c in CHECK_COLUMNS},
        )
    ),
)
METER_VALUE_CHECKED = Prepared(
    "reading check",
    lambda d: update(METER_VALUES).where(*_READING).values({c: bindparam(c) for c in CHECK_COLUMNS}),
)
CONFLICTING_RECORD = "a second, different signed record came for this reading"


class UnknownTransaction(InvalidInput):
    """A charger named a transaction the central system has no record of."""


@dataclass
class Tracked:
    """An active session in memory: its row id and its domain state (None while a 2.0.1
    transaction has not yet reported a start register)."""

    db_id: int
    uid: str
    charger_id: str
    connector_id: int
    id_token: str
    started_at_ms: int
    state: ChargingSession | None
    start_dirty: bool = False  # the start register came late and is not in the row yet
    # Signed meter data: each reading's check and signed text, keyed by (timestamp, register),
    # and the session's outcome so far (None: no rule broken yet, or not checked).
    checks: dict[tuple[int, int], ReadingCheck] = field(default_factory=dict)
    signed_texts: dict[tuple[int, int], str] = field(default_factory=dict)
    meter_data: str | None = None
    meter_data_detail: str | None = None
    vehicle_id: int | None = None  # whose token started it (for live updates)

    def meter_failed(self, detail: str) -> None:
        """Flags the session for meter data that failed verification (the first reason is kept)."""
        if self.meter_data != MeterData.FAILED.value:
            self.meter_data, self.meter_data_detail = MeterData.FAILED.value, detail[:255]
        if self.state is not None:
            self.state = self.state.flagged(Flag.METER_DATA_UNVERIFIED)


@dataclass(frozen=True)
class StartResult:
    db_id: int
    uid: str
    token: TokenInfo
    duplicate: bool


@dataclass(frozen=True)
class StopResult:
    db_id: int
    outcome: Outcome
    energy_wh: int | None
    billable_wh: int | None
    flags: frozenset[Flag]


class SessionService:
    def __init__(
        self,
        engine: Engine,
        writer: GroupCommitWriter,
        tokens: TokenRegistry,
        clock: Callable[[], float] = time.time,
        token_ttl_s: float = 5.0,
        log_events: bool = True,
        log_meter_values: bool = False,
        meter: MeterDataVerifier | None = None,
    ) -> None:
        self.engine = engine
        self.meter = meter
        self.writer = writer
        self.tokens = tokens
        self.clock = clock
        self.token_ttl_s = token_ttl_s
        self.active: dict[tuple[str, str], Tracked] = {}
        self._signatures: list[tuple[int, RegisterReading, ReadingCheck | None]] = []
        self._token_cache: dict[str, tuple[float, TokenInfo]] = {}
        # A 1.6 session's row is inserted under a placeholder id, renamed to its row id in the same
        # transaction; unique per process (random prefix) and per start (counter), without a
        # urandom call per start.
        self._placeholder_prefix = f"pending-{uuid.uuid4().hex[:16]}-"
        self._placeholders = itertools.count()
        # Payment admission (electra.payments.billing.PaymentGate.check): (charger, vehicle id,
        # time ms) -> a decision with .ok, .status, .reason and .authorization_id. None: no payments.
        self.gate: Callable[[str, int | None, int], Any] | None = None
        # The session log (None: not logged). Events are buffered and appended by one writer call
        # per commit batch (_log); the lock guards the buffer, which the event loop fills while
        # the writer's thread takes it.
        self.log = SessionLog(engine, clock=clock) if log_events else None
        self.log_meter_values = log_events and log_meter_values
        self._log_lock = threading.Lock()
        self._log_buffer: list[LogEvent] | None = None
        self._log_flushed: asyncio.Future[object] | None = None
        # Live updates (the API's event stream): called with a topic and its data once a change is
        # committed, on the event loop; None: nobody listens (electra.payments.events.EventBus.publish).
        self.publish: Callable[[str, dict[str, object]], object] | None = None

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- tokens ----------------------------------------------------------------------------------

    async def authorize(self, id_token: str) -> TokenInfo:
        now = time.monotonic()
        hit = self._token_cache.get(id_token)
        if hit is not None and now - hit[0] < self.token_ttl_s:
            return hit[1]
        info = await asyncio.to_thread(self.tokens.lookup, id_token)
        self._token_cache[id_token] = (now, info)
        return info

    async def admit(self, charger_id: str, token: TokenInfo, at_ms: int) -> tuple[TokenInfo, int | None]:
        """The token as the payment gate sees it at this charger now, and the charge authorization
        that will pay (None without one)."""
        if self.gate is None or not token.accepted:
            return token, None
        decision = await asyncio.to_thread(self.gate, charger_id, token.vehicle_id, at_ms)
        if decision.ok:
            return token, decision.authorization_id
        LOG.info("%s: token %s refused: %s (%s)", charger_id, token.id_token, decision.status, decision.reason)
        return replace(token, status=decision.status), None

    # -- charger read model ---------------------------------------------------------------------

    async def booted(self, charger_id: str, version: str, vendor: str, model: str, fw: str | None, ok: bool) -> None:
        now = self._now_ms()
        values = {
            "ocpp_version": version,
            "vendor": vendor[:64],
            "model": model[:64],
            "firmware": fw[:64] if fw else None,
            "registration": "Accepted" if ok else "Rejected",
            "booted_at_ms": now,
            "last_seen_ms": now,
        }

        await self.writer.execute(CHARGER_BOOTED, {"charger_id": charger_id, **values})

    async def seen(self, charger_id: str) -> None:
        now = self._now_ms()
        await self.writer.execute(CHARGER_SEEN, {"cid": charger_id, "now": now})

    async def connector_status(self, charger_id: str, connector_id: int, status: str, error: str | None) -> None:
        now = self._now_ms()
        await self.writer.execute(
            CONNECTOR_STATUS,
            {
                "charger_id": charger_id,
                "connector_id": connector_id,
                "status": status[:32],
                "error_code": error[:64] if error else None,
                "updated_at_ms": now,
            },
        )
        if self.publish is not None:
            self.publish(
                "charger.status",
                {"charger_id": charger_id, "connector_id": connector_id, "status": status, "error_code": error},
            )

    # -- transactions ----------------------------------------------------------------------------

    async def start(
        self,
        charger_id: str,
        version: str,
        connector_id: int,
        id_token: str,
        timestamp_ms: int,
        meter_start_wh: int | None,
        uid: str | None = None,
        offline: bool = False,
        signed: SignedMeter | None = None,
    ) -> StartResult:
        """Opens a session, or finds the one this start already opened (a retransmission).

        1.6 passes no ``uid``: the row id becomes the transactionId. 2.0.1 passes the charger's, and
        the ``signed`` data of the start register when it came with it.
        """
        if meter_start_wh is not None and meter_start_wh < 0:
            raise InvalidInput(f"negative meter start {meter_start_wh} Wh", "meter registers count up from 0")
        token, authorization_id = await self.admit(charger_id, await self.authorize(id_token), timestamp_ms)
        now = self._now_ms()
        placeholder = uid or f"{self._placeholder_prefix}{next(self._placeholders)}"
        begin = None
        if meter_start_wh is not None:
            begin = RegisterReading(timestamp_ms, meter_start_wh, "Transaction.Begin", signed)
        check = None
        if begin is not None and self.meter is not None:
            trust = await self.meter.trust(charger_id) if signed is not None else None
            check = self._check(trust, begin)
        failed = check is not None and check.verification is Verification.INVALID
        failure = f"{check.where}: {check.detail}"[:255] if failed and check is not None else None

        row = {
            "charger_id": charger_id,
            "connector_id": connector_id,
            "transaction_uid": placeholder,
            "ocpp_version": version,
            "id_token": id_token,
            "token_status": token.status,
            "vehicle_id": token.vehicle_id,
            "status": SessionStatus.ACTIVE.value,
            "started_at_ms": timestamp_ms,
            "meter_start_wh": meter_start_wh,
            "flags": Flag.METER_DATA_UNVERIFIED.value if failed else "",
            "offline": offline,
            "updated_at_ms": now,
            "meter_data": MeterData.FAILED.value if failed else None,
            "meter_data_detail": failure,
        }

        def started(conn: Connection, db_id: int, final_uid: str, token_status: str) -> None:
            # Logged in the transaction that opens the session, with the events of every other
            # session opened in the same batch (one append); logged again (and skipped by the log
            # as already there) when the start is retransmitted, so a start whose event was lost
            # with a failed write still gets it. Only values a retransmission repeats.
            if self.log is None:
                return
            data = {
                "connector_id": connector_id,
                "meter_start_wh": meter_start_wh,
                "token_status": printable(token_status, 16),
                "transaction_uid": printable(final_uid, 64),
            }
            defer(conn, self._append_log, LogEvent(charger_id, EventType.STARTED, db_id, timestamp_ms, data))

        def open_session(conn: Connection) -> tuple[int, str, str, bool]:
            # Inserted unless this start is already there (same transaction id, or same connector
            # and start time): then it is a retransmission and the stored session is the answer.
            db_id = SESSION_INSERT.run(conn, row).scalar()
            if db_id is None:
                found = SESSION_FIND.run(
                    conn, {"cid": charger_id, "uid": placeholder, "connector": connector_id, "started": timestamp_ms}
                ).first()
                if found is None:
                    raise InvalidInput(f"transaction {uid} on {charger_id} collides with another", "use a new id")
                started(conn, int(found[0]), str(found[1]), str(found[2]))
                return int(found[0]), str(found[1]), str(found[2]), True
            final_uid = uid or str(db_id)
            if uid is None:
                SESSION_UID.run(conn, {"sid": db_id, "uid": final_uid})
            if authorization_id is not None:
                BIND.run(conn, {"aid": authorization_id, "sid": db_id})
            if begin is not None:
                METER_VALUE_ROWS.run(conn, _reading_row(db_id, begin, check))
            started(conn, int(db_id), final_uid, token.status)
            return int(db_id), final_uid, token.status, False

        db_id, final_uid, token_status, duplicate = await self.writer.call(open_session)
        if duplicate:
            LOG.info("%s: start of transaction %s received again", charger_id, final_uid)
            token = replace(token, status=token_status) if token_status != token.status else token
            await self.tracked(charger_id, final_uid)  # make sure it is in memory
        else:
            state = (
                ChargingSession.start(
                    final_uid, charger_id, connector_id, Started(timestamp_ms, meter_start_wh, id_token)
                )
                if meter_start_wh is not None
                else None
            )
            t = Tracked(
                db_id, final_uid, charger_id, connector_id, id_token, timestamp_ms, state, vehicle_id=token.vehicle_id
            )
            if begin is not None and check is not None:
                _keep_check(t, begin, check)
                if failure is not None:
                    t.meter_failed(failure)
            self.active[(charger_id, final_uid)] = t
        if self.publish is not None and not duplicate:
            self.publish(
                "session.started",
                {
                    "session_id": db_id,
                    "charger_id": charger_id,
                    "connector_id": connector_id,
                    "vehicle_id": token.vehicle_id,
                    "token_status": token.status,
                    "started_at_ms": timestamp_ms,
                    "meter_start_wh": meter_start_wh,
                },
            )
        return StartResult(db_id, final_uid, token, duplicate)

    async def tracked(self, charger_id: str, uid: str) -> Tracked | None:
        hit = self.active.get((charger_id, uid))
        if hit is not None:
            return hit
        loaded = await asyncio.to_thread(self._load, charger_id, uid)
        if loaded is not None and (loaded.state is None or loaded.state.status is SessionStatus.ACTIVE):
            self.active[(charger_id, uid)] = loaded
        return loaded

    def _load(self, charger_id: str, uid: str) -> Tracked | None:
        return load_tracked(self.engine, charger_id, uid)

    async def record(
        self, charger_id: str, uid: str, readings: list[RegisterReading], seq_no: int | None = None
    ) -> int:
        """Adds meter readings to a session. Returns how many were new."""
        t = await self.tracked(charger_id, uid)
        if t is None:
            raise UnknownTransaction(f"transaction {uid} is not known on charger {charger_id}", "start it first")
        flags_before = self._flags(t)
        rows = self._apply_readings(t, readings, await self._trust(charger_id, readings))
        writes = self._signature_writes()
        if rows:
            writes.append(self.writer.rows(METER_VALUES, rows, ignore_conflicts=True))
            if self.log_meter_values:
                writes.extend(self._log(_meter_events(t.charger_id, rows)))
        if self._flags(t) != flags_before or t.start_dirty:
            writes.append(self._flags_update(t))
            t.start_dirty = False
        if seq_no is not None:
            writes.append(self._seq_write(t, seq_no, "Updated"))
        await self._settle(t, writes)
        if self.publish is not None and rows and t.state is not None:
            last = t.state.readings[-1]
            self.publish(
                "session.progress",
                {
                    "session_id": t.db_id,
                    "charger_id": charger_id,
                    "vehicle_id": t.vehicle_id,
                    "energy_wh": t.state.energy_wh,
                    "register_wh": last.register_wh,
                    "at_ms": last.timestamp_ms,
                },
            )
        return len(rows)

    async def stop(
        self,
        charger_id: str,
        uid: str,
        timestamp_ms: int,
        meter_stop_wh: int | None,
        reason: str,
        readings: Sequence[RegisterReading] = (),
        seq_no: int | None = None,
    ) -> StopResult:
        t = await self.tracked(charger_id, uid)
        if t is None:
            raise UnknownTransaction(f"transaction {uid} is not known on charger {charger_id}", "start it first")
        trust = await self.meter.trust(charger_id) if self.meter is not None else None
        rows = self._apply_readings(t, list(readings), trust)
        writes = self._signature_writes()
        if t.state is None:
            if meter_stop_wh is None:
                raise InvalidInput(
                    f"transaction {uid} ended without any energy register", "send meter values with the transaction"
                )
            LOG.warning("%s: transaction %s has no start register; it bills no energy", charger_id, uid)
            t.state = ChargingSession.start(
                uid, charger_id, t.connector_id, Started(t.started_at_ms, meter_stop_wh, t.id_token)
            )
            if t.meter_data == MeterData.FAILED.value:
                t.state = t.state.flagged(Flag.METER_DATA_UNVERIFIED)
        stop_wh = meter_stop_wh if meter_stop_wh is not None else t.state.readings[-1].register_wh
        applied = t.state.apply(Stopped(timestamp_ms, stop_wh, reason or "Local"))
        t.state = applied.session
        events = _meter_events(t.charger_id, rows) if self.log_meter_values else []
        if rows:
            writes.append(self.writer.rows(METER_VALUES, rows, ignore_conflicts=True))
        if applied.outcome is Outcome.APPLIED:
            end = RegisterReading(timestamp_ms, stop_wh, "Transaction.End")
            end_check = t.checks.get((timestamp_ms, stop_wh))
            if trust is not None and end_check is None:
                end_check = _keep_check(t, end, self._check(trust, end))
            writes.append(
                self.writer.rows(METER_VALUES, [_reading_row(t.db_id, end, end_check)], ignore_conflicts=True)
            )
            if trust is not None:
                self._judge(t, trust)
            done = t.state
            data = {
                "billable_wh": done.billable_energy_wh,
                "energy_wh": done.energy_wh,
                "flags": ",".join(sorted(f.value for f in done.flags)),
                "meter_stop_wh": stop_wh,
                "reason": printable(done.stop_reason or "", 32),
            }
            events.append(LogEvent(charger_id, EventType.STOPPED, t.db_id, timestamp_ms, data))
        writes.extend(self._log(events))
        if applied.outcome is not Outcome.DUPLICATE:
            writes.append(self._flags_update(t))
        if seq_no is not None:
            writes.append(self._seq_write(t, seq_no, "Ended"))
        await self._settle(t, writes)
        if t.state.status is SessionStatus.COMPLETED:
            self.active.pop((charger_id, uid), None)
        if applied.outcome is Outcome.REJECTED:
            LOG.warning("%s: stop of %s rejected: %s", charger_id, uid, applied.detail)
        elif applied.outcome is Outcome.APPLIED and self.publish is not None:
            self.publish(
                "session.stopped",
                {
                    "session_id": t.db_id,
                    "charger_id": charger_id,
                    "vehicle_id": t.vehicle_id,
                    "energy_wh": t.state.energy_wh,
                    "billable_wh": t.state.billable_energy_wh,
                    "stopped_at_ms": timestamp_ms,
                    "reason": t.state.stop_reason,
                    "flags": sorted(f.value for f in t.state.flags),
                },
            )
        return StopResult(
            t.db_id, applied.outcome, t.state.energy_wh, t.state.billable_energy_wh, frozenset(t.state.flags)
        )

    async def seen_event(self, charger_id: str, uid: str, seq_no: int, event_type: str) -> None:
        t = await self.tracked(charger_id, uid)
        if t is not None:
            await self._seq_write(t, seq_no, event_type)

    # -- helpers ---------------------------------------------------------------------------------

    def _log(self, events: list[LogEvent]) -> list[asyncio.Future[object]]:
        """Queues events for the session log: into the buffer of the writer call already queued,
        or a new one. The returned future resolves when they are committed."""
        if self.log is None or not events:
            return []
        with self._log_lock:
            if self._log_buffer is None or self._log_flushed is None or self._log_flushed.done():
                buffer: list[LogEvent] = []
                self._log_buffer = buffer
                self._log_flushed = self.writer.call(functools.partial(self._flush_log, buffer))
            self._log_buffer.extend(events)
            return [self._log_flushed]

    def _append_log(self, conn: Connection, events: list[LogEvent]) -> None:
        assert self.log is not None
        self.log.append_in(conn, events)

    def _flush_log(self, buffer: list[LogEvent], conn: Connection) -> None:
        # Runs in the writer's thread, inside the commit batch; closes the buffer first so that
        # later events open the next one. May run twice (a failed batch is retried write by
        # write): the log skips events it already holds.
        with self._log_lock:
            if self._log_buffer is buffer:
                self._log_buffer = None
            events = list(buffer)
        assert self.log is not None
        self.log.append_in(conn, events)

    async def _trust(self, charger_id: str, readings: Sequence[RegisterReading]) -> MeterTrust | None:
        """The charger's key, when there is signed data to check (unsigned readings need none)."""
        if self.meter is None or all(r.signed is None for r in readings):
            return None
        return self.meter.fresh(charger_id) or await self.meter.trust(charger_id)

    def _check(self, trust: MeterTrust | None, r: RegisterReading) -> ReadingCheck:
        assert self.meter is not None
        if r.signed is None or trust is None:
            return ReadingCheck.unsigned(r.timestamp_ms, r.register_wh)
        s = r.signed
        return self.meter.check(trust, r.timestamp_ms, r.register_wh, s.data, s.encoding, s.public_key)

    def _apply_readings(
        self, t: Tracked, readings: list[RegisterReading], trust: MeterTrust | None = None
    ) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = []
        checking = self.meter is not None
        for r in sorted(readings, key=lambda x: x.timestamp_ms):
            if t.state is None:
                t.state = ChargingSession.start(
                    t.uid, t.charger_id, t.connector_id, Started(r.timestamp_ms, r.register_wh, t.id_token)
                )
                if t.meter_data == MeterData.FAILED.value:
                    t.state = t.state.flagged(Flag.METER_DATA_UNVERIFIED)
                t.start_dirty = True
                outcome = Outcome.APPLIED
            else:
                applied = t.state.apply(Sampled(MeterReading(r.timestamp_ms, r.register_wh)))
                t.state, outcome = applied.session, applied.outcome
                if outcome is Outcome.REJECTED:
                    LOG.warning("%s: reading of %s rejected: %s", t.charger_id, t.uid, applied.detail)
            if outcome is Outcome.APPLIED:
                check = _keep_check(t, r, self._check(trust, r)) if checking else None
                rows.append(_reading_row(t.db_id, r, check))
            elif outcome is Outcome.DUPLICATE and r.signed is not None:
                # The same reading again, now with its signature (a 1.6 charger signs the start
                # register in a MeterValues after StartTransaction): keep the signature.
                key = (r.timestamp_ms, r.register_wh)
                known = t.signed_texts.get(key)
                if not checking:
                    self._signatures.append((t.db_id, r, None))
                elif known is None:
                    self._signatures.append((t.db_id, r, _keep_check(t, r, self._check(trust, r))))
                elif known != r.signed.data:
                    conflict = ReadingCheck.invalid(r.timestamp_ms, r.register_wh, CONFLICTING_RECORD)
                    t.checks[key] = conflict
                    self._signatures.append((t.db_id, replace(r, signed=None), conflict))
                    t.meter_failed(f"{conflict.where}: {conflict.detail}")
        return rows

    def _judge(self, t: Tracked, trust: MeterTrust) -> None:
        """The completed session's signed meter data, judged as a whole."""
        s = t.state
        assert s is not None and s.meter_stop_wh is not None
        verdict = judge(
            t.checks.values(),
            start_wh=s.meter_start_wh,
            stop_wh=s.meter_stop_wh,
            signing_required=trust.signing_required,
        )
        if verdict.outcome is MeterData.FAILED:
            t.meter_failed(verdict.detail)
            LOG.warning("%s: meter data of %s failed: %s", t.charger_id, t.uid, verdict.detail)
        elif t.meter_data is None:
            t.meter_data = verdict.outcome.value

    def _signature_writes(self) -> list[asyncio.Future[object]]:
        pending, self._signatures = self._signatures, []
        writes = []
        for session_id, r, check in pending:
            if r.signed is None:  # only the check changes
                writes.append(self.writer.execute(METER_VALUE_CHECKED, _check_params(session_id, r, check)))
                continue
            params = {
                **_check_params(session_id, r, check),
                "signed_data": r.signed.data,
                "method": r.signed.method,
                "key": r.signed.public_key,
            }
            writes.append(self.writer.execute(METER_VALUE_SIGNED, params))
        return writes

    @staticmethod
    def _flags(t: Tracked) -> frozenset[Flag]:
        return t.state.flags if t.state is not None else frozenset()

    def _flags_update(self, t: Tracked) -> asyncio.Future[object]:
        s = t.state
        assert s is not None
        values: dict[str, object] = {
            "sid": t.db_id,
            "flags": ",".join(sorted(f.value for f in s.flags)),
            "updated_at_ms": self._now_ms(),
            "meter_start_wh": s.meter_start_wh,
            "meter_data": t.meter_data,
            "meter_data_detail": t.meter_data_detail,
        }
        if s.status is not SessionStatus.COMPLETED:
            return self.writer.execute(SESSION_FLAGS, values)
        values.update(
            status=s.status.value,
            stopped_at_ms=s.stopped_at_ms,
            meter_stop_wh=s.meter_stop_wh,
            stop_reason=(s.stop_reason or "")[:32],
            energy_wh=s.energy_wh,
            billable_wh=s.billable_energy_wh,
        )
        return self.writer.execute(SESSION_STOPPED, values)

    def _seq_write(self, t: Tracked, seq_no: int, event_type: str) -> asyncio.Future[object]:
        return self.writer.rows(
            TX_EVENTS, [{"session_id": t.db_id, "seq_no": seq_no, "event_type": event_type}], ignore_conflicts=True
        )

    async def _settle(self, t: Tracked, writes: list[asyncio.Future[object]]) -> None:
        if not writes:
            return
        try:
            if len(writes) == 1:
                await writes[0]
            else:
                await asyncio.gather(*writes)
        except Exception:
            # Memory ran ahead of the store: forget it, the next event reloads what is durable.
            self.active.pop((t.charger_id, t.uid), None)
            raise


def load_tracked(engine: Engine, charger_id: str, uid: str) -> Tracked | None:
    """A session as the store has it, rebuilt through the state machine."""
    with engine.connect() as conn:
        row = conn.execute(
            select(SESSIONS).where(SESSIONS.c.charger_id == charger_id, SESSIONS.c.transaction_uid == uid)
        ).first()
        if row is None:
            return None
        readings = conn.execute(
            select(
                METER_VALUES.c.timestamp_ms,
                METER_VALUES.c.register_wh,
                METER_VALUES.c.signed_data,
                *(METER_VALUES.c[c] for c in CHECK_COLUMNS),
            )
            .where(METER_VALUES.c.session_id == row.id)
            .order_by(METER_VALUES.c.timestamp_ms, METER_VALUES.c.id)
        ).all()
    state: ChargingSession | None = None
    if row.meter_start_wh is not None:
        state = ChargingSession.start(
            uid, charger_id, row.connector_id, Started(row.started_at_ms, row.meter_start_wh, row.id_token)
        )
    elif readings:
        first = readings[0]
        state = ChargingSession.start(
            uid, charger_id, row.connector_id, Started(first.timestamp_ms, first.register_wh, row.id_token)
        )
    if state is not None:
        for r in readings:
            if row.stopped_at_ms is not None and r.timestamp_ms == row.stopped_at_ms:
                continue  # the stop reading is applied with the stop below
            state = state.apply(Sampled(MeterReading(r.timestamp_ms, r.register_wh))).session
        if row.stopped_at_ms is not None and row.meter_stop_wh is not None:
            state = state.apply(Stopped(row.stopped_at_ms, row.meter_stop_wh, row.stop_reason or "Local")).session
        stored_flags = {Flag(f) for f in row.flags.split(",") if f}
        state = replace(state, flags=state.flags | stored_flags)
    t = Tracked(
        row.id, uid, charger_id, row.connector_id, row.id_token, row.started_at_ms, state, vehicle_id=row.vehicle_id
    )
    t.meter_data, t.meter_data_detail = row.meter_data, row.meter_data_detail
    for r in readings:
        key = (r.timestamp_ms, r.register_wh)
        if r.signed_data is not None:
            t.signed_texts[key] = r.signed_data
        if r.verification is not None:
            t.checks[key] = ReadingCheck(
                r.timestamp_ms,
                r.register_wh,
                Verification(r.verification),
                r.verification_detail or "",
                r.ocmf_pagination,
                r.ocmf_tx,
                r.meter_serial,
                r.gateway_serial,
            )
    return t


def load_session(engine: Engine, charger_id: str, uid: str) -> ChargingSession | None:
    t = load_tracked(engine, charger_id, uid)
    return t.state if t is not None else None


def _meter_events(charger_id: str, rows: list[dict[str, object]]) -> list[LogEvent]:
    """The session log's events for accepted meter readings (rows as :func:`_reading_row` makes them)."""
    events = []
    for r in rows:
        session_id, at_ms, register_wh = r["session_id"], r["timestamp_ms"], r["register_wh"]
        assert isinstance(session_id, int) and isinstance(at_ms, int) and isinstance(register_wh, int)
        events.append(LogEvent(charger_id, EventType.METER_VALUE, session_id, at_ms, {"register_wh": register_wh}))
    return events


def _keep_check(t: Tracked, r: RegisterReading, check: ReadingCheck) -> ReadingCheck:
    """Holds a reading's check (and signed text) with its session; an invalid one flags it."""
    key = (r.timestamp_ms, r.register_wh)
    t.checks[key] = check
    if r.signed is not None:
        t.signed_texts[key] = r.signed.data
    if check.verification is Verification.INVALID:
        t.meter_failed(f"{check.where}: {check.detail}")
    return check


def _check_values(check: ReadingCheck | None) -> dict[str, object]:
    if check is None:
        return dict.fromkeys(CHECK_COLUMNS)
    return {
        "verification": check.verification.value,
        "verification_detail": check.detail or None,
        "ocmf_pagination": check.pagination,
        "ocmf_tx": check.reason,
        "meter_serial": check.meter_serial,
        "gateway_serial": check.gateway_serial,
    }


def _check_params(session_id: int, r: RegisterReading, check: ReadingCheck | None) -> dict[str, object]:
    return {"sid": session_id, "ts": r.timestamp_ms, "wh": r.register_wh, **_check_values(check)}


def _reading_row(session_id: int, r: RegisterReading, check: ReadingCheck | None = None) -> dict[str, object]:
    return {
        "session_id": session_id,
        "timestamp_ms": r.timestamp_ms,
        "register_wh": r.register_wh,
        "context": r.context,
        "signed_data": r.signed.data if r.signed else None,
        "signing_method": r.signed.method if r.signed else None,
        "public_key": r.signed.public_key if r.signed else None,
        **_check_values(check),
    }
