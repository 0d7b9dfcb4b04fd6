"""The settlement worker: the outbox of billed sessions, settled on PaymentHub exactly once.

Each run:

1. **Recover.** A batch whose transaction was signed but whose outcome is not recorded (the worker
   died, or the chain was down) is looked up by its transaction hash. Mined: its outcome is
   recorded. Not mined and its nonce still free: the very same signed bytes are sent again (same
   hash, so it can only be mined once). Not mined and the nonce taken by another transaction: it
   can never be mined, so its sessions go back to the outbox.
2. **Bill.** Completed sessions without a settlement row get one (:class:`Biller`).
3. **Batch.** Pending rows are grouped per asset; a group is sent when it holds ``max_batch`` rows or
   its oldest row is ``max_age_s`` old. The transaction is signed first, then the batch row (with
   the signed bytes, hash and nonce) and the rows' move to ``batched`` commit in one database
   transaction, and only then is it sent. A crash anywhere leaves either nothing sent and nothing
   recorded, or a recorded batch that step 1 finishes.

Before step 1, every batch confirmed in a recent block is looked at again (reorgs): when its
transaction is no longer in the chain in the block recorded with it, its outcome is taken back in
one database transaction (the batch is ``signed`` again, its rows ``batched``, the wallet events it
wrote removed), and step 1 resolves it like any other: the same signed bytes are sent again while
their nonce is free (mined once more, recorded once more), or its sessions go back to the outbox.

PaymentHub enforces the rest on-chain: a session id settles at most once (an entry sent twice is
rejected as ``ALREADY_SETTLED``, which the worker records as settled by the earlier transaction).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from sqlalchemy import Engine, delete, select, update
from sqlalchemy.orm import Session
from web3.exceptions import Web3Exception
from web3.logs import DISCARD

from electra.chain.payments import PaymentHubBinding, Rejection, SessionCharge
from electra.chain.txsender import REORG_DEPTH, TxSender, block_hash_of
from electra.errors import ChainError, ElectraError
from electra.payments.authorizations import AuthorizationBook
from electra.payments.billing import BATCHED, PENDING, REJECTED, SETTLED, Biller
from electra.store.models import SettlementBatchRecord, SettlementRecord, WalletEventRecord

LOG = logging.getLogger("electra.settlement")
EARLIER = "settled by an earlier transaction"
REJECTED_BY_HUB = "PaymentHub rejected it: "


@dataclass
class RunReport:
    billed: int = 0
    recovered: int = 0
    batches: int = 0
    settled: int = 0
    rejected: int = 0
    reorged: int = 0  # confirmed batches whose transaction left the chain, taken back this run
    errors: list[str] = field(default_factory=list)


class SettlementWorker:
    def __init__(
        self,
        engine: Engine,
        hub: PaymentHubBinding,
        biller: Biller,
        authorizations: AuthorizationBook,
        assets: dict[str, str],
        owner_of: Callable[[str], str],
        settler: LocalAccount | None = None,
        max_batch: int = 100,
        max_age_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.hub = hub
        self.client = hub.client
        self.biller = biller
        self.authorizations = authorizations
        self.assets = assets
        self.owner_of = owner_of
        self.settler = settler or hub.client.account
        self.sender = TxSender(self.client, self.settler)
        self.max_batch = max_batch
        self.max_age_s = max_age_s
        self.clock = clock
        # Called with the vehicles a confirmed batch charged (low-balance alerts look again).
        self.on_charged: Callable[[set[int]], None] | None = None

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- one run ---------------------------------------------------------------------------------

    def run_once(self, force: bool = False) -> RunReport:
        """Recovers, bills and sends what is due (``force``: everything pending, whatever its age).
        Chain errors are reported, not raised: the next run picks up where this one stopped."""
        report = RunReport()
        try:
            self.recover(report)
            report.billed = self.biller.sweep()
            for asset in self.assets:
                while self._send_due(asset, force, report):
                    pass
        except (ChainError, Web3Exception, ConnectionError, OSError, TimeoutError) as exc:
            LOG.warning("settlement run stopped: %s", exc)
            report.errors.append(str(exc))
        return report

    # -- 1. recover ------------------------------------------------------------------------------

    def recover(self, report: RunReport) -> None:
        self.look_again(report)
        with Session(self.engine) as s:
            open_batches = s.scalars(
                select(SettlementBatchRecord).where(SettlementBatchRecord.status == "signed")
            ).all()
        for batch in open_batches:
            with self.sender.lock:
                receipt = self.sender.resolve(batch.tx_hash, batch.sender_nonce, batch.raw_tx)
            if receipt is None:
                self._abandon(batch.id, "its nonce was used by another transaction")
                continue
            self._record(batch.id, receipt, report)
            report.recovered += 1

    def look_again(self, report: RunReport) -> None:
        """Takes back the outcome of every recently confirmed batch whose transaction is no longer
        in the chain where it was recorded (a reorganization)."""
        head = self.sender.head()
        with Session(self.engine) as s:
            recent = s.scalars(
                select(SettlementBatchRecord).where(
                    SettlementBatchRecord.status == "confirmed",
                    SettlementBatchRecord.block_number > head - REORG_DEPTH,
                )
            ).all()
        for batch in recent:
            if self.sender.still_mined(batch.tx_hash, batch.block_hash):
                continue
            self._unconfirm(batch.id, batch.block_number)
            report.reorged += 1

    def _unconfirm(self, batch_id: int, block_number: int | None) -> None:
        now = self._now_ms()
        with Session(self.engine) as s, s.begin():
            taken = s.execute(
                update(SettlementBatchRecord)
                .where(SettlementBatchRecord.id == batch_id, SettlementBatchRecord.status == "confirmed")
                .values(
                    status="signed",
                    block_number=None,
                    block_hash=None,
                    gas_used=None,
                    error=f"its block {block_number} left the chain (reorganized); resolved again",
                    updated_at_ms=now,
                )
            ).rowcount
            if taken != 1:
                return  # another worker took it back first
            ids = []
            for r in s.scalars(select(SettlementRecord).where(SettlementRecord.batch_id == batch_id)):
                ids.append(r.session_id)
                if r.reason in (EARLIER, None) or r.reason.startswith(REJECTED_BY_HUB):
                    r.reason = None  # what _record wrote; a biller's reason (a cap) stays
                r.status, r.payee, r.fee, r.updated_at_ms = BATCHED, None, None, now
            s.execute(
                delete(WalletEventRecord).where(
                    WalletEventRecord.kind == "charge", WalletEventRecord.reference.in_([f"session:{i}" for i in ids])
                )
            )
            s.execute(
                delete(WalletEventRecord).where(
                    WalletEventRecord.kind == "earning", WalletEventRecord.reference.like(f"batch:{batch_id}:%")
                )
            )
        LOG.warning(
            "batch %s: its transaction is no longer in block %s (a reorg); its %d sessions are resolved again",
            batch_id,
            block_number,
            len(ids),
        )

    # -- 3. batch --------------------------------------------------------------------------------

    def _send_due(self, asset: str, force: bool, report: RunReport) -> bool:
        with Session(self.engine) as s:
            rows = s.scalars(
                select(SettlementRecord)
                .where(SettlementRecord.status == PENDING, SettlementRecord.asset == asset)
                .order_by(SettlementRecord.session_id)
                .limit(self.max_batch)
            ).all()
        if not rows:
            return False
        oldest_age_s = (self._now_ms() - min(r.created_at_ms for r in rows)) / 1000
        if not force and len(rows) < self.max_batch and oldest_age_s < self.max_age_s:
            return False
        charges = []
        for r in rows:
            auth = self.authorizations.for_session(r.session_id)
            if auth is None:  # the biller only leaves rows pending with an authorization
                raise ElectraError(f"session {r.session_id} is pending without an authorization")
            charges.append(SessionCharge(r.session_id, auth.signed, int(r.amount), bytes(HexBytes(r.record_hash))))
        with self.sender.lock:
            batch_id, tx_hash = self._sign_and_record(asset, charges)
            self._broadcast_recorded(batch_id)
        receipt = self._wait(tx_hash)
        self._record(batch_id, receipt, report)
        report.batches += 1
        return len(rows) == self.max_batch

    def _sign_and_record(self, asset: str, charges: list[SessionCharge]) -> tuple[int, str]:
        address = self.assets[asset]
        entries = b"".join(c.pack() for c in charges)
        signed = self.sender.sign(self.hub.contract.functions.settleBatch(address, entries))
        tx_hash = signed.tx_hash
        now = self._now_ms()
        with Session(self.engine) as s, s.begin():
            batch = SettlementBatchRecord(
                status="signed",
                tx_hash=tx_hash,
                raw_tx=signed.raw,
                sender_nonce=signed.nonce,
                entries=len(charges),
                created_at_ms=now,
                updated_at_ms=now,
            )
            s.add(batch)
            s.flush()
            batch_id = batch.id
            ids = [c.session_id for c in charges]
            s.execute(
                update(SettlementRecord)
                .where(SettlementRecord.session_id.in_(ids), SettlementRecord.status == PENDING)
                .values(status=BATCHED, batch_id=batch_id, updated_at_ms=now)
            )
        LOG.info("batch %s: %d sessions in %s, transaction %s", batch_id, len(charges), asset, tx_hash)
        return batch_id, tx_hash

    def _broadcast_recorded(self, batch_id: int) -> None:
        with Session(self.engine) as s:
            raw = s.get(SettlementBatchRecord, batch_id)
            assert raw is not None
            self.sender.broadcast(raw.raw_tx or "")

    def _wait(self, tx_hash: str) -> Any:
        return self.sender.wait(tx_hash)

    # -- outcomes --------------------------------------------------------------------------------

    def _abandon(self, batch_id: int, why: str) -> None:
        now = self._now_ms()
        with Session(self.engine) as s, s.begin():
            s.execute(
                update(SettlementBatchRecord)
                .where(SettlementBatchRecord.id == batch_id)
                .values(status="failed", error=why, updated_at_ms=now)
            )
            s.execute(
                update(SettlementRecord)
                .where(SettlementRecord.batch_id == batch_id, SettlementRecord.status == BATCHED)
                .values(status=PENDING, batch_id=None, updated_at_ms=now)
            )
        LOG.warning("batch %s abandoned (%s); its sessions go back to the outbox", batch_id, why)

    def _record(self, batch_id: int, receipt: Any, report: RunReport) -> None:
        if receipt["status"] != 1:
            self._abandon(batch_id, f"the transaction reverted (block {receipt['blockNumber']})")
            report.errors.append(f"batch {batch_id} reverted")
            return
        with Session(self.engine) as s:
            rows = s.scalars(select(SettlementRecord).where(SettlementRecord.batch_id == batch_id)).all()
        ids = [r.session_id for r in rows]
        result = self.hub.batch_result(receipt, sorted(ids))
        fee_bps = self.hub.protocol_fee_bps()
        now = self._now_ms()
        payees: dict[str, str] = {}
        with Session(self.engine) as s, s.begin():
            for r in s.scalars(select(SettlementRecord).where(SettlementRecord.batch_id == batch_id)).all():
                reason = result.rejected.get(r.session_id, Rejection.NONE)
                if r.status != BATCHED:
                    continue  # recorded already (a second recovery of the same batch)
                if reason in (Rejection.NONE, Rejection.ALREADY_SETTLED):
                    if r.charger_id not in payees:
                        payees[r.charger_id] = self.owner_of(r.charger_id)
                    r.status, r.payee = SETTLED, payees[r.charger_id]
                    r.fee = str(int(r.amount) * fee_bps // 10_000)
                    if reason is Rejection.ALREADY_SETTLED:
                        r.reason = EARLIER
                    report.settled += 1
                    s.add(_event(r.vehicle_id, None, "charge", r.asset, r.amount, f"session:{r.session_id}", now))
                else:
                    r.status, r.reason = REJECTED, f"{REJECTED_BY_HUB}{reason.name}"
                    report.rejected += 1
                r.updated_at_ms = now
            for payee, amount in result.credits.items():
                s.add(
                    _event(None, payee, "earning", self._symbol(receipt), str(amount), f"batch:{batch_id}:{payee}", now)
                )
            batch = s.get(SettlementBatchRecord, batch_id)
            assert batch is not None
            batch.status, batch.gas_used, batch.block_number = "confirmed", receipt["gasUsed"], receipt["blockNumber"]
            batch.block_hash = block_hash_of(receipt)
            batch.updated_at_ms = now
        charged = {r.vehicle_id for r in rows if r.vehicle_id is not None}
        if self.on_charged is not None and charged:
            try:
                self.on_charged(charged)
            except (ElectraError, Web3Exception, OSError) as exc:  # alerts are advisory: settlement stands
                LOG.warning("low-balance check after batch %s failed: %s", batch_id, exc)
        LOG.info(
            "batch %s confirmed: %d settled, %d rejected, %s gas",
            batch_id,
            len(result.settled),
            len(result.rejected),
            receipt["gasUsed"],
        )

    def _symbol(self, receipt: Any) -> str:
        logs = self.hub.contract.events.BatchSettled().process_receipt(receipt, errors=DISCARD)
        address = str(logs[0]["args"]["asset"]).lower() if logs else ""
        return next((sym for sym, addr in self.assets.items() if addr.lower() == address), "?")


def _event(
    vehicle_id: int | None, owner: str | None, kind: str, asset: str, amount: str, ref: str, at_ms: int
) -> WalletEventRecord:
    return WalletEventRecord(
        vehicle_id=vehicle_id, owner=owner, kind=kind, asset=asset, amount=amount, reference=ref, at_ms=at_ms
    )


def receipt_of(engine: Engine, session_id: int) -> dict[str, Any] | None:
    """What a driver's receipt shows: energy, tariff and cost lines, the settlement transaction and
    the session record hash."""
    with Session(engine) as s:
        row = s.get(SettlementRecord, session_id)
        if row is None:
            return None
        batch = s.get(SettlementBatchRecord, row.batch_id) if row.batch_id is not None else None
    breakdown = json.loads(row.breakdown)
    return {
        "session_id": row.session_id,
        "charger_id": row.charger_id,
        "vehicle_id": row.vehicle_id,
        "status": row.status,
        "reason": row.reason,
        "asset": row.asset,
        "amount": row.amount,
        "fee": row.fee,
        "payee": row.payee,
        "tariff": breakdown.get("tariff"),
        "usage": breakdown.get("usage"),
        "cost": breakdown.get("cost"),
        "record_hash": row.record_hash,
        "record": breakdown.get("record"),
        "settlement_tx": batch.tx_hash if batch is not None and batch.status == "confirmed" else None,
        "block": batch.block_number if batch is not None else None,
    }
