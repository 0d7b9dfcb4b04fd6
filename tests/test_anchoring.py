"""The anchoring worker on a real anvil: batches of the session log anchored exactly once, proofs
that SessionAnchor accepts, and recovery after a crash between sending and the receipt and after
the chain was down."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from electra.chain.anchoring import AnchorWorker
from electra.chain.anchors import SessionAnchorBinding
from electra.chain.bindings import Electra
from electra.domain.record import SessionRecord
from electra.store.db import make_engine, migrate
from electra.store.session_log import ANCHORED, SessionLog

_sessions = itertools.count(1)


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    e = make_engine(f"sqlite:///{tmp_path}/electra.db")
    migrate(e)
    return e


@pytest.fixture
def anchors(electra: Electra) -> SessionAnchorBinding:
    """A SessionAnchor of this test's own: its sequence numbers start at 1 like the test's log."""
    me = electra.client.account.address
    address, _ = electra.client.deploy("SessionAnchor", me, me, me)
    return SessionAnchorBinding(electra.client, address)


def log_records(log: SessionLog, count: int, charger: str = "CP-ANCHOR-1") -> list[SessionRecord]:
    out = []
    with log.engine.begin() as conn:
        for _ in range(count):
            sid = next(_sessions)
            r = SessionRecord(
                sid, 7, 3, 1_000 * sid, 1_000 * sid + 3_600_000, 100, 100 + sid, sid, "0x" + "ab" * 20, sid
            )
            log.append_record(conn, r, charger)
            out.append(r)
    return out


def test_batches_are_anchored_once_and_every_proof_verifies_on_chain(
    engine: Engine, anchors: SessionAnchorBinding
) -> None:
    log = SessionLog(engine)
    records = log_records(log, 7)
    worker = AnchorWorker(log, anchors, max_batch=3, max_age_s=3600)
    report = worker.run_once()
    assert (report.built, report.anchored, report.sessions) == (2, 2, 6)  # the 7th waits for its age
    report = worker.run_once(force=True)
    assert (report.built, report.anchored, report.sessions) == (1, 1, 1)
    assert worker.run_once(force=True).built == 0
    assert anchors.anchor_count() == 3 and anchors.last_anchored_seq() == 7
    assert [b.status for b in log.batches()] == [ANCHORED] * 3
    for r in records:
        p = log.proof(r.session_id)
        assert p is not None and p.batch is not None and p.verify()
        index = anchors.anchor_of(p.record.seq)
        assert anchors.verify(index, p.leaf, p.proof)
    p0, p6 = log.proof(records[0].session_id), log.proof(records[6].session_id)
    assert p0 is not None and p6 is not None
    assert not anchors.verify(anchors.anchor_of(p6.record.seq), p0.leaf, p0.proof)  # a proof from another batch


def test_age_triggers_a_batch(engine: Engine, anchors: SessionAnchorBinding) -> None:
    now = [1_000.0]
    log = SessionLog(engine)
    log_records(log, 2)
    worker = AnchorWorker(log, anchors, max_batch=100, max_age_s=60, clock=lambda: now[0])
    assert worker.run_once().built == 0
    now[0] += 61
    assert worker.run_once().anchored == 1
    assert anchors.last_anchored_seq() == 2


def test_killed_between_send_and_receipt_anchors_once(
    engine: Engine, anchors: SessionAnchorBinding, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = SessionLog(engine)
    log_records(log, 4)
    worker = AnchorWorker(log, anchors, max_batch=4)

    def killed(*_a: Any, **_k: Any) -> Any:
        raise TimeoutError("the worker died before the receipt")

    monkeypatch.setattr(worker.sender, "wait", killed)
    report = worker.run_once()
    assert report.errors and report.anchored == 0
    (batch,) = log.batches()
    assert batch.status == "submitted" and batch.tx_hash

    again = AnchorWorker(SessionLog(engine), anchors, max_batch=4)  # a new process
    report = again.run_once()
    assert report.recovered == 1 and not report.errors
    assert [b.status for b in log.batches()] == [ANCHORED]
    assert anchors.anchor_count() == 1 and anchors.last_anchored_seq() == 4


def test_a_lost_record_of_an_anchored_batch_is_adopted_not_anchored_twice(
    engine: Engine, anchors: SessionAnchorBinding
) -> None:
    log = SessionLog(engine)
    log_records(log, 3)
    batch = log.build_batch(3)
    assert batch is not None
    anchors.anchor_sessions(batch.root, batch.first_seq, batch.last_seq)  # sent, then the record was lost
    report = AnchorWorker(log, anchors, max_batch=3).run_once()
    assert report.anchored == 1 and not report.errors
    assert anchors.anchor_count() == 1
    assert [b.status for b in log.batches()] == [ANCHORED]


def test_chain_down_loses_nothing(
    engine: Engine, anchors: SessionAnchorBinding, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = SessionLog(engine)
    log_records(log, 3)
    provider = anchors.client.w3.provider
    with monkeypatch.context() as m:
        m.setattr(provider, "endpoint_uri", "http://127.0.0.1:9")  # nothing listens there: the RPC is down
        report = AnchorWorker(log, anchors, max_batch=3).run_once()
    assert report.errors and report.anchored == 0
    assert len(log.records()) == 3 and all(b.status == "built" for b in log.batches())

    report = AnchorWorker(log, anchors, max_batch=3).run_once()
    assert not report.errors and report.anchored == 1 and anchors.last_anchored_seq() == 3
    assert [b.status for b in log.batches()] == [ANCHORED]
