"""Transactions a worker sends exactly once, across crashes and chain outages.

The settlement and anchoring workers follow the same discipline:

1. :meth:`TxSender.sign` builds and signs the transaction with an explicit nonce. The caller stores
   the signed bytes, their hash and the nonce **before** anything is sent, in the same database
   transaction that claims the work (an outbox row).
2. :meth:`TxSender.broadcast` sends the stored bytes; sending them again is harmless (same hash).
3. After a crash, :meth:`TxSender.resolve` decides what happened to a recorded transaction: mined
   (its receipt), still pending or lost with its nonce free (sent again, then its receipt), or never
   minable because another transaction took its nonce (``None``: the caller releases the work).
   A transaction behind a nonce gap (an earlier one of the account is not mined, as after a reorg)
   is sent and reported as waiting (:class:`NonceGap`); the next run looks again.
4. A mined transaction is not final while its block is recent: a reorganization can take it out of
   the chain. The caller records the block hash with the outcome, and :meth:`TxSender.still_mined`
   says, while the block is within ``REORG_DEPTH`` of the head, whether the receipt is still there
   in that very block. When it is not, the caller takes its recorded outcome back and resolves the
   stored transaction again (step 3), which sends the same bytes once more or releases the work.

One lock per sender account serialises signing and sending, so that two workers of one process
sharing the operator key never sign two transactions with the same nonce.
"""

from __future__ import annotations

import threading
from typing import Any

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3.contract.contract import ContractFunction
from web3.exceptions import TransactionNotFound

from electra.chain.client import ChainClient
from electra.errors import ChainError

GAS_HEADROOM = 1.25
GAS_FLAT = 50_000
RECEIPT_TIMEOUT_S = 120
# Blocks under the head in which a mined transaction is still looked at again (a reorg deeper than
# this on a chain with finality would be a failure of the chain itself).
REORG_DEPTH = 64

_LOCKS: dict[str, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def sender_lock(address: str) -> threading.RLock:
    """The process-wide lock of one sending account."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(address.lower(), threading.RLock())


class NonceGap(ChainError):
    """A stored transaction cannot be mined before an earlier transaction of the account is."""


class SignedTx:
    """A signed transaction as the outbox stores it."""

    __slots__ = ("nonce", "raw", "tx_hash")

    def __init__(self, raw: str, tx_hash: str, nonce: int) -> None:
        self.raw, self.tx_hash, self.nonce = raw, tx_hash, nonce


class TxSender:
    def __init__(self, client: ChainClient, account: LocalAccount) -> None:
        self.client = client
        self.account = account
        self.lock = sender_lock(account.address)

    def sign(self, fn: ContractFunction) -> SignedTx:
        """Estimates gas (with headroom), takes the account's next pending nonce and signs."""
        w3 = self.client.w3
        nonce = int(w3.eth.get_transaction_count(self.account.address, "pending"))
        tx: Any = fn.build_transaction({"from": self.account.address, "chainId": self.client.chain_id, "nonce": nonce})
        tx["gas"] = int(tx["gas"] * GAS_HEADROOM) + GAS_FLAT
        signed = self.account.sign_transaction(tx)
        return SignedTx("0x" + bytes(signed.raw_transaction).hex(), "0x" + bytes(signed.hash).hex(), nonce)

    def broadcast(self, raw: str) -> None:
        try:
            self.client.w3.eth.send_raw_transaction(HexBytes(raw))
        except ValueError as exc:  # web3 reports JSON-RPC errors as ValueError
            text = str(exc).lower()
            if "already known" in text or "already imported" in text or "nonce too low" in text:
                return  # the node has it, or it was mined: the receipt says which
            raise ChainError(f"sending the transaction failed: {exc}") from exc

    def receipt(self, tx_hash: str | None) -> Any | None:
        if not tx_hash:
            return None
        try:
            return self.client.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
        except TransactionNotFound:
            return None

    def wait(self, tx_hash: str) -> Any:
        return self.client.w3.eth.wait_for_transaction_receipt(
            HexBytes(tx_hash), timeout=RECEIPT_TIMEOUT_S, poll_latency=0.05
        )

    def resolve(self, tx_hash: str | None, nonce: int | None, raw: str | None) -> Any | None:
        """The receipt of a recorded transaction, sending it again if it may still be mined; None if
        it never can be (its nonce went to another transaction)."""
        receipt = self.receipt(tx_hash)
        if receipt is not None:
            return receipt
        chain_nonce = int(self.client.w3.eth.get_transaction_count(self.account.address, "latest"))
        if nonce is not None and chain_nonce > nonce:
            return self.receipt(tx_hash)  # mined between the two reads, or lost for good
        if not raw or not tx_hash:
            return None
        self.broadcast(raw)
        if nonce is not None and nonce > chain_nonce:
            # Waiting here would hold the account's lock while the worker that owns the missing
            # nonce needs it to send that one again.
            raise NonceGap(
                f"transaction {tx_hash} (nonce {nonce}) waits for nonce {chain_nonce} of {self.account.address}",
                "the transaction with the missing nonce is sent again by its worker; this one follows",
            )
        return self.wait(tx_hash)

    def head(self) -> int:
        return int(self.client.w3.eth.block_number)

    def recent(self, block_number: int | None, head: int) -> bool:
        """Whether a transaction mined in ``block_number`` is still looked at for reorgs."""
        return block_number is not None and block_number > head - REORG_DEPTH

    def still_mined(self, tx_hash: str | None, block_hash: str | None) -> bool:
        """Whether the transaction is still in the chain, in the block recorded with it (any block,
        when no block hash was recorded)."""
        receipt = self.receipt(tx_hash)
        if receipt is None:
            return False
        return block_hash is None or block_hash_of(receipt) == block_hash.lower()


def block_hash_of(receipt: Any) -> str:
    return "0x" + bytes(receipt["blockHash"]).hex()
