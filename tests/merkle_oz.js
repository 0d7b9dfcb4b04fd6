#!/usr/bin/env node
// The reference Merkle tree for the SessionAnchor tests: OpenZeppelin's own
// @openzeppelin/merkle-tree (StandardMerkleTree), so the tests check Electra's on-chain
// verification against what outsiders use, not against our own tree code.
//
// stdin:  {"types": ["uint256", ...], "values": [[...], ...]}  (integers as decimal strings)
// stdout: {"root": "0x..", "leaves": [{"hash": "0x..", "proof": ["0x..", ...]}, ...]}, one entry
//         per input value, in input order.
"use strict";

const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const { types, values } = JSON.parse(input);
  const tree = StandardMerkleTree.of(values, types);
  const leaves = values.map((value, i) => ({ hash: tree.leafHash(value), proof: tree.getProof(i) }));
  process.stdout.write(JSON.stringify({ root: tree.root, leaves }) + "\n");
});
