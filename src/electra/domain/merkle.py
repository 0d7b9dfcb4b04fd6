"""Merkle trees of session leaves, exactly as OpenZeppelin's ``StandardMerkleTree`` builds them.

Same root, same proofs as ``StandardMerkleTree.of(values, types)`` of ``@openzeppelin/merkle-tree``
1.0.x (default ``sortLeaves: true``) for the same values, and proofs check with ``MerkleProof.sol``
(``tests/test_merkle.py`` compares every root and proof against the npm package):

- a leaf is 32 bytes, ``keccak256(keccak256(abi.encode(values)))`` (:meth:`SessionRecord.leaf`);
- the leaves are sorted by their value as 256-bit big-endian numbers (a stable sort);
- the tree is one array of ``2n - 1`` nodes: the sorted leaves at the end in reverse order
  (``tree[2n - 2 - i] = sorted_leaves[i]``), then ``tree[i] = hash_pair(tree[2i + 1], tree[2i + 2])``
  for ``i`` from ``n - 2`` down to 0; the root is ``tree[0]``;
- ``hash_pair(a, b) = keccak256(min(a, b) || max(a, b))`` (bytes compared as unsigned numbers);
- a proof is the siblings from the leaf up to the root, leaf side first; verification folds them
  with ``hash_pair`` (``MerkleProof.processProof``) and compares the result with the root.

Written here rather than taken from PyPI: the candidates (``murky-tree`` 1.2, a fork of stakewise's
``multiproof`` 0.1, itself last released in 2024; ``merkle-zeppelin`` 1.0) are single-maintainer
packages with few users, build from values rather than from leaves we already hash, and hash
through ``eth_hash.auto``, about 4x slower per node than :mod:`electra.domain.keccak`. The tree is
some forty lines; its correctness is pinned by the comparison with the npm package. Multiproofs are
not implemented.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from electra.domain.keccak import keccak256
from electra.errors import InvalidInput

NODE_BYTES = 32


def hash_pair(a: bytes, b: bytes) -> bytes:
    """The parent of two nodes: keccak256 of the pair in ascending order."""
    return keccak256(a + b if a < b else b + a)


def process_proof(leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root a proof leads to from a leaf (``MerkleProof.processProof``)."""
    h = keccak256
    node = leaf
    for sibling in proof:
        node = h(node + sibling if node < sibling else sibling + node)
    return node


def verify(root: bytes, leaf: bytes, proof: Sequence[bytes]) -> bool:
    """Whether ``proof`` shows ``leaf`` is in the tree with ``root``. Malformed input is False."""
    if len(leaf) != NODE_BYTES or len(root) != NODE_BYTES or any(len(p) != NODE_BYTES for p in proof):
        return False
    return process_proof(leaf, proof) == root


@dataclass(frozen=True)
class MerkleTree:
    """``nodes`` is OpenZeppelin's array (root first); ``positions[i]`` is where the i-th leaf given
    to :meth:`of` sits in it."""

    nodes: tuple[bytes, ...]
    positions: tuple[int, ...]

    @classmethod
    def of(cls, leaves: Sequence[bytes], sort_leaves: bool = True) -> MerkleTree:
        n = len(leaves)
        if n == 0:
            raise InvalidInput("a Merkle tree needs at least one leaf")
        for leaf in leaves:
            if len(leaf) != NODE_BYTES:
                raise InvalidInput(f"a Merkle leaf is {NODE_BYTES} bytes, not {len(leaf)}")
        order = sorted(range(n), key=leaves.__getitem__) if sort_leaves else range(n)
        size = 2 * n - 1
        nodes: list[bytes] = [b""] * size
        positions = [0] * n
        for rank, i in enumerate(order):
            positions[i] = size - 1 - rank
            nodes[size - 1 - rank] = leaves[i]
        h = keccak256
        for i in range(n - 2, -1, -1):
            a, b = nodes[2 * i + 1], nodes[2 * i + 2]
            nodes[i] = h(a + b if a < b else b + a)
        return cls(tuple(nodes), tuple(positions))

    @property
    def root(self) -> bytes:
        return self.nodes[0]

    def __len__(self) -> int:
        return len(self.positions)

    def leaf(self, index: int) -> bytes:
        return self.nodes[self.positions[self._check(index)]]

    @cached_property
    def _by_leaf(self) -> dict[bytes, int]:
        return {self.nodes[p]: i for i, p in enumerate(self.positions)}

    def index_of(self, leaf: bytes) -> int:
        """The index (in the order given to :meth:`of`) of a leaf; the last one if it repeats."""
        try:
            return self._by_leaf[leaf]
        except KeyError:
            raise InvalidInput(f"leaf 0x{leaf.hex()} is not in this tree") from None

    def proof(self, index: int) -> list[bytes]:
        """The proof of the ``index``-th leaf given to :meth:`of`: siblings from the leaf up."""
        node = self.positions[self._check(index)]
        nodes = self.nodes
        out: list[bytes] = []
        while node > 0:
            out.append(nodes[node + 1 if node % 2 else node - 1])
            node = (node - 1) // 2
        return out

    def proof_of(self, leaf: bytes) -> list[bytes]:
        return self.proof(self.index_of(leaf))

    def _check(self, index: int) -> int:
        if not 0 <= index < len(self.positions):
            raise InvalidInput(f"leaf index {index} is outside a tree of {len(self.positions)} leaves")
        return index


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    return MerkleTree.of(leaves).root
