"""Transactions a worker sends exactly once, across crashes and chain outages.

The settlement and anchoring workers follow the same discipline:

1. :meth:`TxSender.sign` builds and signs the transaction with an explicit nonce. The caller stores
   the signed bytes, their hash and the nonce **before** anything is sent, in the same database
   transaction that claims the work (an outbox row).
2. :meth:`TxSender.broadcast` sends the stored bytes; sending them again is harmless (same hash).
3. After a crash, :meth:`TxSender.resolve` decides what happened to a recorded transaction: mined
   (its receipt), still pending or lost with its nonce free (sent again, then its receipt), or never
   minable because another transaction took its nonce (``None``: the caller releases the work).

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

_LOCKS: dict[str, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def sender_lock(address: str) -> threading.RLock:
    """The process-wide lock of one sending account."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(address.lower(), threading.RLock())


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
        return self.wait(tx_hash)
