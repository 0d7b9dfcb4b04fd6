"""electra.domain.merkle against the real @openzeppelin/merkle-tree (tests/merkle_oz.js, one node
process for the module): same root, same tree array, same proof for every leaf, and each side
accepts the other's proofs; tampered proofs fail on both sides."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from electra.domain.keccak import _public, keccak256
from electra.domain.merkle import MerkleTree, hash_pair, merkle_root, process_proof, verify
from electra.domain.record import LEAF_TYPES, SessionRecord
from electra.errors import InvalidInput

ROOT = Path(__file__).resolve().parents[1]
U64 = st.integers(0, 2**64 - 1)
U256 = st.integers(0, 2**256 - 1)


class OpenZeppelin:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            ["node", str(ROOT / "tests" / "merkle_oz.js")],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer: dict[str, Any] = json.loads(self.proc.stdout.readline())
        assert "error" not in answer, answer.get("error")
        return answer

    def tree(self, records: list[SessionRecord], check: list[tuple[bytes, SessionRecord, list[bytes]]]) -> Any:
        return self.ask(
            {
                "op": "tree",
                "types": list(LEAF_TYPES),
                "values": [_json_values(r) for r in records],
                "check": [
                    {"root": _hex(root), "value": _json_values(r), "proof": [_hex(p) for p in proof]}
                    for root, r, proof in check
                ],
            }
        )

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        assert self.proc.wait(timeout=10) == 0
        self.proc.stdout.close()


@pytest.fixture(scope="module")
def oz() -> Iterator[OpenZeppelin]:
    ref = OpenZeppelin()
    yield ref
    ref.close()


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def _json_values(r: SessionRecord) -> list[str]:
    return [str(v) for v in r.values()]


records_st = st.builds(
    SessionRecord,
    session_id=U256,
    charger_token_id=U256,
    vehicle_id=U256,
    started_at_ms=U64,
    stopped_at_ms=U64,
    meter_start_wh=U64,
    meter_stop_wh=U64,
    energy_wh=U64,
    asset=st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex()),
    amount=U256,
)


def _record(i: int, energy_wh: int = 1000) -> SessionRecord:
    return SessionRecord(
        i, 7, 3, 1_700_000_000_000 + i, 1_700_000_900_000 + i, 10, 10 + energy_wh, energy_wh, "0x" + "ab" * 20, 123 * i
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(records_st, min_size=1, max_size=300), st.data())
def test_root_tree_and_every_proof_match_openzeppelin(
    oz: OpenZeppelin, records: list[SessionRecord], data: Any
) -> None:
    if len(records) > 1 and data.draw(st.booleans(), label="repeat a record"):
        records.append(records[data.draw(st.integers(0, len(records) - 1), label="repeated")])
    leaves = [r.leaf() for r in records]
    tree = MerkleTree.of(leaves)
    ours = [tree.proof(i) for i in range(len(records))]
    ref = oz.tree(records, check=[(tree.root, r, p) for r, p in zip(records, ours, strict=True)])
    assert _hex(tree.root) == ref["root"]
    assert [_hex(n) for n in tree.nodes] == ref["tree"]
    assert [[_hex(p) for p in proof] for proof in ours] == ref["proofs"]
    assert ref["verified"] == [True] * len(records)  # the npm package accepts every proof of ours
    assert all(verify(tree.root, leaf, proof) for leaf, proof in zip(leaves, ours, strict=True))
    assert merkle_root(leaves) == tree.root


def test_tampering_fails_here_and_in_openzeppelin(oz: OpenZeppelin) -> None:
    records = [_record(i) for i in range(1, 12)]
    tree = MerkleTree.of([r.leaf() for r in records])
    other = MerkleTree.of([_record(i).leaf() for i in range(100, 111)])
    proof = tree.proof(4)
    edited = _record(5, energy_wh=1001)  # records[4] with one more Wh
    cases = [
        ("altered leaf", edited, proof),
        ("proof from another tree", records[4], other.proof(4)),
        ("proof of another index", records[4], tree.proof(5)),
        ("truncated proof", records[4], proof[:-1]),
        ("proof with an extra node", records[4], [*proof, tree.root]),
    ]
    for name, record, bad in cases:
        assert not verify(tree.root, record.leaf(), bad), name
    ref = oz.tree(records, check=[(tree.root, rec, bad) for _, rec, bad in cases])
    assert ref["verified"] == [False] * len(cases)
    assert verify(tree.root, records[4].leaf(), proof)  # the untouched one still holds
    assert not verify(other.root, records[4].leaf(), proof)  # and only under its own root


def test_malformed_input_is_false_or_a_clear_error() -> None:
    leaves = [_record(i).leaf() for i in range(1, 5)]
    tree = MerkleTree.of(leaves)
    assert not verify(tree.root, leaves[0][:31], tree.proof(0))
    assert not verify(tree.root[:31], leaves[0], tree.proof(0))
    assert not verify(tree.root, leaves[0], [p[:31] for p in tree.proof(0)])
    with pytest.raises(InvalidInput, match="at least one leaf"):
        MerkleTree.of([])
    with pytest.raises(InvalidInput, match="32 bytes"):
        MerkleTree.of([b"\x01" * 31])
    with pytest.raises(InvalidInput, match="outside a tree of 4"):
        tree.proof(4)
    with pytest.raises(InvalidInput, match="not in this tree"):
        tree.index_of(b"\x00" * 32)


def test_one_leaf_is_its_own_root_and_lookup_by_leaf() -> None:
    leaf = _record(1).leaf()
    tree = MerkleTree.of([leaf])
    assert tree.root == leaf and tree.proof(0) == [] and verify(leaf, leaf, [])
    leaves = [_record(i).leaf() for i in range(1, 9)]
    tree = MerkleTree.of(leaves)
    assert [tree.index_of(leaf) for leaf in leaves] == list(range(8))
    assert tree.proof_of(leaves[3]) == tree.proof(3) and tree.leaf(3) == leaves[3]
    assert process_proof(leaves[3], tree.proof(3)) == tree.root


def test_unsorted_tree_keeps_the_given_order() -> None:
    leaves = [_record(i).leaf() for i in range(1, 6)]
    tree = MerkleTree.of(leaves, sort_leaves=False)
    assert tree.nodes[-1] == leaves[0] and tree.nodes[4] == leaves[4]
    assert all(verify(tree.root, leaf, tree.proof(i)) for i, leaf in enumerate(leaves))
    assert hash_pair(leaves[0], leaves[1]) == hash_pair(leaves[1], leaves[0])


@given(st.binary(max_size=600))
def test_fast_keccak_is_keccak(data: bytes) -> None:
    assert keccak256(data) == _public(data)


def test_fast_keccak_known_digests_and_threads() -> None:
    assert keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    from concurrent.futures import ThreadPoolExecutor

    inputs = [os.urandom(n % 200) for n in range(4000)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(keccak256, inputs))
    assert got == [_public(x) for x in inputs]
