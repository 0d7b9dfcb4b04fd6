"""SessionAnchor on a real anvil: contiguous batches anchored exactly once, roles, pause, the
binary search from a sequence number to its batch, and proofs made by OpenZeppelin's own
`@openzeppelin/merkle-tree` (tests/merkle_oz.js) checked by the contract."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from eth_abi.abi import encode
from eth_utils import keccak
from hexbytes import HexBytes
from hypothesis import HealthCheck, given, settings

from electra.chain.anchors import FIRST_SEQ, SessionAnchorBinding, already_anchored
from electra.chain.bindings import Electra
from electra.chain.deploy import ANCHOR_CONTRACTS, PAYMENT_CONTRACTS, deploy, manifest_path
from electra.chain.keys import dev_account
from electra.config import Settings, load_settings
from electra.domain.record import LEAF_TYPES, SessionRecord
from electra.errors import ContractReverted, DeploymentMissing, InvalidInput
from tests.test_payment_hub import as_timelock, reverted

OPERATOR = dev_account(0)  # deployer: anchorer and pause guardian
STRANGER = dev_account(5)
ROOT_DIR = Path(__file__).resolve().parents[1]
ZERO_ADDRESS = "0x" + "0" * 40
ASSET = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def root(label: object) -> bytes:
    return keccak(text=f"batch-root-{label}")


def record(seq: int) -> SessionRecord:
    """The session-log entry with sequence number ``seq`` (its session id is the sequence number)."""
    started = 1_790_000_000_000 + seq * 3_600_000
    return SessionRecord(
        seq,
        1 + seq % 7,
        seq % 5,
        started,
        started + 2_700_000,
        seq * 1_000,
        seq * 1_000 + 22_500,
        22_500,
        ASSET,
        7_650_000 + seq,
    )


def oz_tree(records: list[SessionRecord]) -> dict[str, Any]:
    """Root and proofs from @openzeppelin/merkle-tree (tests/merkle_oz.js), with each record's leaf
    hash from Electra's own encoding, after checking that the npm package's leaves are exactly those."""
    node = shutil.which("node")
    assert node, "node runs the reference Merkle tree"
    request = {"op": "tree", "types": list(LEAF_TYPES), "values": [[str(v) for v in r.values()] for r in records]}
    proc = subprocess.run(
        [node, str(ROOT_DIR / "tests" / "merkle_oz.js")],
        input=json.dumps(request) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT_DIR,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert "error" not in answer, answer["error"]
    leaves = ["0x" + r.leaf().hex() for r in records]
    # A StandardMerkleTree's array ends with its leaves (sorted).
    assert sorted(answer["tree"][-len(records) :]) == sorted(leaves)
    return {
        "root": answer["root"],
        "leaves": [{"hash": h, "proof": p} for h, p in zip(leaves, answer["proofs"], strict=True)],
    }


@pytest.fixture
def anchors(electra: Electra) -> SessionAnchorBinding:
    return electra.anchors


def block_time(e: Electra, block_number: int) -> int:
    return int(e.client.w3.eth.get_block(block_number)["timestamp"])


# ---------------------------------------------------------------- deployment


def test_deployed_under_governance_with_the_operator_as_anchorer(
    electra: Electra, anchors: SessionAnchorBinding
) -> None:
    assert anchors.owner() == electra.deployment.address("ElectraTimelock")
    assert anchors.is_anchorer(OPERATOR.address) and not anchors.is_anchorer(STRANGER.address)
    assert anchors.guardian() == OPERATOR.address
    assert not anchors.paused()
    assert (anchors.anchor_count(), anchors.last_anchored_seq(), anchors.next_seq()) == (0, 0, 1)
    assert electra.client.call(anchors.contract.functions.FIRST_SEQ()) == FIRST_SEQ == 1
    assert electra.deployment.gas_used["SessionAnchor"] > 0


def test_deploy_adds_session_anchor_to_an_older_deployment(
    electra: Electra, chain_settings: Settings, tmp_path: Path
) -> None:
    """A dev chain deployed before SessionAnchor existed gets it in place, under the old timelock."""
    settings = load_settings(data_dir=tmp_path, dev_chain_port=chain_settings.dev_chain_port)
    older = replace(
        electra.deployment,
        addresses={k: v for k, v in electra.deployment.addresses.items() if k not in ANCHOR_CONTRACTS},
    )
    path = manifest_path(settings, older.chain_id)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(older.to_json()))
    with pytest.raises(DeploymentMissing, match="predates SessionAnchor"):
        _ = Electra.of(electra.client, older).anchors

    upgraded, fresh = deploy(electra.client, settings)
    assert fresh
    assert {k: upgraded.addresses[k] for k in older.addresses} == older.addresses
    assert upgraded.addresses["SessionAnchor"] != electra.deployment.addresses["SessionAnchor"]
    assert upgraded.gas_used["SessionAnchor"] > 0
    again, fresh = deploy(electra.client, settings)
    assert not fresh and again.addresses == upgraded.addresses
    added = Electra.of(electra.client, again).anchors
    assert added.owner() == older.addresses["ElectraTimelock"]
    assert added.is_anchorer(OPERATOR.address) and added.guardian() == OPERATOR.address
    assert added.anchor_sessions(root("added"), 1, 10)[0] == 0


def test_deploy_adds_payments_and_session_anchor_together(
    electra: Electra, chain_settings: Settings, tmp_path: Path
) -> None:
    settings = load_settings(data_dir=tmp_path, dev_chain_port=chain_settings.dev_chain_port)
    later = set(PAYMENT_CONTRACTS) | set(ANCHOR_CONTRACTS)
    older = replace(
        electra.deployment, addresses={k: v for k, v in electra.deployment.addresses.items() if k not in later}
    )
    path = manifest_path(settings, older.chain_id)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(older.to_json()))
    upgraded, fresh = deploy(electra.client, settings)
    assert fresh
    assert set(upgraded.addresses) == set(electra.deployment.addresses)
    assert {k: upgraded.addresses[k] for k in older.addresses} == older.addresses
    assert all(upgraded.addresses[k] != electra.deployment.addresses[k] for k in later)
    assert upgraded.parameters["protocol_fee_bps"] == electra.deployment.parameters["protocol_fee_bps"]


# ---------------------------------------------------------------- anchoring


def test_anchoring_stores_contiguous_batches(electra: Electra, anchors: SessionAnchorBinding) -> None:
    i0, tx0 = anchors.anchor_sessions(root(0), 1, 100)
    i1, tx1 = anchors.anchor_sessions(root(1), 101, 1_100)
    i2, tx2 = anchors.anchor_sessions(root(2), 1_101, 1_101)  # a batch of one session
    assert (i0, i1, i2) == (0, 1, 2)
    assert anchors.anchor_count() == 3
    assert anchors.last_anchored_seq() == 1_101 and anchors.next_seq() == 1_102

    a = anchors.anchor(1)
    assert (a.index, a.root, a.first_seq, a.last_seq, a.count) == (1, "0x" + root(1).hex(), 101, 1_100, 1_000)
    assert a.anchored_at == block_time(electra, tx1.block_number)
    assert a.holds(101) and a.holds(1_100) and not a.holds(100) and not a.holds(1_101)
    assert anchors.anchor(2).count == 1

    events = anchors.anchors_from_events(electra.deployment.block_number)
    assert [(ev.index, ev.first_seq, ev.last_seq) for ev in events] == [(0, 1, 100), (1, 101, 1_100), (2, 1_101, 1_101)]
    assert [ev.tx_hash for ev in events] == [tx0.tx_hash, tx1.tx_hash, tx2.tx_hash]
    assert events[2].root == "0x" + root(2).hex() and events[2].block_number == tx2.block_number


def test_batches_must_be_contiguous(anchors: SessionAnchorBinding) -> None:
    anchors.anchor_sessions(root(0), 1, 100)
    anchors.anchor_sessions(root(1), 101, 200)

    err = reverted(anchors.anchor_sessions, root("gap"), 202, 300)
    assert (err.error, err.error_args) == ("SessionAnchorGap", {"firstSeq": 202, "expectedFirstSeq": 201})
    assert err.fix is not None and "201" in err.fix
    err = reverted(anchors.anchor_sessions, root("overlap"), 150, 250)
    assert (err.error, err.error_args) == ("SessionAnchorOverlap", {"firstSeq": 150, "expectedFirstSeq": 201})
    # Same start as batch 1, another end: an overlap, not the same batch.
    err = reverted(anchors.anchor_sessions, root(1), 101, 201)
    assert err.error == "SessionAnchorOverlap"
    err = reverted(anchors.anchor_sessions, root("reversed"), 201, 200)
    assert (err.error, err.error_args) == ("SessionAnchorInvalidRange", {"firstSeq": 201, "lastSeq": 200})
    assert reverted(anchors.anchor_sessions, b"\0" * 32, 201, 300).error == "SessionAnchorZeroRoot"
    err = reverted(anchors.anchor_sessions, root("zero"), 0, 100)
    assert (err.error, err.error_args) == ("SessionAnchorInvalidRange", {"firstSeq": 0, "lastSeq": 100})

    assert anchors.anchor_count() == 2 and anchors.last_anchored_seq() == 200
    assert anchors.anchor_sessions(root(2), 201, 300)[0] == 2


def test_the_first_batch_starts_at_one(anchors: SessionAnchorBinding) -> None:
    err = reverted(anchors.anchor_sessions, root("late"), 2, 10)
    assert (err.error, err.error_args) == ("SessionAnchorGap", {"firstSeq": 2, "expectedFirstSeq": 1})
    err = reverted(anchors.anchor_sessions, root("zero"), 0, 10)
    assert (err.error, err.error_args) == ("SessionAnchorInvalidRange", {"firstSeq": 0, "lastSeq": 10})
    assert anchors.anchor_count() == 0


def test_sending_a_batch_again_says_it_is_anchored(anchors: SessionAnchorBinding) -> None:
    """Exactly once: the same batch again reverts with an error a worker reads as "done"; the same
    sessions under another root is a disagreement, not "done"."""
    anchors.anchor_sessions(root(0), 1, 100)
    anchors.anchor_sessions(root(1), 101, 200)
    for index, (first, last) in enumerate(((1, 100), (101, 200))):
        err = reverted(anchors.anchor_sessions, root(index), first, last)
        assert (err.error, err.error_args) == ("SessionAnchorAlreadyAnchored", {"batchIndex": index})
        assert already_anchored(err) == index

    err = reverted(anchors.anchor_sessions, root("other"), 101, 200)
    assert (err.error, err.error_args) == ("SessionAnchorRootMismatch", {"batchIndex": 1, "anchoredRoot": root(1)})
    assert already_anchored(err) is None
    assert anchors.anchor_count() == 2


def test_a_worker_signs_first_and_recognises_its_batch(electra: Electra, anchors: SessionAnchorBinding) -> None:
    """What an exactly-once worker does: sign, record, send; after a crash, look the batch up."""
    w3 = electra.client.w3
    assert anchors.anchored(root(0), 1, 50) is None
    signed = anchors.sign_anchor(root(0), 1, 50)
    assert signed.nonce == w3.eth.get_transaction_count(OPERATOR.address, "pending")
    assert anchors.anchor_count() == 0, "signing sends nothing"
    tx_hash = w3.eth.send_raw_transaction(HexBytes(signed.raw))
    assert "0x" + bytes(tx_hash).hex() == signed.tx_hash
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    assert bytes(w3.eth.get_transaction(tx_hash)["input"]) == anchors.anchor_calldata(root(0), 1, 50)
    event = anchors.anchored_in(receipt)
    assert (event.index, event.first_seq, event.last_seq, event.tx_hash) == (0, 1, 50, signed.tx_hash)

    found = anchors.anchored(root(0), 1, 50)
    assert found is not None and found == anchors.anchor(0)
    assert anchors.anchored(root(1), 51, 60) is None
    with pytest.raises(InvalidInput, match="overlap batch 0"):
        anchors.anchored(root("other"), 1, 50)
    # Signing the same batch again is refused before anything is signed.
    err = reverted(anchors.sign_anchor, root(0), 1, 50)
    assert already_anchored(err) == 0
    with pytest.raises(InvalidInput, match="anchored no batch"):
        anchors.anchored_in(electra.client.transact(anchors.contract.functions.pause()))


def test_inputs_are_checked_before_sending(anchors: SessionAnchorBinding) -> None:
    with pytest.raises(InvalidInput, match="32 bytes"):
        anchors.anchor_sessions(b"\1" * 31, 1, 2)
    with pytest.raises(InvalidInput, match="uint64"):
        anchors.anchor_sessions(root(0), 1, 2**64)
    with pytest.raises(InvalidInput, match="not a governed"):
        anchors.governance_call("anchorSessions", root(0), 1, 2)
    assert anchors.anchor_count() == 0


def test_a_batch_of_a_thousand_costs_at_most_100_gas_per_session(anchors: SessionAnchorBinding) -> None:
    """The goal of issue 5 (bench/anchor_gas.py measures it with baselines); the first batch costs
    what later ones do."""
    first = anchors.anchor_sessions(root(0), 1, 1_000)[1].gas_used
    second = anchors.anchor_sessions(root(1), 1_001, 2_000)[1].gas_used
    assert second <= 100 * 1_000
    assert abs(first - second) < 200, (first, second)


# ---------------------------------------------------------------- roles and pause


def test_only_anchorers_anchor(electra: Electra, anchors: SessionAnchorBinding) -> None:
    err = reverted(anchors.anchor_sessions, root(0), 1, 10, sender=STRANGER)
    assert (err.error, err.error_args) == ("SessionAnchorUnauthorizedAnchorer", {"account": STRANGER.address})
    assert err.fix is not None and "setAnchorer" in err.fix
    f = anchors.contract.functions
    err = reverted(electra.client.transact, f.setAnchorer(STRANGER.address, True), sender=OPERATOR)
    assert (err.error, err.error_args) == ("OwnableUnauthorizedAccount", {"account": OPERATOR.address})

    as_timelock(electra, f.setAnchorer(STRANGER.address, True))
    assert anchors.is_anchorer(STRANGER.address)
    assert anchors.anchor_sessions(root(0), 1, 10, sender=STRANGER)[0] == 0
    as_timelock(electra, f.setAnchorer(OPERATOR.address, False))
    err = reverted(anchors.anchor_sessions, root(1), 11, 20)
    assert (err.error, err.error_args) == ("SessionAnchorUnauthorizedAnchorer", {"account": OPERATOR.address})
    with pytest.raises(ContractReverted) as exc:
        as_timelock(electra, f.setAnchorer(ZERO_ADDRESS, True))
    assert exc.value.error == "SessionAnchorZeroAddress"

    logs = anchors.contract.events.AnchorerChanged().get_logs(from_block=electra.deployment.block_number)
    assert [(lg["args"]["account"], lg["args"]["allowed"]) for lg in logs] == [
        (OPERATOR.address, True),
        (STRANGER.address, True),
        (OPERATOR.address, False),
    ]


def test_the_guardian_pauses_and_governance_unpauses(electra: Electra, anchors: SessionAnchorBinding) -> None:
    records = [record(seq) for seq in range(1, 6)]
    tree = oz_tree(records)
    anchors.anchor_sessions(tree["root"], 1, 5)

    err = reverted(anchors.pause, sender=STRANGER)
    assert (err.error, err.error_args) == ("SessionAnchorUnauthorizedGuardian", {"account": STRANGER.address})
    anchors.pause()
    assert anchors.paused()
    err = reverted(anchors.anchor_sessions, root(1), 6, 10)
    assert err.error == "EnforcedPause"
    # Auditors keep verifying while anchoring is stopped.
    leaf = tree["leaves"][2]
    assert anchors.verify(0, leaf["hash"], leaf["proof"]) and anchors.anchor_of(3) == 0

    f = anchors.contract.functions
    assert reverted(electra.client.transact, f.unpause()).error == "OwnableUnauthorizedAccount"
    as_timelock(electra, f.unpause())
    assert anchors.anchor_sessions(root(1), 6, 10)[0] == 1

    as_timelock(electra, f.setGuardian(STRANGER.address))
    assert anchors.guardian() == STRANGER.address
    assert reverted(anchors.pause, sender=OPERATOR).error == "SessionAnchorUnauthorizedGuardian"
    anchors.pause(sender=STRANGER)
    as_timelock(electra, f.unpause())
    as_timelock(electra, f.pause())  # governance may pause too
    assert anchors.paused()


def test_governance_calls_target_the_anchor(anchors: SessionAnchorBinding) -> None:
    target, data = anchors.governance_call("setAnchorer", STRANGER.address, True)
    assert target == anchors.address
    fn, args = anchors.contract.decode_function_input(data)
    assert fn.fn_name == "setAnchorer" and args == {"account": STRANGER.address, "allowed": True}


# ---------------------------------------------------------------- lookup and proofs


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sizes=st.lists(st.integers(1, 50), min_size=1, max_size=25), data=st.data())
def test_anchor_of_finds_the_batch_of_every_sequence_number(
    electra: Electra, sizes: list[int], data: st.DataObject
) -> None:
    client, anchors = electra.client, electra.anchors
    snap = client.rpc("evm_snapshot")
    try:
        first = 1
        batches = []
        for i, size in enumerate(sizes):
            anchors.anchor_sessions(root(i), first, first + size - 1)
            batches.append((first, first + size - 1))
            first += size
        last = first - 1
        assert anchors.last_anchored_seq() == last and anchors.anchor_count() == len(sizes)

        edges = {seq for batch in batches for seq in batch}
        picked = data.draw(st.lists(st.integers(1, last), max_size=10), label="inner sequence numbers")
        for seq in sorted(edges | set(picked)):
            expected = next(i for i, (lo, hi) in enumerate(batches) if lo <= seq <= hi)
            assert anchors.anchor_of(seq) == expected, seq
        for seq in (0, last + 1, last + data.draw(st.integers(2, 2**64), label="beyond")):
            err = reverted(anchors.anchor_of, seq)
            assert (err.error, err.error_args) == ("SessionAnchorNotAnchored", {"seq": seq})
    finally:
        assert client.rpc("evm_revert", snap) is True


def test_nothing_is_anchored_before_the_first_batch(anchors: SessionAnchorBinding) -> None:
    err = reverted(anchors.anchor_of, 1)
    assert (err.error, err.error_args) == ("SessionAnchorNotAnchored", {"seq": 1})
    err = reverted(anchors.anchor, 0)
    assert (err.error, err.error_args) == ("SessionAnchorUnknownBatch", {"batchIndex": 0})


def test_the_contract_verifies_proofs_from_openzeppelins_merkle_tree(anchors: SessionAnchorBinding) -> None:
    """Three batches of different shapes (7, 1 and 16 sessions); every proof the reference library
    makes passes on-chain, and a proof fails for another batch, an altered leaf or an altered proof."""
    shapes = [(1, 7), (8, 8), (9, 24)]
    trees = []
    for first, last in shapes:
        records = [record(seq) for seq in range(first, last + 1)]
        tree = oz_tree(records)
        anchors.anchor_sessions(tree["root"], first, last)
        trees.append((records, tree))

    assert anchors.anchor(1).root == trees[1][1]["root"] == trees[1][1]["leaves"][0]["hash"]  # one leaf: root
    for index, (records, tree) in enumerate(trees):
        for r, leaf in zip(records, tree["leaves"], strict=True):
            assert anchors.verify(index, leaf["hash"], leaf["proof"]), (index, r.session_id)
            assert anchors.verify_session(r.session_id, leaf["hash"], leaf["proof"])

    records, tree = trees[2]
    leaf = tree["leaves"][5]
    # The right leaf and proof, checked against another batch's root.
    assert not anchors.verify(0, leaf["hash"], leaf["proof"])
    assert not anchors.verify_session(3, leaf["hash"], leaf["proof"])
    # A session whose amount was changed after anchoring.
    altered = replace(records[5], amount=records[5].amount + 1).leaf()
    assert not anchors.verify(2, altered, leaf["proof"])
    # A leaf of batch 0 with its own proof, claimed for batch 2.
    other = trees[0][1]["leaves"][3]
    assert not anchors.verify(2, other["hash"], other["proof"])
    # A tampered proof node.
    proof = [bytes(HexBytes(p)) for p in leaf["proof"]]
    proof[0] = bytes([proof[0][0] ^ 1]) + proof[0][1:]
    assert not anchors.verify(2, leaf["hash"], proof)
    # The values' single hash is not a leaf (the double hash keeps inner nodes and leaves apart).
    single = keccak(encode(list(LEAF_TYPES), records[5].values()))
    assert not anchors.verify(2, single, leaf["proof"])

    err = reverted(anchors.verify, 3, leaf["hash"], leaf["proof"])
    assert (err.error, err.error_args) == ("SessionAnchorUnknownBatch", {"batchIndex": 3})
    err = reverted(anchors.verify_session, 25, leaf["hash"], leaf["proof"])
    assert (err.error, err.error_args) == ("SessionAnchorNotAnchored", {"seq": 25})
