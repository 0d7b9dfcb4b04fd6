"""The session service over the real store, on SQLite and on PostgreSQL: idempotent retransmits,
ordering, flags, restarts, and the group-commit writer's failure isolation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text

from electra.charging.service import SessionService
from electra.charging.tokens import TokenRegistry
from electra.domain.session import Flag, Outcome
from electra.errors import ElectraError, InvalidInput
from electra.ocpp.meter import RegisterReading
from electra.store.models import MeterValueRecord, OcppMessage, SessionRecord
from electra.store.writer import GroupCommitWriter, defer

T0 = 1_795_000_000_000  # ms


def run(engine: Engine, body: Callable[[SessionService], Awaitable[Any]]) -> Any:
    """Runs ``body`` with a fresh service (a fresh process, as far as memory goes) over ``engine``."""

    async def main() -> Any:
        writer = GroupCommitWriter(engine)
        await writer.start()
        try:
            return await body(SessionService(engine, writer, TokenRegistry(engine)))
        finally:
            await writer.stop()

    return asyncio.run(main())


def rows(engine: Engine, model: Any) -> int:
    with engine.connect() as c:
        return int(c.scalar(select(func.count()).select_from(model)) or 0)


def session_row(engine: Engine, db_id: int) -> Any:
    with engine.connect() as c:
        return c.execute(select(SessionRecord.__table__).where(SessionRecord.id == db_id)).one()


def r(minute: int, wh: int, signed: str | None = None) -> RegisterReading:
    from electra.ocpp.meter import SignedMeter

    return RegisterReading(T0 + minute * 60_000, wh, None, SignedMeter(signed) if signed else None)


def test_a_16_session_is_stored_once_and_billed_from_registers(store_engine: Engine) -> None:
    TokenRegistry(store_engine).issue("CARD-1", owner="0x" + "ab" * 20)

    async def body(svc: SessionService) -> Any:
        first = await svc.start("CP-1", "1.6", 1, "CARD-1", T0, 10_000)
        again = await svc.start("CP-1", "1.6", 1, "CARD-1", T0, 10_000)  # the charger retransmits
        # Out of order, with a retransmission and signed data on one of them.
        assert await svc.record("CP-1", first.uid, [r(10, 13_000)]) == 1
        assert await svc.record("CP-1", first.uid, [r(5, 11_500, "OCMF|{}|{}")]) == 1
        assert await svc.record("CP-1", first.uid, [r(10, 13_000)]) == 0
        stop = await svc.stop("CP-1", first.uid, T0 + 15 * 60_000, 14_250, "EVDisconnected")
        return first, again, stop

    first, again, stop = run(store_engine, body)
    assert first.token.accepted and not first.duplicate
    assert (again.db_id, again.duplicate) == (first.db_id, True)
    assert first.uid == str(first.db_id), "1.6 transactionId is the row id"
    assert (stop.outcome, stop.energy_wh, stop.billable_wh) == (Outcome.APPLIED, 4_250, 4_250)
    row = session_row(store_engine, first.db_id)
    assert (row.status, row.energy_wh, row.billable_wh, row.meter_stop_wh) == ("completed", 4_250, 4_250, 14_250)
    with store_engine.connect() as c:
        stored = c.execute(
            select(MeterValueRecord.timestamp_ms, MeterValueRecord.register_wh, MeterValueRecord.signed_data)
            .where(MeterValueRecord.session_id == first.db_id)
            .order_by(MeterValueRecord.timestamp_ms)
        ).all()
    assert [(x.register_wh, x.signed_data) for x in stored] == [
        (10_000, None),
        (11_500, "OCMF|{}|{}"),
        (13_000, None),
        (14_250, None),
    ]
    assert rows(store_engine, SessionRecord) == 1


def test_after_a_restart_retransmitted_stop_and_readings_change_nothing(store_engine: Engine) -> None:
    async def start_and_sample(svc: SessionService) -> str:
        s = await svc.start("CP-2", "1.6", 2, "UNKNOWN-CARD", T0, 0)
        await svc.record("CP-2", s.uid, [r(1, 500), r(2, 900)])
        assert s.token.status == "Invalid", "unknown tokens are Invalid, and the session is still recorded"
        return s.uid

    uid = run(store_engine, start_and_sample)

    async def stop_twice(svc: SessionService) -> Any:  # a new service: nothing in memory
        await svc.record("CP-2", uid, [r(2, 900)])
        one = await svc.stop("CP-2", uid, T0 + 3 * 60_000, 1_200, "Local")
        two = await svc.stop("CP-2", uid, T0 + 3 * 60_000, 1_200, "Local")
        return one, two

    one, two = run(store_engine, stop_twice)
    assert (one.outcome, one.energy_wh) == (Outcome.APPLIED, 1_200)
    assert (two.outcome, two.energy_wh) == (Outcome.DUPLICATE, 1_200)

    async def stop_again_later(svc: SessionService) -> Any:
        return await svc.stop("CP-2", uid, T0 + 3 * 60_000, 1_200, "Local")

    three = run(store_engine, stop_again_later)
    assert three.outcome is Outcome.DUPLICATE
    assert rows(store_engine, MeterValueRecord) == 4


def test_a_meter_running_backwards_is_flagged_and_not_billed(store_engine: Engine) -> None:
    async def body(svc: SessionService) -> Any:
        s = await svc.start("CP-3", "1.6", 1, "T", T0, 5_000)
        await svc.record("CP-3", s.uid, [r(5, 6_000), r(10, 5_500)])
        return s, await svc.stop("CP-3", s.uid, T0 + 11 * 60_000, 7_000, "Local")

    s, stop = run(store_engine, body)
    assert Flag.METER_BACKWARDS in stop.flags
    assert stop.billable_wh is None
    row = session_row(store_engine, s.db_id)
    assert row.flags == "meter_backwards" and row.billable_wh is None and row.energy_wh == 2_000


def test_a_201_transaction_that_reports_its_start_register_late(store_engine: Engine) -> None:
    async def body(svc: SessionService) -> Any:
        s = await svc.start("CS-1", "2.0.1", 1, "TOK", T0, None, uid="tx-abc", offline=True)
        dup = await svc.start("CS-1", "2.0.1", 1, "TOK", T0, None, uid="tx-abc", offline=True)
        await svc.record("CS-1", "tx-abc", [r(1, 2_000), r(4, 3_100)], seq_no=1)
        stop = await svc.stop("CS-1", "tx-abc", T0 + 5 * 60_000, 3_500, "EVDisconnected", seq_no=2)
        return s, dup, stop

    s, dup, stop = run(store_engine, body)
    assert dup.duplicate and dup.db_id == s.db_id and s.uid == "tx-abc"
    assert stop.energy_wh == 1_500, "energy counts from the first register the charger reported"
    row = session_row(store_engine, s.db_id)
    assert (row.meter_start_wh, row.offline, row.status) == (2_000, True, "completed")
    with store_engine.connect() as c:
        assert c.execute(text("select count(*) from transaction_events")).scalar() == 2


def test_unknown_transactions_and_negative_starts_are_refused(store_engine: Engine) -> None:
    async def body(svc: SessionService) -> None:
        with pytest.raises(InvalidInput, match="not known"):
            await svc.record("CP-9", "999", [r(1, 1)])
        with pytest.raises(InvalidInput, match="not known"):
            await svc.stop("CP-9", "999", T0, 1, "Local")
        with pytest.raises(InvalidInput, match="negative"):
            await svc.start("CP-9", "1.6", 1, "T", T0, -5)

    run(store_engine, body)
    assert rows(store_engine, SessionRecord) == 0
    assert rows(store_engine, MeterValueRecord) == 0


def test_group_commit_batches_and_isolates_a_failing_write(store_engine: Engine) -> None:
    table = OcppMessage.__table__

    async def body() -> Any:
        writer = GroupCommitWriter(store_engine)
        await writer.start()
        good = [
            writer.rows(
                table,
                [
                    {
                        "charger_id": "CP",
                        "message_id": str(i),
                        "action": "Heartbeat",
                        "received_at_ms": i,
                        "payload": "{}",
                    }
                ],
            )
            for i in range(300)
        ]
        bad = writer.rows(table, [{"charger_id": None, "message_id": "x", "action": "A", "received_at_ms": 0}])
        results = await asyncio.gather(*good, bad, return_exceptions=True)
        await writer.stop()
        return writer, results

    writer, results = asyncio.run(body())
    assert all(x is None for x in results[:-1])
    assert isinstance(results[-1], Exception), "the bad row fails on its own"
    assert rows(store_engine, OcppMessage) == 300
    assert writer.batches < writer.writes, "writes queued together commit together"
    assert writer.failed_batches >= 1


def _heartbeat_row(i: int) -> dict[str, Any]:
    return {"charger_id": "CP", "message_id": str(i), "action": "Heartbeat", "received_at_ms": i, "payload": "{}"}


def test_the_writer_recovers_its_connection_after_a_failed_batch(store_engine: Engine) -> None:
    table = OcppMessage.__table__

    async def body() -> list[Any]:
        writer = GroupCommitWriter(store_engine)
        await writer.start()
        try:
            first = await asyncio.gather(
                writer.rows(table, [_heartbeat_row(1)]),
                writer.rows(table, [{**_heartbeat_row(2), "charger_id": None}]),
                return_exceptions=True,
            )
            # The batch failed and its connection was dropped; the next batch commits on a new one.
            later = await asyncio.gather(*(writer.rows(table, [_heartbeat_row(i)]) for i in range(3, 13)))
            return [*first, *later]
        finally:
            await writer.stop()

    results = asyncio.run(body())
    assert results[0] is None and isinstance(results[1], Exception)
    assert results[2:] == [None] * 10
    assert rows(store_engine, OcppMessage) == 11


def test_the_wal_is_checkpointed_beside_the_commits_on_sqlite(tmp_path: Any) -> None:
    from electra.store.db import make_engine, migrate

    engine = make_engine(f"sqlite:///{tmp_path}/wal.db")
    migrate(engine)
    table = OcppMessage.__table__

    async def body() -> tuple[int, int]:
        writer = GroupCommitWriter(engine, checkpoint_interval_s=0.05)
        assert writer.checkpointer is not None
        await writer.start()
        try:
            await asyncio.gather(*(writer.rows(table, [_heartbeat_row(i)]) for i in range(200)))
            autocheckpoint = await asyncio.get_running_loop().run_in_executor(
                writer._thread, lambda: writer._connection().exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
            )
            for _ in range(200):
                if writer.checkpointer.checkpoints:
                    break
                await asyncio.sleep(0.01)
            return int(autocheckpoint or 0), writer.checkpointer.checkpoints
        finally:
            await writer.stop()

    try:
        autocheckpoint, checkpoints = asyncio.run(body())
        assert autocheckpoint == 0, "the writer's own commits leave the WAL to the checkpointer"
        assert checkpoints >= 1
        with engine.connect() as conn:
            busy, wal_frames, copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        assert busy == 0 and wal_frames == copied, "nothing left behind in the WAL"
        assert rows(engine, OcppMessage) == 200
    finally:
        engine.dispose()


def test_deferred_items_are_flushed_once_per_transaction_and_go_with_a_failed_one(store_engine: Engine) -> None:
    table = OcppMessage.__table__
    flushed: list[list[int]] = []

    def flush(conn: Any, items: list[int]) -> None:
        flushed.append(sorted(items))
        conn.execute(table.insert(), [_heartbeat_row(1000 + i) for i in items])

    def call(i: int) -> Callable[[Any], int]:
        def run(conn: Any) -> int:
            defer(conn, flush, i)
            return i

        return run

    async def body() -> list[Any]:
        writer = GroupCommitWriter(store_engine)
        await writer.start()
        try:
            together = await asyncio.gather(*(writer.call(call(i)) for i in range(5)))
            flushes_in_one_batch = list(flushed)
            flushed.clear()
            bad = writer.rows(table, [{**_heartbeat_row(0), "charger_id": None}])
            apart = await asyncio.gather(writer.call(call(7)), bad, writer.call(call(8)), return_exceptions=True)
            return [together, flushes_in_one_batch, apart]
        finally:
            await writer.stop()

    together, first, apart = asyncio.run(body())
    assert together == [0, 1, 2, 3, 4]
    assert first == [[0, 1, 2, 3, 4]], "one flush for the batch"
    assert apart[0] == 7 and isinstance(apart[1], Exception) and apart[2] == 8
    # The failed batch's flush was rolled back with it; each call retried alone flushed its own item.
    assert flushed[-2:] == [[7], [8]]
    with store_engine.connect() as conn:
        ids = conn.execute(select(table.c.message_id).where(table.c.message_id >= "1000")).scalars().all()
    assert sorted(ids) == ["1000", "1001", "1002", "1003", "1004", "1007", "1008"]


def test_defer_outside_a_writer_transaction_is_refused(store_engine: Engine) -> None:
    with store_engine.connect() as conn, pytest.raises(ElectraError, match="outside"):
        defer(conn, lambda c, items: None, 1)


def test_a_stopped_writer_refuses_writes_loudly(store_engine: Engine) -> None:
    async def body() -> None:
        writer = GroupCommitWriter(store_engine)
        with pytest.raises(ElectraError, match="stopped"):
            await writer.call(lambda conn: None)

    asyncio.run(body())


def test_a_signature_that_comes_after_its_reading_is_kept(store_engine: Engine) -> None:
    async def body(svc: SessionService) -> int:
        s = await svc.start("CP-4", "1.6", 1, "T", T0, 7_000)  # StartTransaction carries no signature
        assert await svc.record("CP-4", s.uid, [r(0, 7_000, "OCMF|begin|sig")]) == 0  # same reading, signed
        return s.db_id

    db_id = run(store_engine, body)
    with store_engine.connect() as c:
        signed = c.execute(
            select(MeterValueRecord.register_wh, MeterValueRecord.signed_data).where(
                MeterValueRecord.session_id == db_id
            )
        ).all()
    assert [tuple(x) for x in signed] == [(7_000, "OCMF|begin|sig")]
