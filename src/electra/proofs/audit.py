"""`electra audit`: the whole session log, checked in itself and against the chain.

1. **The log itself** (:meth:`SessionLog.audit_local`): every charger's hash chain, every record
   against its values and the ``session.recorded`` event that vouches for it, every batch against
   its stored root, no gaps in the sequence.
2. **Against SessionAnchor**: every batch the log calls anchored must be on the contract with the
   same range and root, and the records it holds now must still give that on-chain root (so a
   rewrite of records, leaves, events and the stored root together is still caught); every batch on
   the contract must be one the log has.
3. **Meter data**: every recorded session's signed readings must have been signed by its charger
   NFT's device key and carry the record's start and stop registers (off with ``meter_data=False``).

Each problem is a :class:`electra.domain.session_log.Break` naming where it is: charger and index,
event, seq, session, batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from electra.chain.anchors import SessionAnchorBinding
from electra.chain.bindings import StationRegistryBinding
from electra.domain.merkle import merkle_root
from electra.domain.session_log import Break, BreakKind, LoggedRecord
from electra.errors import ContractReverted
from electra.metering.keys import MeterKey
from electra.proofs.builder import registered_meter_key, signed_readings
from electra.proofs.meter import check_meter_data
from electra.store.session_log import ANCHORED, SUBMITTED, AnchorBatch, SessionLog


@dataclass
class AuditReport:
    records: int = 0
    batches: int = 0
    anchors_checked: int = 0
    sessions_with_meter_data: int = 0
    signed_readings: int = 0
    breaks: list[Break] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "records": self.records,
            "batches": self.batches,
            "anchors_checked": self.anchors_checked,
            "sessions_with_meter_data": self.sessions_with_meter_data,
            "signed_readings": self.signed_readings,
            "breaks": [
                {"kind": str(b.kind), "where": b.location(), "detail": b.detail}
                | {k: getattr(b, k) for k in ("charger_id", "index", "event_id", "seq", "session_id", "batch_id")}
                for b in self.breaks
            ],
        }


def audit(
    engine: Engine,
    anchors: SessionAnchorBinding | None,
    stations: StationRegistryBinding | None = None,
    *,
    meter_data: bool = True,
    progress: Callable[[str], None] | None = None,
) -> AuditReport:
    """Audits the log in ``engine``; without ``anchors`` only what the database alone can show."""
    step = progress or (lambda _: None)
    log = SessionLog(engine)
    report = AuditReport()
    step("hash chains and records")
    report.breaks += log.audit_local()
    records = log.records()
    batches = log.batches()
    report.records, report.batches = len(records), len(batches)
    if anchors is not None:
        step("anchored batches against SessionAnchor")
        by_seq = {r.seq: r for r in records}
        for b in batches:
            if b.status in (ANCHORED, SUBMITTED):
                report.anchors_checked += _check_anchor(b, by_seq, anchors, report.breaks)
        _check_unknown_anchors(batches, anchors, report.breaks)
    if meter_data and stations is not None:
        step("signed meter data")
        _check_meter(engine, records, stations, report)
    return report


def _check_anchor(
    b: AnchorBatch, by_seq: dict[int, LoggedRecord], anchors: SessionAnchorBinding, breaks: list[Break]
) -> int:
    if anchors.last_anchored_seq() < b.first_seq:
        status = "anchored" if b.status == ANCHORED else "sent"
        breaks.append(
            Break(
                BreakKind.ROOT_MISSING_ON_CHAIN,
                f"the log holds batch {b.id} (seqs {b.first_seq}..{b.last_seq}, root 0x{b.root.hex()}) as {status}, "
                f"but SessionAnchor {anchors.address} holds nothing from seq {b.first_seq}",
                batch_id=b.id,
                seq=b.first_seq,
            )
        )
        return 0
    try:
        a = anchors.anchor(anchors.anchor_of(b.first_seq))
    except ContractReverted as exc:
        breaks.append(Break(BreakKind.ROOT_MISSING_ON_CHAIN, exc.one_line(), batch_id=b.id, seq=b.first_seq))
        return 0
    local = ("0x" + b.root.hex(), b.first_seq, b.last_seq)
    if (a.root, a.first_seq, a.last_seq) != local:
        breaks.append(
            Break(
                BreakKind.ANCHOR_MISMATCH,
                f"SessionAnchor batch {a.index} holds seqs {a.first_seq}..{a.last_seq} with root {a.root}; the log's "
                f"batch {b.id} is seqs {b.first_seq}..{b.last_seq} with root {local[0]}",
                batch_id=b.id,
                seq=b.first_seq,
            )
        )
        return 1
    inside = [by_seq[s] for s in range(b.first_seq, b.last_seq + 1) if s in by_seq]
    if len(inside) == b.count:
        now = "0x" + merkle_root([r.record.leaf() for r in inside]).hex()
        if now != a.root:
            breaks.append(
                Break(
                    BreakKind.ANCHOR_MISMATCH,
                    f"the records of seqs {b.first_seq}..{b.last_seq} now give root {now}, not the root {a.root} "
                    f"anchored in SessionAnchor batch {a.index}: a record of this batch was changed",
                    batch_id=b.id,
                    seq=b.first_seq,
                )
            )
    return 1


def _check_unknown_anchors(batches: list[AnchorBatch], anchors: SessionAnchorBinding, breaks: list[Break]) -> None:
    known = {(b.first_seq, b.last_seq) for b in batches}
    for index in range(anchors.anchor_count()):
        a = anchors.anchor(index)
        if (a.first_seq, a.last_seq) not in known:
            breaks.append(
                Break(
                    BreakKind.ANCHOR_NOT_IN_LOG,
                    f"SessionAnchor batch {index} (seqs {a.first_seq}..{a.last_seq}, root {a.root}) has no batch "
                    "in the log: its records were deleted or the log was rebuilt",
                    seq=a.first_seq,
                )
            )


def _check_meter(
    engine: Engine, records: list[LoggedRecord], stations: StationRegistryBinding, report: AuditReport
) -> None:
    devices: dict[int, set[str]] = {}
    for r in records:
        readings = signed_readings(engine, r.record.session_id)
        if not readings:
            continue
        token = r.record.charger_token_id
        if token not in devices:
            try:
                devices[token] = {stations.station(token).device.lower()}
            except ContractReverted:
                devices[token] = set()
        report.sessions_with_meter_data += 1
        report.signed_readings += len(readings)
        key = registered_meter_key(engine, r.charger_id)
        m = check_meter_data(r.record, readings, devices[token], MeterKey.load(key) if key else None)
        if m.problems:
            report.breaks.append(
                Break(
                    BreakKind.METER_DATA_INVALID,
                    "; ".join(m.problems),
                    charger_id=r.charger_id,
                    seq=r.seq,
                    session_id=r.record.session_id,
                    batch_id=r.batch_id,
                )
            )
