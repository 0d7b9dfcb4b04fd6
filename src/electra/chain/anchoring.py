"""The anchoring worker: batches of the session log, anchored on SessionAnchor exactly once.

Each run:

1. **Recover.** A batch whose transaction was signed and stored (``submitted``) but whose outcome
   is not recorded is resolved with :class:`~electra.chain.txsender.TxSender`: mined, it is marked
   ``anchored``; still minable, the very same bytes are sent again; its nonce taken by another
   transaction, the chain is asked whether exactly this batch is anchored anyway, and if not the
   batch goes back to ``built`` to be signed again.
2. **Send.** ``built`` batches (built before a crash, or released in step 1) are signed, stored,
   sent and awaited, oldest first: SessionAnchor takes batches only in sequence order.
3. **Build.** When ``max_batch`` records wait, or the oldest waiting one has waited ``max_age_s``
   (or ``force``), :meth:`SessionLog.build_batch` stores the next batch with its Merkle root, and
   step 2 sends it.

Before step 1, the anchored batches are held against the chain (reorgs): a batch past
SessionAnchor's last anchored sequence number is no longer anchored (its block left the chain), so
it goes back to ``submitted`` (``built`` if it had no transaction of its own) and step 1 resolves
it again: the same bytes sent once more while their nonce is free, else signed anew. A recent
anchoring transaction that a reorg moved into another block gets that block recorded.

The contract enforces the rest: a batch must start right after the last anchored one, so a batch
sent twice is refused as ``SessionAnchorAlreadyAnchored`` (which the worker records as anchored),
and nothing can be anchored twice or out of order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eth_account.signers.local import LocalAccount
from web3.exceptions import Web3Exception

from electra.chain.anchors import SessionAnchorBinding, already_anchored
from electra.chain.txsender import REORG_DEPTH, TxSender, block_hash_of
from electra.errors import ChainError, ContractReverted
from electra.store.session_log import BUILT, SUBMITTED, AnchorBatch, SessionLog

LOG = logging.getLogger("electra.anchoring")


@dataclass
class AnchorReport:
    built: int = 0
    anchored: int = 0
    recovered: int = 0
    sessions: int = 0
    reorged: int = 0  # anchored batches that left the chain, taken back this run
    errors: list[str] = field(default_factory=list)


class AnchorWorker:
    def __init__(
        self,
        log: SessionLog,
        anchors: SessionAnchorBinding,
        anchorer: LocalAccount | None = None,
        max_batch: int = 1_000,
        max_age_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.log = log
        self.anchors = anchors
        self.sender = TxSender(anchors.client, anchorer or anchors.client.account)
        self.max_batch = max_batch
        self.max_age_s = max_age_s
        self.clock = clock
        self._waiting_since: float | None = None

    def run_once(self, force: bool = False) -> AnchorReport:
        """Recovers, sends what was built and builds what is due. Chain errors are reported, not
        raised: the next run picks up where this one stopped."""
        report = AnchorReport()
        try:
            self.recover(report)
            self._send_built(report)
            while self._due(force):
                batch = self.log.build_batch(self.max_batch)
                if batch is None:
                    break
                report.built += 1
                self._send(batch, report)
        except (ChainError, Web3Exception, ConnectionError, OSError, TimeoutError) as exc:
            LOG.warning("anchoring run stopped: %s", exc)
            report.errors.append(str(exc))
        return report

    # -- 1. recover ------------------------------------------------------------------------------

    def recover(self, report: AnchorReport) -> None:
        self.look_again(report)
        for batch in self.log.batches(SUBMITTED):
            with self.sender.lock:
                receipt = self.sender.resolve(batch.tx_hash, batch.nonce, batch.raw_tx)
            if receipt is not None and receipt["status"] == 1:
                self.log.mark_anchored(batch.id, int(receipt["blockNumber"]), block_hash_of(receipt))
            elif self.anchors.anchored(batch.root, batch.first_seq, batch.last_seq) is not None:
                # Anchored by another transaction of ours (a resend with a new nonce, say).
                self.log.release(batch.id)
                self.log.adopt_anchored(batch.id)
            else:
                why = "its nonce was used by another transaction" if receipt is None else "its transaction reverted"
                LOG.warning("anchor batch %s: %s; signing it again", batch.id, why)
                self.log.release(batch.id)
                continue
            report.recovered += 1
            report.sessions += batch.count

    def look_again(self, report: AnchorReport) -> None:
        """Takes back every anchored batch that SessionAnchor no longer holds (a reorganization
        took its block), oldest first; and follows a recent anchoring transaction that a reorg
        moved into another block."""
        held_up_to = self.anchors.last_anchored_seq()
        for batch in self.log.anchored_after(held_up_to):
            LOG.warning(
                "anchor batch %s (sessions %s..%s) left the chain with block %s (a reorg); resolving it again",
                batch.id,
                batch.first_seq,
                batch.last_seq,
                batch.block_number,
            )
            self.log.unanchor(batch.id)
            report.reorged += 1
        head = self.sender.head()
        for batch in self.log.anchored_since(head - REORG_DEPTH):
            if batch.tx_hash is None or self.sender.still_mined(batch.tx_hash, batch.block_hash):
                continue
            receipt = self.sender.receipt(batch.tx_hash)
            if receipt is not None and receipt["status"] == 1:  # mined again, in another block
                self.log.move_anchor(batch.id, int(receipt["blockNumber"]), block_hash_of(receipt))
                report.reorged += 1

    # -- 2. send ---------------------------------------------------------------------------------

    def _send_built(self, report: AnchorReport) -> None:
        for batch in self.log.batches(BUILT):
            self._send(batch, report)

    def _send(self, batch: AnchorBatch, report: AnchorReport) -> None:
        with self.sender.lock:
            try:
                signed = self.anchors.sign_anchor(batch.root, batch.first_seq, batch.last_seq, self.sender)
            except ContractReverted as exc:
                if already_anchored(exc) is None:
                    raise ChainError(f"anchor batch {batch.id} is refused: {exc.one_line()}") from exc
                # The chain has exactly this batch (checked: another root would be RootMismatch).
                self.log.adopt_anchored(batch.id)
                report.anchored += 1
                report.sessions += batch.count
                return
            self.log.mark_submitted(batch.id, signed.tx_hash, signed.raw, signed.nonce)
            self.sender.broadcast(signed.raw)
        receipt = self.sender.wait(signed.tx_hash)
        if receipt["status"] != 1:
            self.log.release(batch.id)
            raise ChainError(f"anchor batch {batch.id}: transaction {signed.tx_hash} reverted")
        self.log.mark_anchored(batch.id, int(receipt["blockNumber"]), block_hash_of(receipt))
        report.anchored += 1
        report.sessions += batch.count
        LOG.info(
            "anchor batch %s: sessions %s..%s anchored in block %s",
            batch.id,
            batch.first_seq,
            batch.last_seq,
            receipt["blockNumber"],
        )

    # -- 3. build --------------------------------------------------------------------------------

    def _due(self, force: bool) -> bool:
        waiting = self.log.last_seq() - self.log.last_batched_seq()
        if waiting <= 0:
            self._waiting_since = None
            return False
        now = self.clock()
        if self._waiting_since is None:
            self._waiting_since = now
        if force or waiting >= self.max_batch or now - self._waiting_since >= self.max_age_s:
            self._waiting_since = None
            return True
        return False


def anchor_worker_for(electra: Any, log: SessionLog, **kw: Any) -> AnchorWorker:
    """The worker on a deployment with SessionAnchor (``Electra.anchors``)."""
    return AnchorWorker(log, electra.anchors, **kw)
