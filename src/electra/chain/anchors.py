"""SessionAnchor: Merkle roots of the session log's batches, anchored on-chain exactly once.

A batch is the run of session-log sequence numbers ``first_seq..last_seq`` (both included); its root
is an OpenZeppelin StandardMerkleTree root over the sessions' leaves (docs/formats.md). Batches are
contiguous from 1, so sending a batch twice reverts with ``SessionAnchorAlreadyAnchored(batchIndex)``:
:func:`already_anchored` tells a worker that its batch is done. For a worker that signs first and
sends later (:mod:`electra.chain.txsender`), :meth:`SessionAnchorBinding.sign_anchor` gives the signed
bytes, hash and nonce, and :meth:`SessionAnchorBinding.anchored_in` reads the outcome from a receipt.
The contract's rules are in docs/contracts.md#sessionanchor.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD
from web3.types import TxReceipt

from electra.chain.bindings import TxResult
from electra.chain.client import ChainClient, decode_revert, explained_by
from electra.chain.txsender import SignedTx, TxSender
from electra.errors import ContractReverted, InvalidInput

FIRST_SEQ = 1  # SessionAnchor.FIRST_SEQ: the first batch starts here
MAX_SEQ = 2**64 - 1  # sequence numbers are uint64 on-chain
ALREADY_ANCHORED = "SessionAnchorAlreadyAnchored"

Bytes32 = bytes | str


@dataclass(frozen=True)
class Anchor:
    """One anchored batch, as the contract stores it."""

    index: int
    root: str  # 0x-prefixed hex
    first_seq: int
    last_seq: int
    count: int  # last_seq - first_seq + 1: the number of leaves of the batch's tree
    anchored_at: int  # block timestamp, unix seconds

    def holds(self, seq: int) -> bool:
        return self.first_seq <= seq <= self.last_seq


@dataclass(frozen=True)
class AnchorEvent:
    """A ``SessionsAnchored`` event: which transaction anchored which batch."""

    index: int
    root: str
    first_seq: int
    last_seq: int
    block_number: int
    tx_hash: str


def already_anchored(exc: ContractReverted) -> int | None:
    """The batch index if ``exc`` says this very batch is anchored already (the worker's "done")."""
    if exc.error == ALREADY_ANCHORED:
        return int(exc.error_args["batchIndex"])
    return None


def _fix(exc: ContractReverted) -> str | None:
    a = exc.error_args
    fixes = {
        "SessionAnchorUnauthorizedAnchorer": "governance grants the role with SessionAnchor.setAnchorer(account, true)",
        "SessionAnchorUnauthorizedGuardian": "only the guardian or governance may pause",
        "SessionAnchorGap": f"anchor from sequence number {a.get('expectedFirstSeq')} on, without a gap",
        "SessionAnchorOverlap": f"the next batch starts at sequence number {a.get('expectedFirstSeq')}",
        ALREADY_ANCHORED: "nothing to do: this batch is anchored",
        "SessionAnchorRootMismatch": (
            "the chain holds another root for these sessions: the session log and the chain disagree; "
            "investigate before anchoring more"
        ),
        "SessionAnchorNotAnchored": "the session is not anchored yet; wait for the anchoring worker",
        "SessionAnchorUnknownBatch": "batch indexes run from 0 to anchorCount() - 1",
        "EnforcedPause": "SessionAnchor is paused; governance unpauses it",
        "OwnableUnauthorizedAccount": "only governance (the timelock) may do this",
    }
    return fixes.get(exc.error, exc.fix)


def _explained() -> AbstractContextManager[None]:
    return explained_by(_fix)


def _bytes32(value: Bytes32, what: str) -> bytes:
    raw = bytes(HexBytes(value))
    if len(raw) != 32:
        raise InvalidInput(f"{what} must be 32 bytes, not {len(raw)}")
    return raw


def _seq(value: int, what: str) -> int:
    if not 0 <= value <= MAX_SEQ:
        raise InvalidInput(f"{what} {value} does not fit the contract's uint64 sequence numbers")
    return value


def _anchor_args(root: Bytes32, first_seq: int, last_seq: int) -> tuple[bytes, int, int]:
    return _bytes32(root, "root"), _seq(first_seq, "first sequence number"), _seq(last_seq, "last sequence number")


def _hex(b: bytes) -> str:
    return "0x" + bytes(b).hex()


class SessionAnchorBinding:
    def __init__(self, client: ChainClient, address: str) -> None:
        self.client = client
        self.contract = client.contract("SessionAnchor", address)
        self.address = self.contract.address

    # ------------------------------------------------------------ anchoring

    def anchor_call(self, root: Bytes32, first_seq: int, last_seq: int) -> ContractFunction:
        """The ``anchorSessions`` call, to build, estimate or encode a transaction from."""
        return self.contract.functions.anchorSessions(*_anchor_args(root, first_seq, last_seq))

    def anchor_calldata(self, root: Bytes32, first_seq: int, last_seq: int) -> bytes:
        """The transaction data of ``anchorSessions``."""
        args = list(_anchor_args(root, first_seq, last_seq))
        return bytes(HexBytes(self.contract.encode_abi("anchorSessions", args=args)))

    def anchor_sessions(
        self, root: Bytes32, first_seq: int, last_seq: int, sender: LocalAccount | None = None
    ) -> tuple[int, TxResult]:
        """Anchors one batch and waits for it. Returns (batch index, tx). A batch anchored already
        raises ContractReverted(SessionAnchorAlreadyAnchored); see :func:`already_anchored`."""
        with _explained():
            receipt = self.client.transact(self.anchor_call(root, first_seq, last_seq), sender=sender)
        return self.anchored_in(receipt).index, TxResult.of(receipt)

    def sign_anchor(self, root: Bytes32, first_seq: int, last_seq: int, sender: TxSender | None = None) -> SignedTx:
        """Signs an anchoring transaction with ``sender`` (the operator by default) without sending it,
        for a worker that records it first (:mod:`electra.chain.txsender`). The gas estimate runs the
        contract's checks, so a batch anchored already raises
        ContractReverted(SessionAnchorAlreadyAnchored) here, before anything is signed."""
        sender = sender or TxSender(self.client, self.client.account)
        with _explained():
            try:
                return sender.sign(self.anchor_call(root, first_seq, last_seq))
            except ContractLogicError as exc:
                raise decode_revert(exc.data if isinstance(exc.data, str) else None) from exc

    def anchored_in(self, receipt: TxReceipt) -> AnchorEvent:
        """The batch a mined anchoring transaction anchored."""
        logs = self.contract.events.SessionsAnchored().process_receipt(receipt, errors=DISCARD)
        if not logs:
            raise InvalidInput(f"transaction {_hex(receipt['transactionHash'])} anchored no batch")
        return _event(logs[0])

    def anchored(self, root: Bytes32, first_seq: int, last_seq: int) -> Anchor | None:
        """The anchored batch if exactly this one is on the chain, None if ``first_seq`` is not
        anchored yet. Another batch over these sequence numbers raises InvalidInput."""
        if first_seq < FIRST_SEQ or first_seq > self.last_anchored_seq():
            return None
        a = self.anchor(self.anchor_of(first_seq))
        if (a.first_seq, a.last_seq, a.root) != (first_seq, last_seq, _hex(_bytes32(root, "root"))):
            raise InvalidInput(
                f"sequence numbers {first_seq}..{last_seq} overlap batch {a.index} "
                f"({a.first_seq}..{a.last_seq}, root {a.root})",
                "the session log and the chain disagree; investigate before anchoring more",
            )
        return a

    # ------------------------------------------------------------ reading

    def anchor_count(self) -> int:
        return int(self.client.call(self.contract.functions.anchorCount()))

    def last_anchored_seq(self) -> int:
        """The last anchored sequence number (0 before the first batch)."""
        return int(self.client.call(self.contract.functions.lastAnchoredSeq()))

    def next_seq(self) -> int:
        """Where the next batch must start."""
        return self.last_anchored_seq() + 1

    def anchor(self, index: int) -> Anchor:
        with _explained():
            a = self.client.call(self.contract.functions.anchor(index))
        return Anchor(index, _hex(a[0]), int(a[1]), int(a[2]), int(a[3]), int(a[4]))

    def anchor_of(self, seq: int) -> int:
        """The index of the batch holding ``seq``; ContractReverted(SessionAnchorNotAnchored) if none."""
        with _explained():
            return int(self.client.call(self.contract.functions.anchorOf(seq)))

    def verify(self, index: int, leaf: Bytes32, proof: Sequence[Bytes32]) -> bool:
        """Whether the contract accepts ``proof`` for the leaf hash ``leaf`` in batch ``index``."""
        fn = self.contract.functions.verify(index, _bytes32(leaf, "leaf"), [_bytes32(p, "proof node") for p in proof])
        with _explained():
            return bool(self.client.call(fn))

    def verify_session(self, seq: int, leaf: Bytes32, proof: Sequence[Bytes32]) -> bool:
        """The same, in the batch that holds sequence number ``seq``."""
        fn = self.contract.functions.verifySession(
            seq, _bytes32(leaf, "leaf"), [_bytes32(p, "proof node") for p in proof]
        )
        with _explained():
            return bool(self.client.call(fn))

    def anchors_from_events(self, from_block: int = 0, to_block: int | str = "latest") -> list[AnchorEvent]:
        """Every SessionsAnchored event in the block range, in chain order."""
        logs = self.contract.events.SessionsAnchored().get_logs(from_block=from_block, to_block=to_block)
        return [_event(lg) for lg in logs]

    # ------------------------------------------------------------ roles and governance

    def is_anchorer(self, account: str) -> bool:
        return bool(self.client.call(self.contract.functions.isAnchorer(account)))

    def guardian(self) -> str:
        return str(self.client.call(self.contract.functions.guardian()))

    def owner(self) -> str:
        return str(self.client.call(self.contract.functions.owner()))

    def paused(self) -> bool:
        return bool(self.client.call(self.contract.functions.paused()))

    def pause(self, sender: LocalAccount | None = None) -> TxResult:
        """The guardian (or governance) stops anchoring; verification keeps working."""
        with _explained():
            return TxResult.of(self.client.transact(self.contract.functions.pause(), sender=sender))

    def governance_call(self, setter: str, *args: Any) -> tuple[str, bytes]:
        """(target, calldata) of a governed setter, for a proposal through the governor and timelock.

        Setters: setAnchorer(account, allowed), setGuardian(guardian), unpause().
        """
        if setter not in GOVERNED_SETTERS:
            names = ", ".join(GOVERNED_SETTERS)
            raise InvalidInput(f"{setter} is not a governed SessionAnchor setter", f"one of {names}")
        return self.address, bytes(HexBytes(self.contract.encode_abi(setter, args=list(args))))


GOVERNED_SETTERS = ("setAnchorer", "setGuardian", "unpause")


def _event(log: Any) -> AnchorEvent:
    args = log["args"]
    return AnchorEvent(
        int(args["batchIndex"]),
        _hex(args["root"]),
        int(args["firstSeq"]),
        int(args["lastSeq"]),
        int(log["blockNumber"]),
        _hex(log["transactionHash"]),
    )
