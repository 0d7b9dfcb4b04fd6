// The reference for electra.domain.merkle: @openzeppelin/merkle-tree's StandardMerkleTree, driven
// over stdin/stdout, one JSON request per line, one JSON answer per line.
//
//   {"op": "tree", "types": [...], "values": [[...], ...], "check": [{"root", "value", "proof"}, ...]}
//     -> {"root", "tree", "proofs": [proof of values[i], ...], "verified": [bool for each check]}
//   {"op": "time", "types": [...], "values": [[...], ...], "samples": K}
//     -> {"of_ms", "make_tree_ms", "proof_us": [...], "verify_us": [...]}   (timings of the npm package)
//
// Big integers travel as decimal strings, as StandardMerkleTree's own dumps carry them.
'use strict';

const readline = require('node:readline');
const { StandardMerkleTree } = require('@openzeppelin/merkle-tree');
const core = require('@openzeppelin/merkle-tree/dist/core');

function tree(req) {
  const t = StandardMerkleTree.of(req.values, req.types);
  const proofs = req.values.map((_, i) => t.getProof(i));
  const verified = (req.check || []).map(c => {
    try {
      return StandardMerkleTree.verify(c.root, req.types, c.value, c.proof);
    } catch (e) {
      return false;
    }
  });
  return { root: t.root, tree: t.dump().tree, proofs, verified };
}

function time(req) {
  let start = process.hrtime.bigint();
  const t = StandardMerkleTree.of(req.values, req.types);
  const ofMs = Number(process.hrtime.bigint() - start) / 1e6;
  const leaves = t.dump().tree.slice(req.values.length - 1).reverse();
  start = process.hrtime.bigint();
  core.makeMerkleTree(leaves);
  const makeTreeMs = Number(process.hrtime.bigint() - start) / 1e6;
  const proofUs = [];
  const verifyUs = [];
  const step = Math.max(1, Math.floor(req.values.length / req.samples));
  for (let i = 0; i < req.values.length; i += step) {
    start = process.hrtime.bigint();
    const proof = t.getProof(i);
    proofUs.push(Number(process.hrtime.bigint() - start) / 1e3);
    start = process.hrtime.bigint();
    const ok = StandardMerkleTree.verify(t.root, req.types, req.values[i], proof);
    verifyUs.push(Number(process.hrtime.bigint() - start) / 1e3);
    if (!ok) throw new Error(`proof ${i} does not verify`);
  }
  return { of_ms: ofMs, make_tree_ms: makeTreeMs, proof_us: proofUs, verify_us: verifyUs };
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on('line', line => {
  if (!line.trim()) return;
  let answer;
  try {
    const req = JSON.parse(line);
    answer = req.op === 'time' ? time(req) : tree(req);
  } catch (e) {
    answer = { error: String(e && e.stack ? e.stack : e) };
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
});
