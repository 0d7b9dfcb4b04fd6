"""Proof bundles built from the platform's store and chain (the operator's side of `electra verify`)."""

from __future__ import annotations

from sqlalchemy import Engine, select

from electra.chain.anchors import SessionAnchorBinding
from electra.chain.bindings import Electra
from electra.charging.meter_data import MeterKeyBook
from electra.errors import ContractReverted, InvalidInput
from electra.proofs.bundle import AnchorRef, BatchRef, ProofBundle, SignedReading
from electra.store.models import MeterValueRecord
from electra.store.session_log import ANCHORED, SessionLog


def signed_readings(engine: Engine, session_id: int) -> list[SignedReading]:
    """The session's readings that came with signed meter data, in time order, as stored."""
    t = MeterValueRecord.__table__
    q = (
        select(t.c.timestamp_ms, t.c.register_wh, t.c.signed_data, t.c.signing_method, t.c.public_key)
        .where(t.c.session_id == session_id, t.c.signed_data.is_not(None))
        .order_by(t.c.timestamp_ms, t.c.id)
    )
    with engine.connect() as conn:
        return [SignedReading(int(a), int(b), str(c), d, e) for a, b, c, d, e in conn.execute(q)]


def build_bundle(
    engine: Engine,
    electra: Electra | None,
    session_id: int,
    log: SessionLog | None = None,
    anchors: SessionAnchorBinding | None = None,
) -> ProofBundle:
    """The bundle of one session. Without ``electra`` (no chain at hand) or before its batch is
    anchored, the bundle has no anchor, and the verifier says the session is not provable yet."""
    log = log or SessionLog(engine)
    p = log.proof(session_id)
    if p is None:
        raise InvalidInput(
            f"session {session_id} has no record in the session log",
            "only completed sessions get a record; see `electra session show ID`",
        )
    batch = p.batch
    anchor = None
    registry = None
    if electra is not None:
        registry = electra.stations.address
        if batch is not None and batch.status == ANCHORED:
            binding = anchors or electra.anchors
            try:
                index = binding.anchor_of(p.record.seq)
            except ContractReverted:
                # The chain lost it (reverted blocks, another chain): name the index the log's
                # batches give (both sides are contiguous from seq 1) and let the verifier say so.
                index = sum(1 for b in log.batches() if b.last_seq < batch.first_seq)
            anchor = AnchorRef(electra.client.chain_id, binding.address, index, batch.tx_hash, batch.block_number)
    return ProofBundle(
        session_id=session_id,
        seq=p.record.seq,
        charger_id=p.record.charger_id,
        record=p.record.record,
        leaf="0x" + p.leaf.hex(),
        proof=["0x" + n.hex() for n in p.proof],
        batch=None
        if batch is None
        else BatchRef(batch.first_seq, batch.last_seq, batch.count, "0x" + batch.root.hex()),
        anchor=anchor,
        station_registry=registry,
        meter_data=signed_readings(engine, session_id),
        meter_key=registered_meter_key(engine, p.record.charger_id),
    )


def registered_meter_key(engine: Engine, charger_id: str) -> str | None:
    """The charger's meter key registered with `electra station meter-key` (hex DER), if any."""
    entry = MeterKeyBook(engine).get(charger_id)
    return None if entry is None or entry.public_key is None else entry.public_key.hex
