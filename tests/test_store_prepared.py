"""Prepared statements and the group-commit writer's batching of them, on SQLite and PostgreSQL;
and the central system's GC policy."""

from __future__ import annotations

import asyncio
import gc

import pytest
from sqlalchemy import Engine, select

from electra.charging.service import CHARGER_SEEN, CONNECTOR_STATUS, CONNECTORS
from electra.errors import ElectraError
from electra.ocpp.gateway import GcPolicy
from electra.store.models import ChargerState
from electra.store.prepared import insert_rows
from electra.store.writer import GroupCommitWriter

CHARGERS = ChargerState.__table__


def _status(cid: str, connector: int, status: str, at: int) -> dict[str, object]:
    return {"charger_id": cid, "connector_id": connector, "status": status, "error_code": None, "updated_at_ms": at}


def test_upsert_inserts_then_updates_and_the_last_write_wins(store_engine: Engine) -> None:
    with store_engine.begin() as conn:
        CONNECTOR_STATUS.run(conn, _status("CP-1", 1, "Available", 1))
        # one executemany: two updates of the same key and a new key, in order
        CONNECTOR_STATUS.run(
            conn,
            [_status("CP-1", 1, "Charging", 2), _status("CP-1", 2, "Faulted", 3), _status("CP-1", 1, "Finishing", 4)],
        )
    with store_engine.connect() as conn:
        rows = conn.execute(
            select(CONNECTORS.c.connector_id, CONNECTORS.c.status, CONNECTORS.c.updated_at_ms).order_by(
                CONNECTORS.c.connector_id
            )
        ).all()
    assert [tuple(r) for r in rows] == [(1, "Finishing", 4), (2, "Faulted", 3)]


def test_insert_ignoring_conflicts_returns_only_new_rows(store_engine: Engine) -> None:
    cols = ("charger_id", "connector_id", "status", "error_code", "updated_at_ms")
    stmt = insert_rows(CONNECTORS, cols, ignore_conflicts=True, returning=("connector_id",))
    with store_engine.begin() as conn:
        assert stmt.run(conn, _status("CP-2", 7, "Available", 1)).scalar() == 7
        assert stmt.run(conn, _status("CP-2", 7, "Charging", 2)).scalar() is None  # already there: kept
    with store_engine.connect() as conn:
        assert conn.execute(select(CONNECTORS.c.status)).scalar_one() == "Available"


def test_a_missing_parameter_is_a_clear_error(store_engine: Engine) -> None:
    with store_engine.begin() as conn, pytest.raises(ElectraError, match="no value for parameter"):
        CHARGER_SEEN.run(conn, {"cid": "CP-3"})


def test_writer_batches_statements_and_isolates_a_failing_one(store_engine: Engine) -> None:
    async def scenario() -> tuple[list[object], int]:
        writer = GroupCommitWriter(store_engine)
        await writer.start()
        try:
            futures = [writer.execute(CONNECTOR_STATUS, _status("CP-4", c, "Available", c)) for c in range(1, 6)]
            bad = writer.execute(CONNECTOR_STATUS, {**_status("CP-4", 9, "Available", 9), "status": None})
            results = await asyncio.gather(*futures, bad, return_exceptions=True)
            return results, writer.failed_batches
        finally:
            await writer.stop()

    results, failed_batches = asyncio.run(scenario())
    assert results[:5] == [None] * 5
    assert isinstance(results[5], Exception)  # status is NOT NULL: this write alone fails
    assert failed_batches >= 1
    with store_engine.connect() as conn:
        assert conn.execute(select(CONNECTORS.c.connector_id).order_by(CONNECTORS.c.connector_id)).scalars().all() == [
            1,
            2,
            3,
            4,
            5,
        ]


def test_gc_policy_freezes_once_a_wave_settles_and_refreezes_after_a_drop() -> None:
    policy = GcPolicy(interval_s=0)
    saved = gc.get_threshold()
    policy.install()
    try:
        assert gc.get_threshold() == policy.thresholds
        policy.tick(500)  # still growing
        assert policy.freezes == 0
        policy.tick(1000)
        assert policy.freezes == 0
        policy.tick(1000)  # settled: frozen
        assert (policy.freezes, policy.frozen_at) == (1, 1000)
        assert gc.get_freeze_count() > 0
        policy.tick(1050)
        policy.tick(1050)  # a few more is not a wave
        assert policy.freezes == 1
        policy.tick(600)
        policy.tick(600)  # well below the frozen count: unfreeze, collect, freeze again
        assert (policy.freezes, policy.frozen_at) == (2, 600)
    finally:
        policy.uninstall()
        gc.unfreeze()
    assert gc.get_threshold() == saved
