"""The session log over the real store, on SQLite and PostgreSQL: chains link, seqs are contiguous,
appends are idempotent and safe from several threads, batches and proofs hold, and every kind of
tampering done straight in the database is reported with its location."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select, text

from electra.domain.keccak import keccak256
from electra.domain.merkle import MerkleTree, merkle_root, verify
from electra.domain.record import SessionRecord
from electra.domain.session_log import GENESIS, Break, BreakKind, EventType, LogEvent, canonical_json, chain_hash
from electra.errors import ElectraError
from electra.store.models import LogEventRecord, SessionLogRecord
from electra.store.session_log import ANCHORED, BUILT, SUBMITTED, LogTampered, SessionLog

T0 = 1_795_000_000_000
ASSET = "0x" + "ab" * 20


def meter(charger: str, session: int, i: int) -> LogEvent:
    return LogEvent(charger, EventType.METER_VALUE, session, T0 + i * 60_000, {"register_wh": 1000 + i * 250})


def lifecycle(charger: str, session: int, readings: int = 3) -> list[LogEvent]:
    return [
        LogEvent(charger, EventType.STARTED, session, T0, {"connector_id": 1, "meter_start_wh": 1000}),
        *(meter(charger, session, i) for i in range(1, readings + 1)),
        LogEvent(charger, EventType.STOPPED, session, T0 + 3_600_000, {"meter_stop_wh": 1000 + readings * 250}),
    ]


def record(session: int, energy_wh: int = 750) -> SessionRecord:
    return SessionRecord(session, 11, 5, T0, T0 + 3_600_000, 1000, 1000 + energy_wh, energy_wh, ASSET, 42 * energy_wh)


def count(engine: Engine, model: type) -> int:
    with engine.connect() as c:
        return int(c.scalar(select(func.count()).select_from(model)) or 0)


def sql(engine: Engine, statement: str, **params: object) -> None:
    with engine.begin() as c:
        c.execute(text(statement), params)


def logged_records(log: SessionLog, engine: Engine, sessions: list[int], charger: str = "CP-1") -> list[int]:
    with engine.begin() as conn:
        return [log.append_record(conn, record(s, 700 + s), charger) for s in sessions]


# -- chains ------------------------------------------------------------------------------------------


def test_chains_link_per_charger_and_heads_follow(store_engine: Engine) -> None:
    log = SessionLog(store_engine)
    mixed = [e for pair in zip(lifecycle("CP-1", 1), lifecycle("CP-2", 2), strict=True) for e in pair]
    assert len(log.append(mixed[:4])) == 4
    assert len(log.append(mixed[4:])) == 6
    for charger in ("CP-1", "CP-2"):
        events = log.events(charger)
        assert [e.chain_index for e in events] == [1, 2, 3, 4, 5]
        assert [e.type for e in events] == [
            EventType.STARTED,
            EventType.METER_VALUE,
            EventType.METER_VALUE,
            EventType.METER_VALUE,
            EventType.STOPPED,
        ]
        prev = GENESIS
        for e in events:
            assert e.prev_hash == prev and e.hash == chain_hash(prev, keccak256(e.canonical))
            prev = e.hash
        assert log.head(charger) == (5, prev)
    ids = [e.event_id for e in log.events("CP-1") + log.events("CP-2")]
    assert sorted(ids) == list(range(1, 11))  # one global order across chargers
    assert log.events("CP-1", after_index=3)[0].chain_index == 4
    assert log.verify_chains() == [] and log.audit_local() == []


def test_reappending_the_same_events_logs_them_once(store_engine: Engine) -> None:
    log = SessionLog(store_engine)
    events = lifecycle("CP-1", 1, readings=4)
    assert len(log.append(events[:3] + events[:3])) == 3  # a repeat inside one call, too
    assert log.append(events[:3]) == []
    late = log.append(events)  # two already logged, four new: chained after the head
    assert [e.chain_index for e in late] == [4, 5, 6] and len(late) == 3
    assert count(store_engine, LogEventRecord) == 6
    assert log.head("CP-1").last_index == 6 and log.verify_chains() == []


def test_only_loggable_values_are_accepted() -> None:
    with pytest.raises(ElectraError, match="printable ASCII"):
        LogEvent("CP-1", EventType.STOPPED, 1, T0, {"reason": "caf\u00e9"}).canonical()
    with pytest.raises(ElectraError, match="2\\^53"):
        LogEvent("CP-1", EventType.STOPPED, 1, T0, {"amount": 2**60}).canonical()
    with pytest.raises(ElectraError, match="snake_case"):
        LogEvent("CP-1", EventType.STOPPED, 1, T0, {"Reason": "x"}).canonical()
    with pytest.raises(ElectraError, match="snake_case"):
        LogEvent("CP-1", EventType.STOPPED, 1, T0, {"10": "x"}).canonical()


# -- records -----------------------------------------------------------------------------------------


def test_records_get_contiguous_seqs_in_the_callers_transaction(store_engine: Engine) -> None:
    log = SessionLog(store_engine)
    assert logged_records(log, store_engine, [10, 11]) == [1, 2]
    with pytest.raises(ElectraError, match="caller gave up"), store_engine.begin() as conn:
        assert log.append_record(conn, record(12), "CP-2") == 3
        raise ElectraError("the caller gave up")  # its settlement row failed: the record goes too
    assert log.record_by_session(12) is None
    assert logged_records(log, store_engine, [13, 11], charger="CP-2") == [3, 2]  # no gap; 11 keeps its seq
    assert [r.seq for r in log.records()] == [1, 2, 3] and log.last_seq() == 3
    got = log.record_by_session(13)
    assert got is not None and got.seq == 3 and got.charger_id == "CP-2" and got.record == record(13, 713)
    assert got.leaf == record(13, 713).leaf()
    recorded = [e for e in log.events("CP-2") if e.type == EventType.RECORDED]
    assert len(recorded) == 1 and recorded[0].hash == got.event_hash
    assert recorded[0].content()["data"] == {"leaf": "0x" + got.leaf.hex(), "seq": 3}
    assert [r.seq for r in log.records(2, 3)] == [2, 3]
    assert log.audit_local() == []


def test_concurrent_appends_never_fork_a_chain_nor_skip_a_seq(store_engine: Engine) -> None:
    log = SessionLog(store_engine)
    errors: list[Exception] = []

    def worker(n: int) -> None:
        try:
            for k in range(6):
                session = 100 * n + k
                log.append(lifecycle(f"CP-{k % 3}", session, readings=2))
                with store_engine.begin() as conn:
                    log.append_record(conn, record(session), f"CP-{k % 3}")
        except Exception as exc:  # noqa: BLE001 - handed to the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [r.seq for r in log.records()] == list(range(1, 25))
    assert sum(log.head(f"CP-{c}").last_index for c in range(3)) == 24 * 5
    assert log.audit_local() == []


# -- batches and proofs ------------------------------------------------------------------------------


def test_batches_are_consecutive_and_proofs_check_against_their_root(store_engine: Engine) -> None:
    log = SessionLog(store_engine)
    sessions = list(range(1, 8))
    logged_records(log, store_engine, sessions)
    assert log.proof(999) is None
    unbatched = log.proof(1)
    assert unbatched is not None and unbatched.batch is None and unbatched.proof == [] and not unbatched.verify()
    first, second, third = log.build_batch(3), log.build_batch(3), log.build_batch(3)
    assert log.build_batch(3) is None
    assert first is not None and second is not None and third is not None
    assert [(b.first_seq, b.last_seq, b.count, b.status) for b in (first, second, third)] == [
        (1, 3, 3, BUILT),
        (4, 6, 3, BUILT),
        (7, 7, 1, BUILT),
    ]
    assert second.root == merkle_root([r.leaf for r in log.records(4, 6)])
    fresh = SessionLog(store_engine)  # no tree in memory: rebuilt from the records
    for s in sessions:
        p = fresh.proof(s)
        assert p is not None and p.batch is not None and p.verify()
        assert verify(p.batch.root, record(s, 700 + s).leaf(), p.proof)
        assert not verify(p.batch.root, record(s, 701 + s).leaf(), p.proof)
    logged_records(log, store_engine, [8])
    fourth = log.build_batch(10)
    assert fourth is not None and (fourth.first_seq, fourth.last_seq) == (8, 8)
    log.mark_submitted(first.id, "0x" + "12" * 32, "0xf8...", 7)
    with pytest.raises(ElectraError, match="is not built"):
        log.mark_submitted(first.id, "0x" + "34" * 32, "0xf8...", 8)
    log.mark_anchored(first.id, 1234)
    got = log.batch(first.id)
    assert got is not None and (got.status, got.tx_hash, got.nonce, got.block_number) == (
        ANCHORED,
        "0x" + "12" * 32,
        7,
        1234,
    )
    assert [b.id for b in log.batches(BUILT)] == [second.id, third.id, fourth.id]
    assert log.batches(SUBMITTED) == []
    assert log.audit_local() == []


def test_a_batch_is_never_built_over_an_edited_record(store_engine: Engine) -> None:
    log = SessionLog(store_engine)
    logged_records(log, store_engine, [1, 2, 3])
    sql(store_engine, "UPDATE session_log_records SET energy_wh = energy_wh + 1 WHERE seq = 2")
    with pytest.raises(LogTampered, match="seq 2 \\(session 2\\)"):
        log.build_batch(10)
    assert log.batches() == []


# -- tampering ---------------------------------------------------------------------------------------


def populated(engine: Engine) -> SessionLog:
    """Two chargers with three sessions each, recorded (seq 1..6), the first four in a batch."""
    log = SessionLog(engine)
    for s in range(1, 7):
        charger = "CP-A" if s % 2 else "CP-B"
        log.append(lifecycle(charger, s))
        with engine.begin() as conn:
            log.append_record(conn, record(s, 700 + s), charger)
    assert log.build_batch(4) is not None
    assert log.audit_local() == []
    return log


def kinds(breaks: list[Break]) -> set[BreakKind]:
    return {b.kind for b in breaks}


@pytest.mark.parametrize(
    "column, change",
    [("energy_wh", "energy_wh + 1"), ("amount", "'1'"), ("stopped_at_ms", "stopped_at_ms + 60000")],
    ids=["energy", "cost", "time"],
)
def test_an_edited_record_is_named(store_engine: Engine, column: str, change: str) -> None:
    log = populated(store_engine)
    for seq in (3, 6):  # one inside the anchored batch, one not yet batched
        sql(store_engine, f"UPDATE session_log_records SET {column} = {change} WHERE seq = :seq", seq=seq)
    breaks = log.audit_local()
    edited = [b for b in breaks if b.kind is BreakKind.LEAF_MISMATCH]
    assert {(b.seq, b.session_id, b.charger_id) for b in edited} == {(3, 3, "CP-A"), (6, 6, "CP-B")}
    assert [b.batch_id for b in breaks if b.kind is BreakKind.ROOT_MISMATCH] == [1]
    assert "seq 3" in str(edited[0]) or "seq 3" in str(edited[1])
    assert log.verify_chains() == []  # the events are intact: only the records were touched


def test_an_edited_record_with_a_recomputed_leaf_is_still_named(store_engine: Engine) -> None:
    log = populated(store_engine)
    forged = record(2, 9999)
    sql(
        store_engine,
        "UPDATE session_log_records SET energy_wh = 9999, meter_stop_wh = :stop, amount = :amount, leaf = :leaf"
        " WHERE seq = 2",
        stop=forged.meter_stop_wh,
        amount=str(forged.amount),
        leaf="0x" + forged.leaf().hex(),
    )
    breaks = log.audit_local()
    assert [(b.kind, b.seq) for b in breaks if b.kind is BreakKind.LEAF_MISMATCH] == [(BreakKind.LEAF_MISMATCH, 2)]
    assert "logged at charger CP-B #6" in str(next(b for b in breaks if b.kind is BreakKind.LEAF_MISMATCH))
    assert kinds(breaks) == {BreakKind.LEAF_MISMATCH, BreakKind.ROOT_MISMATCH}


@pytest.mark.parametrize("seq", [3, 6], ids=["middle", "last"])
def test_a_deleted_record_is_named(store_engine: Engine, seq: int) -> None:
    log = populated(store_engine)
    sql(store_engine, "DELETE FROM session_log_records WHERE seq = :seq", seq=seq)
    breaks = log.audit_local()
    missing = [b for b in breaks if b.kind is BreakKind.MISSING_RECORD and b.batch_id is None]
    assert [(b.seq, b.session_id, b.charger_id) for b in missing] == [(seq, seq, "CP-A" if seq % 2 else "CP-B")]
    assert "the record is gone" in str(missing[0])
    assert count(store_engine, SessionLogRecord) == 5


def test_swapped_records_are_named(store_engine: Engine) -> None:
    log = populated(store_engine)
    sql(store_engine, "UPDATE session_log_records SET seq = 100 WHERE seq = 2")
    sql(store_engine, "UPDATE session_log_records SET seq = 2 WHERE seq = 5")
    sql(store_engine, "UPDATE session_log_records SET seq = 5 WHERE seq = 100")
    breaks = log.audit_local()
    reordered = sorted((b.seq, b.session_id) for b in breaks if b.kind is BreakKind.REORDER)
    assert reordered == [(2, 5), (5, 2)]
    assert any("it was logged at seq 5" in str(b) for b in breaks)
    assert BreakKind.ROOT_MISMATCH in kinds(breaks)  # seq 2 is in the batch: its root no longer holds


def test_an_edited_event_is_named(store_engine: Engine) -> None:
    log = populated(store_engine)
    target = log.events("CP-A")[2]  # a meter value of session 1
    edited = target.canonical.decode().replace('"register_wh":1500', '"register_wh":1600')
    assert edited != target.canonical.decode()
    sql(store_engine, "UPDATE session_log_events SET payload = :p WHERE id = :id", p=edited, id=target.event_id)
    breaks = log.verify_chains()
    assert [(b.kind, b.charger_id, b.index, b.event_id) for b in breaks] == [
        (BreakKind.HASH_MISMATCH, "CP-A", 3, target.event_id)
    ]
    assert f"charger CP-A #3, event {target.event_id}, session 1" in str(breaks[0])


def test_an_event_edited_and_rehashed_breaks_the_next_link(store_engine: Engine) -> None:
    log = populated(store_engine)
    target = log.events("CP-B")[1]
    payload = target.canonical.replace(b'"register_wh":1250', b'"register_wh":1260')
    new_hash = chain_hash(target.prev_hash, keccak256(payload))
    sql(
        store_engine,
        "UPDATE session_log_events SET payload = :p, digest = :d, hash = :h WHERE id = :id",
        p=payload.decode(),
        d="0x" + keccak256(payload).hex(),
        h="0x" + new_hash.hex(),
        id=target.event_id,
    )
    breaks = log.verify_chains()
    assert [(b.kind, b.charger_id, b.index) for b in breaks] == [(BreakKind.MISSING_PREDECESSOR, "CP-B", 3)]
    assert "#2 was edited or replaced" in str(breaks[0])


def test_deleted_and_reordered_events_are_named(store_engine: Engine) -> None:
    log = populated(store_engine)
    a, b = log.events("CP-A"), log.events("CP-B")
    sql(store_engine, "DELETE FROM session_log_events WHERE id = :id", id=a[3].event_id)  # CP-A #4
    sql(store_engine, "DELETE FROM session_log_events WHERE id = :id", id=b[-1].event_id)  # CP-B's last
    # swap CP-B #2 and #3
    sql(store_engine, "UPDATE session_log_events SET chain_index = -1 WHERE id = :id", id=b[1].event_id)
    sql(store_engine, "UPDATE session_log_events SET chain_index = 2 WHERE id = :id", id=b[2].event_id)
    sql(store_engine, "UPDATE session_log_events SET chain_index = 3 WHERE id = :id", id=b[1].event_id)
    found = {(x.kind, x.charger_id, x.index) for x in log.verify_chains()}
    assert (BreakKind.MISSING_PREDECESSOR, "CP-A", 5) in found
    assert (BreakKind.REORDER, "CP-B", 2) in found and (BreakKind.REORDER, "CP-B", 3) in found
    assert (BreakKind.HEAD_MISMATCH, "CP-B", len(b) - 1) in found
    assert all(x.charger_id != "CP-A" or x.index == 5 for x in log.verify_chains())
    # CP-B's last event was the record of session 6: that record now has nothing vouching for it
    unlogged = [x for x in log.audit_local() if x.kind is BreakKind.UNLOGGED_RECORD]
    assert [(x.seq, x.session_id) for x in unlogged] == [(6, 6)]


def test_events_cut_from_the_end_and_a_wiped_chain_show_at_the_head(store_engine: Engine) -> None:
    log = populated(store_engine)
    sql(store_engine, "DELETE FROM session_log_events WHERE charger_id = 'CP-A'")
    breaks = log.verify_chains()
    assert [(b.kind, b.charger_id) for b in breaks] == [(BreakKind.HEAD_MISMATCH, "CP-A")]
    records_breaks = log.audit_local()
    assert sorted(b.seq for b in records_breaks if b.kind is BreakKind.UNLOGGED_RECORD) == [1, 3, 5]


# -- the canonical encoding ----------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)
)
data_st = st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True), json_scalars, max_size=6)


@given(
    charger=st.from_regex(r"[A-Za-z0-9._:*-]{1,20}", fullmatch=True),
    session=st.integers(0, 2**53 - 1),
    at_ms=st.integers(0, 2**53 - 1),
    data=data_st,
)
def test_canonical_bytes_are_sorted_compact_json(charger: str, session: int, at_ms: int, data: dict[str, Any]) -> None:
    event = LogEvent(charger, EventType.METER_VALUE, session, at_ms, data)
    doc = {"at_ms": at_ms, "charger_id": charger, "data": data, "session_id": session, "type": "session.meter_value"}
    expected = json.dumps({**doc, "v": 1}, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    assert event.canonical() == expected == canonical_json(json.loads(expected))


def test_javascript_writes_the_same_canonical_bytes() -> None:
    """What docs/formats.md promises an outsider: JSON.stringify over sorted keys gives the bytes."""
    events = [
        LogEvent('CP-"q\\', EventType.STOPPED, 7, T0, {"reason": 'Ev "Disconnected" \\ /', "flags": "", "x": None}),
        LogEvent("CP-1", EventType.METER_VALUE, 2**53 - 1, T0, {"register_wh": -5, "ok": True, "no": False}),
    ]
    script = (
        "const sort = v => v && typeof v === 'object'"
        " ? Object.fromEntries(Object.keys(v).sort().map(k => [k, sort(v[k])])) : v;"
        "const lines = require('fs').readFileSync(0, 'utf8').trim().split('\\n');"
        "console.log(lines.map(l => JSON.stringify(sort(JSON.parse(l)))).join('\\n'));"
    )
    given_lines = "\n".join(e.canonical().decode() for e in events)
    out = subprocess.run(["node", "-e", script], input=given_lines, capture_output=True, text=True, check=True).stdout
    assert out.strip() == given_lines


def test_the_examples_in_docs_formats_hold() -> None:
    """docs/formats.md gives these values to outsiders re-implementing verification."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "formats.md").read_text()
    started = LogEvent(
        "CP-BER-0001",
        EventType.STARTED,
        42,
        1795000000000,
        {"connector_id": 1, "meter_start_wh": 1000, "token_status": "Accepted", "transaction_uid": "42"},
    )
    digest = keccak256(started.canonical())
    asset = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    r42 = SessionRecord(42, 7, 3, 1795000000000, 1795003600000, 1000, 8500, 7500, asset, 2250000)
    r43 = SessionRecord(43, 7, 0, 1795000100000, 1795000900000, 200, 1200, 1000, asset, 300000)
    r44 = SessionRecord(44, 8, 5, 1795000200000, 1795001200000, 0, 500, 500, asset, 150000)
    tree = MerkleTree.of([r42.leaf(), r43.leaf(), r44.leaf()])
    for shown in (
        started.canonical().decode(),
        "0x" + digest.hex(),
        "0x" + chain_hash(GENESIS, digest).hex(),
        "0x" + r42.leaf().hex(),
        "0x" + tree.root.hex(),
    ):
        assert shown in doc
    assert tree.proof(0) == [r44.leaf(), r43.leaf()]
