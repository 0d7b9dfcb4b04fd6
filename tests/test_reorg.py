"""Reorganizations on a real anvil (``evm_snapshot`` / ``evm_revert`` undo recent blocks): a
settlement or an anchor whose block left the chain is detected, and resolved exactly once: the same
signed bytes sent again while their nonce is free, or the work released and signed anew when another
transaction took the nonce. Nothing is settled or anchored twice, on-chain or in the store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hexbytes import HexBytes
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from electra.chain.anchoring import AnchorWorker
from electra.chain.anchors import SessionAnchorBinding
from electra.chain.bindings import Electra
from electra.chain.keys import dev_account
from electra.ocpp.gateway import CsmsStore
from electra.payments.service import payments_for
from electra.store.models import SettlementBatchRecord, SettlementRecord, WalletEventRecord
from electra.store.session_log import ANCHORED, BUILT, SessionLog
from tests.test_payments_flow import EUSD, World, _session_ready


@pytest.fixture
def world(electra: Electra, tmp_path: Path) -> Iterator[World]:
    store = CsmsStore.open(f"sqlite:///{tmp_path}/csms.db", meter_signing="optional")
    payments = payments_for(electra, store.engine, max_batch=50, max_age_s=0)
    store.sessions.gate = payments.gate.check
    yield World(electra, store, payments)
    store.engine.dispose()


def statuses(engine: Engine, txs: list[int]) -> set[str]:
    with Session(engine) as s:
        return {s.get(SettlementRecord, t).status for t in txs}  # type: ignore[union-attr]


def wallet_events(engine: Engine, kind: str) -> int:
    with Session(engine) as s:
        return int(s.scalar(select(func.count()).where(WalletEventRecord.kind == kind)) or 0)


def batches(engine: Engine) -> list[tuple[str, int | None]]:
    with Session(engine) as s:
        return [(b.status, b.sender_nonce) for b in s.scalars(select(SettlementBatchRecord).order_by("id"))]


def vehicle_balances(world: World, vids: list[int]) -> list[int]:
    return [world.electra.payments.balance(v, world.electra.stablecoin.address) for v in vids]


def _settled_then_reverted(world: World, n: int) -> tuple[list[int], list[int], str]:
    """n sessions settled in one batch whose block is then undone. Returns the session ids, the
    vehicles' balances before settlement and the undone transaction's hash."""
    txs = _session_ready(world, n)
    client = world.electra.client
    before = [10 * EUSD] * n
    snap = client.rpc("evm_snapshot")
    report = world.payments.worker.run_once(force=True)
    assert (report.billed, report.settled, report.errors) == (n, n, [])
    with Session(world.store.engine) as s:
        vids = [r.vehicle_id for r in s.scalars(select(SettlementRecord).order_by("session_id"))]
        (batch,) = s.scalars(select(SettlementBatchRecord)).all()
        tx_hash, block_hash = batch.tx_hash, batch.block_hash
    assert block_hash is not None and len(block_hash) == 66
    assert all(world.electra.payments.is_settled(t) for t in txs)
    assert client.rpc("evm_revert", snap) is True
    assert not any(world.electra.payments.is_settled(t) for t in txs)  # the chain forgot it...
    assert statuses(world.store.engine, txs) == {"settled"}  # ...the store does not know yet
    assert vehicle_balances(world, [v for v in vids if v is not None]) == before
    assert tx_hash is not None
    return txs, [v for v in vids if v is not None], tx_hash


def test_a_reverted_settlement_is_sent_again_with_the_same_bytes_and_recorded_once(world: World) -> None:
    txs, vids, tx_hash = _settled_then_reverted(world, 3)
    worker = world.payments.worker
    report = worker.run_once(force=True)
    assert (report.reorged, report.recovered, report.settled, report.batches, report.errors) == (1, 1, 3, 0, [])
    assert all(world.electra.payments.is_settled(t) for t in txs)
    assert world.electra.client.w3.eth.get_transaction_receipt(HexBytes(tx_hash))["status"] == 1  # same hash
    assert statuses(world.store.engine, txs) == {"settled"}
    assert [s for s, _ in batches(world.store.engine)] == ["confirmed"]
    # Charged once: every vehicle paid its amount once, every history line exists once.
    with Session(world.store.engine) as s:
        amounts = [int(r.amount) for r in s.scalars(select(SettlementRecord).order_by("session_id"))]
    assert vehicle_balances(world, vids) == [10 * EUSD - a for a in amounts]
    assert wallet_events(world.store.engine, "charge") == 3
    assert wallet_events(world.store.engine, "earning") == 1
    again = worker.run_once(force=True)  # detected exactly once
    assert (again.reorged, again.recovered, again.settled, again.batches) == (0, 0, 0, 0)


def test_a_reverted_settlement_whose_nonce_was_taken_goes_back_to_the_outbox(world: World) -> None:
    txs, vids, _ = _settled_then_reverted(world, 2)
    # Another transaction of the operator takes the undone transaction's nonce.
    world.electra.stablecoin.mint(dev_account(0).address, 1)
    report = world.payments.worker.run_once(force=True)
    assert (report.reorged, report.settled, report.batches, report.errors) == (1, 2, 1, [])
    assert [s for s, _ in batches(world.store.engine)] == ["failed", "confirmed"]
    assert all(world.electra.payments.is_settled(t) for t in txs)
    with Session(world.store.engine) as s:
        amounts = [int(r.amount) for r in s.scalars(select(SettlementRecord).order_by("session_id"))]
    assert vehicle_balances(world, vids) == [10 * EUSD - a for a in amounts]
    assert wallet_events(world.store.engine, "charge") == 2


def test_a_settlement_mined_again_in_another_block_is_recorded_with_that_block(world: World) -> None:
    txs, vids, tx_hash = _settled_then_reverted(world, 2)
    client = world.electra.client
    with Session(world.store.engine) as s:
        amounts = [int(r.amount) for r in s.scalars(select(SettlementRecord).order_by("session_id"))]
        (batch,) = s.scalars(select(SettlementBatchRecord)).all()
        raw, old_block = batch.raw_tx, batch.block_hash
    client.rpc("evm_mine")  # the reorganized chain is one block longer before it takes the tx again
    assert raw is not None
    client.w3.eth.send_raw_transaction(HexBytes(raw))
    moved = client.w3.eth.wait_for_transaction_receipt(HexBytes(tx_hash), timeout=30)  # automine may lag the send
    assert "0x" + bytes(moved["blockHash"]).hex() != old_block
    report = world.payments.worker.run_once(force=True)
    assert (report.reorged, report.recovered, report.settled, report.errors) == (1, 1, 2, [])
    with Session(world.store.engine) as s:
        (batch,) = s.scalars(select(SettlementBatchRecord)).all()
        assert (batch.status, batch.block_number) == ("confirmed", moved["blockNumber"])
    assert wallet_events(world.store.engine, "charge") == 2
    assert all(world.electra.payments.is_settled(t) for t in txs)
    assert vehicle_balances(world, vids) == [10 * EUSD - a for a in amounts]
    assert world.payments.worker.run_once(force=True).reorged == 0


@pytest.fixture
def anchors(electra: Electra) -> SessionAnchorBinding:
    me = electra.client.account.address
    address, _ = electra.client.deploy("SessionAnchor", me, me, me)
    return SessionAnchorBinding(electra.client, address)


def test_reverted_anchors_are_detected_and_anchored_once_again(
    world: World, anchors: SessionAnchorBinding, tmp_path: Path
) -> None:
    from tests.test_anchoring import log_records

    log = SessionLog(world.store.engine)
    log_records(log, 5)
    worker = AnchorWorker(log, anchors, max_batch=2, max_age_s=3600)
    client = world.electra.client
    assert worker.run_once(force=True).anchored == 3
    first_block = log.batches()[0].block_number
    snap = client.rpc("evm_snapshot")
    log_records(log, 4)
    assert worker.run_once(force=True).anchored == 2  # seqs 6..7 and 8..9
    assert anchors.anchor_count() == 5
    assert client.rpc("evm_revert", snap) is True
    assert anchors.anchor_count() == 3
    # Of the two undone anchors, the second's nonce goes to another transaction: it is signed anew.
    undone = log.batches()[3:]
    client.rpc("evm_mine")
    client.w3.eth.send_raw_transaction(HexBytes(undone[0].raw_tx or ""))
    world.electra.stablecoin.mint(dev_account(0).address, 1)
    report = worker.run_once(force=True)
    assert (report.reorged, report.errors) == (2, [])
    assert anchors.anchor_count() == 5 and anchors.last_anchored_seq() == 9
    assert [b.status for b in log.batches()] == [ANCHORED] * 5
    after = log.batches()
    assert after[0].block_number == first_block  # untouched
    assert after[3].tx_hash == undone[0].tx_hash  # the same transaction, mined again
    assert after[4].tx_hash != undone[1].tx_hash  # signed anew after its nonce was taken
    for b in after:
        assert b.block_hash is not None
        receipt = client.w3.eth.get_transaction_receipt(HexBytes(b.tx_hash or ""))
        assert "0x" + bytes(receipt["blockHash"]).hex() == b.block_hash
    again = worker.run_once(force=True)
    assert (again.reorged, again.anchored, again.recovered) == (0, 0, 0)
    assert not [b for b in log.batches() if b.status == BUILT]


def test_a_transaction_behind_a_nonce_gap_waits_for_the_one_before_it(
    world: World, anchors: SessionAnchorBinding
) -> None:
    """Two transactions of the operator undone together: the later one (an anchor) cannot be mined
    before the earlier one (a settlement). Resolved first, it is sent and reported as waiting,
    without holding the account's lock; once the settlement worker resends the earlier one, both
    are mined, and each is recorded once."""
    from tests.test_anchoring import log_records

    txs = _session_ready(world, 2)
    log = SessionLog(world.store.engine)
    log_records(log, 2, charger="CP-GAP-1")
    anchoring = AnchorWorker(log, anchors, max_batch=10, max_age_s=3600)
    client = world.electra.client
    snap = client.rpc("evm_snapshot")
    assert world.payments.worker.run_once(force=True).settled == 2  # nonce n
    assert anchoring.run_once(force=True).anchored == 1  # nonce n + 1 (the biller's 2 records too)
    assert client.rpc("evm_revert", snap) is True

    first = anchoring.run_once(force=True)
    assert first.reorged == 1 and len(first.errors) == 1 and "waits for nonce" in first.errors[0]
    assert anchors.anchor_count() == 0 and [b.status for b in log.batches()] == ["submitted"]
    settled = world.payments.worker.run_once(force=True)
    assert (settled.reorged, settled.settled, settled.errors) == (1, 2, [])
    assert all(world.electra.payments.is_settled(t) for t in txs)
    second = anchoring.run_once(force=True)
    assert (second.recovered, second.errors) == (1, [])
    assert anchors.anchor_count() == 1 and [b.status for b in log.batches()] == [ANCHORED]
    assert wallet_events(world.store.engine, "charge") == 2
