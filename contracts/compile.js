#!/usr/bin/env node
// Compiles Electra's contracts with solcjs (the pinned npm `solc`) and writes one JSON artifact
// per contract into the Python package, so that a user with only a remote RPC needs no Node.
// The output is deterministic: recompiling the same sources gives byte-identical files, which
// tests/test_artifacts.py checks.
//
// usage: node contracts/compile.js [OUT_DIR]
"use strict";

const fs = require("fs");
const path = require("path");
const solc = require("solc");

const ROOT = path.resolve(__dirname, "..");
const OUT = path.resolve(process.argv[2] || path.join(ROOT, "src/electra/chain/artifacts"));
const NODE_MODULES = path.join(ROOT, "node_modules");

// Deployable contracts, as paths under contracts/ without ".sol"; everything else is a library or
// an import. The artifact is named after the file. test/ holds contracts only tests deploy, bench/
// the baselines that bench/ measures against.
const CONTRACTS = [
  "ElectraToken",
  "ElectraTimelock",
  "ElectraGovernor",
  "StationRegistry",
  "VehicleLedger",
  "ElectraUSD",
  "PaymentHub",
  "SessionAnchor",
  "StakingManager",
  "RewardsDistributor",
  "test/TestSmartWallet",
  "test/TestCommissionHook",
  "test/ReentrantToken",
  "test/ReentrantWallet",
  "bench/DirectChargeBaseline",
  "bench/FlatChargeBaseline",
  "bench/PerSessionHashBaseline",
];

const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: "cancun",
  metadata: { bytecodeHash: "ipfs" },
  outputSelection: {
    "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "evm.methodIdentifiers"] },
  },
};

function findImport(importPath) {
  for (const base of [NODE_MODULES, ROOT]) {
    const full = path.join(base, importPath);
    if (fs.existsSync(full)) return { contents: fs.readFileSync(full, "utf8") };
  }
  return { error: `import not found: ${importPath}` };
}

function main() {
  const sources = {};
  for (const entry of CONTRACTS) {
    const rel = `contracts/${entry}.sol`;
    sources[rel] = { content: fs.readFileSync(path.join(ROOT, rel), "utf8") };
  }
  const input = { language: "Solidity", sources, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImport }));

  const errors = (output.errors || []).filter((e) => e.severity === "error");
  // Only our own sources are ours to fix; warnings from OpenZeppelin are counted, not printed.
  const ours = (e) => !e.sourceLocation || e.sourceLocation.file.startsWith("contracts/");
  for (const e of (output.errors || []).filter(ours)) process.stderr.write(e.formattedMessage + "\n");
  if (errors.length) process.exit(1);

  fs.mkdirSync(OUT, { recursive: true });
  const index = { compiler: solc.version(), settings: { ...SETTINGS, outputSelection: undefined }, contracts: {} };
  for (const entry of CONTRACTS) {
    const name = path.posix.basename(entry);
    const c = output.contracts[`contracts/${entry}.sol`][name];
    const artifact = {
      contractName: name,
      sourceName: `contracts/${entry}.sol`,
      compiler: solc.version(),
      abi: c.abi,
      bytecode: "0x" + c.evm.bytecode.object,
      deployedBytecode: "0x" + c.evm.deployedBytecode.object,
      methodIdentifiers: c.evm.methodIdentifiers,
    };
    const size = c.evm.deployedBytecode.object.length / 2;
    if (size > 24576) {
      process.stderr.write(`${name}: runtime code is ${size} bytes, over the 24,576-byte limit (EIP-170)\n`);
      process.exit(1);
    }
    fs.writeFileSync(path.join(OUT, `${name}.json`), JSON.stringify(artifact, null, 2) + "\n");
    index.contracts[name] = { runtimeBytes: size };
    process.stdout.write(`${name.padEnd(22)} ${String(size).padStart(6)} bytes runtime\n`);
  }
  fs.writeFileSync(path.join(OUT, "index.json"), JSON.stringify(index, null, 2) + "\n");
}

main();
