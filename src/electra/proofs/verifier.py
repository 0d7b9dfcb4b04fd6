"""The standalone verifier: checks a session's proof bundle with nothing but an RPC URL.

It trusts nothing in the bundle and nothing of the operator's: no database, no deployment manifest,
no settings. Each check is named and says why it passed or failed:

``leaf``         the record's ten values, ABI-encoded and hashed again, give the bundle's leaf
``proof``        the proof folds the leaf up to the batch's root (OpenZeppelin's sorted pairs)
``chain``        the RPC serves the chain id the bundle names
``anchor``       SessionAnchor holds that root for exactly this batch, and the batch holds the seq
``contract``     SessionAnchor's own ``verifySession`` (MerkleProof.sol) accepts leaf and proof
``transaction``  the anchoring transaction was mined and emitted ``SessionsAnchored`` for the batch
``meter data``   every signed reading was signed by the charger NFT's device key, carries the
                 register the OCPP reading said, and the record's start and stop registers are the
                 signed begin and end readings
``energy``       the billed energy is the stop register minus the start register (or 0, unbilled)

:func:`verify_bundle` returns a :class:`Verification`; ``ok`` is true only if every check passed.
A bundle without an anchor (its batch is not on-chain yet) is not ok: there is nothing to prove
against. Pass ``anchor_address`` to check against a SessionAnchor you know, rather than the one
the bundle names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import requests
from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.exceptions import ContractLogicError, TransactionNotFound
from web3.logs import DISCARD

from electra.chain.artifacts import load
from electra.domain.merkle import process_proof
from electra.errors import ChainUnreachable, InvalidInput
from electra.metering.keys import MeterKey, MeterKeyError
from electra.proofs.bundle import ProofBundle
from electra.proofs.meter import check_meter_data

PASS, FAIL, SKIP = "pass", "fail", "skip"


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # pass | fail | skip
    detail: str

    @property
    def ok(self) -> bool:
        return self.status == PASS


@dataclass
class Verification:
    session_id: int
    seq: int
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.status == PASS for c in self.checks)

    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status != PASS]

    def add(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(name, PASS if ok else FAIL, detail))
        return ok

    def skip(self, name: str, detail: str) -> None:
        self.checks.append(Check(name, SKIP, detail))

    def to_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "seq": self.seq,
            "verified": self.ok,
            "checks": [{"name": c.name, "status": c.status, "detail": c.detail} for c in self.checks],
        }


def web3_for(rpc_url: str, timeout_s: float = 10.0) -> Web3:
    return Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s}))


def verify_bundle(
    bundle: ProofBundle, rpc_url: str | None = None, *, w3: Web3 | None = None, anchor_address: str | None = None
) -> Verification:
    """Checks ``bundle`` against the chain at ``rpc_url`` (or an open ``w3``). Raises
    ChainUnreachable if the RPC does not answer; every other problem is a failed check."""
    if w3 is None:
        if rpc_url is None:
            raise InvalidInput("verify_bundle needs an RPC URL", "pass rpc_url or an open Web3")
        w3 = web3_for(rpc_url)
    try:
        return _verify(bundle, w3, anchor_address)
    except requests.RequestException as exc:
        raise ChainUnreachable(f"cannot reach the chain RPC: {exc}", "give an RPC URL of the bundle's chain") from exc


def _verify(bundle: ProofBundle, w3: Web3, anchor_address: str | None) -> Verification:
    v = Verification(bundle.session_id, bundle.seq)
    leaf = bundle.record.leaf()
    v.add(
        "leaf",
        "0x" + leaf.hex() == bundle.leaf.lower() and bundle.record.session_id == bundle.session_id,
        f"record values of session {bundle.record.session_id} hash to 0x{leaf.hex()}"
        + ("" if "0x" + leaf.hex() == bundle.leaf.lower() else f", not the bundle's {bundle.leaf}"),
    )
    b = bundle.batch
    if b is None:
        v.add("proof", False, f"seq {bundle.seq} is in no batch yet: nothing to prove it against")
        return v
    in_range = b.first_seq <= bundle.seq <= b.last_seq and b.count == b.last_seq - b.first_seq + 1
    folded = process_proof(leaf, [bytes.fromhex(p[2:]) for p in bundle.proof])
    v.add(
        "proof",
        in_range and "0x" + folded.hex() == b.root.lower(),
        f"the proof ({len(bundle.proof)} nodes) folds the leaf to 0x{folded.hex()}; the batch "
        f"{b.first_seq}..{b.last_seq} has root {b.root}"
        + ("" if in_range else f", and does not hold seq {bundle.seq}"),
    )
    a = bundle.anchor
    if a is None:
        v.add("anchor", False, f"batch {b.first_seq}..{b.last_seq} is not anchored on-chain yet")
        return v
    chain_id = int(w3.eth.chain_id)
    if not v.add("chain", chain_id == a.chain_id, f"the RPC serves chain {chain_id}; the bundle names {a.chain_id}"):
        return v
    address = to_checksum_address(anchor_address or a.contract)
    anchor = w3.eth.contract(address=address, abi=load("SessionAnchor").abi)
    if not w3.eth.get_code(address):
        v.add("anchor", False, f"no contract at {address} on chain {chain_id}")
        return v
    try:
        index = int(anchor.functions.anchorOf(bundle.seq).call())
        root, first, last, count, at = anchor.functions.anchor(index).call()
    except ContractLogicError:
        v.add("anchor", False, f"SessionAnchor {address} holds no batch with seq {bundle.seq}: the root is missing")
        return v
    on_chain = "0x" + bytes(root).hex()
    same = (on_chain, int(first), int(last), int(count)) == (b.root.lower(), b.first_seq, b.last_seq, b.count)
    v.add(
        "anchor",
        same and index == a.batch_index,
        f"SessionAnchor {address} batch {index} holds seqs {first}..{last} with root {on_chain}, anchored at {at}"
        + ("" if same else f"; the bundle's batch is {b.first_seq}..{b.last_seq} with root {b.root}")
        + ("" if index == a.batch_index else f"; the bundle names batch {a.batch_index}"),
    )
    accepted = bool(
        anchor.functions.verifySession(bundle.seq, leaf, [bytes.fromhex(p[2:]) for p in bundle.proof]).call()
    )
    v.add("contract", accepted, f"SessionAnchor.verifySession({bundle.seq}, leaf, proof) returned {accepted}")
    block = _check_transaction(v, w3, anchor, bundle, index)
    _check_meter(v, w3, bundle, block)
    _check_energy(v, bundle)
    return v


def _check_transaction(v: Verification, w3: Web3, anchor: Any, bundle: ProofBundle, index: int) -> int | None:
    a = bundle.anchor
    assert a is not None
    if a.tx_hash is None:
        v.add("transaction", False, "the bundle names no anchoring transaction")
        return None
    try:
        receipt = w3.eth.get_transaction_receipt(a.tx_hash)  # type: ignore[arg-type]
    except TransactionNotFound:
        v.add("transaction", False, f"transaction {a.tx_hash} is not on chain {a.chain_id}")
        return None
    events = [
        e
        for e in anchor.events.SessionsAnchored().process_receipt(receipt, errors=DISCARD)
        if e["address"] == anchor.address
    ]
    hit = any(int(e["args"]["batchIndex"]) == index for e in events)
    v.add(
        "transaction",
        receipt["status"] == 1 and hit,
        f"{a.tx_hash} in block {receipt['blockNumber']}"
        + (" emitted SessionsAnchored for batch " + str(index) if hit else f" did not anchor batch {index}"),
    )
    return int(receipt["blockNumber"])


def _check_meter(v: Verification, w3: Web3, bundle: ProofBundle, block: int | None) -> None:
    r = bundle.record
    if not bundle.meter_data:
        v.skip("meter data", "the charger sent no signed meter data for this session")
        return
    if bundle.station_registry is None:
        v.add("meter data", False, "the bundle names no StationRegistry to find the charger's device key")
        return
    registry = w3.eth.contract(address=to_checksum_address(bundle.station_registry), abi=load("StationRegistry").abi)
    devices: set[str] = set()
    for at in ("latest", block):  # the device now, and when the batch was anchored (keys rotate)
        if at is None:
            continue
        try:
            devices.add(str(registry.functions.deviceOf(r.charger_token_id).call(block_identifier=at)).lower())
        except (ContractLogicError, ValueError):
            continue
    if not devices:
        v.add("meter data", False, f"StationRegistry knows no charger NFT {r.charger_token_id}")
        return
    try:
        key = MeterKey.load(bundle.meter_key) if bundle.meter_key else None
    except MeterKeyError as exc:
        v.add("meter data", False, f"the bundle's meter key is not usable: {exc.cause}")
        return
    m = check_meter_data(r, bundle.meter_data, devices, key)
    v.add(
        "meter data",
        not m.problems,
        "; ".join(m.problems)
        if m.problems
        else f"{m.count} signed reading(s) by "
        + ("the meter key the operator registered (not bound on-chain) " if key else "the charger NFT's device key ")
        + f"(begin {'-' if m.begin_wh is None else m.begin_wh} Wh, end {'-' if m.end_wh is None else m.end_wh} Wh)",
    )


def _check_energy(v: Verification, bundle: ProofBundle) -> None:
    r = bundle.record
    delta = r.meter_stop_wh - r.meter_start_wh
    ok = r.energy_wh in (delta, 0) and r.stopped_at_ms >= r.started_at_ms
    v.add(
        "energy",
        ok,
        f"billed {r.energy_wh} Wh for registers {r.meter_start_wh}..{r.meter_stop_wh} Wh"
        + (
            ""
            if r.energy_wh == delta
            else " (unbilled: flagged)"
            if r.energy_wh == 0
            else ", which is not their difference"
        ),
    )
