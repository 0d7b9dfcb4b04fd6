"""Gas per anchored session on SessionAnchor, against storing every session's hash on its own.

    make anchor-gas                          # prints the table, rewrites its section of docs/benchmarks.md
    uv run python bench/anchor_gas.py        # prints only

On a fresh anvil dev chain with Electra deployed, the operator anchors three consecutive batches of
the session log, of 100, 1,000 and 10,000 sessions, one ``anchorSessions`` transaction each. The
baseline, in the same run, is ``PerSessionHashBaseline.store``: one transaction per session that
stores the session's hash under its sequence number and emits an event (the mean over 50 sessions).
Gas is read from receipts and includes the 21,000 every transaction pays.

Other benchmarks include these rows with :func:`measure_anchor_gas` (given an ``Electra`` on a chain
of their own, or none to start a fresh dev chain) and :func:`table`.
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from eth_utils.crypto import keccak

from benchlib import fresh_electra, write_section
from electra.chain.bindings import Electra
from electra.domain.merkle import merkle_root
from electra.domain.record import SessionRecord

BATCH_SIZES = (100, 1_000, 10_000)
BASELINE_SESSIONS = 50
GOAL_GAS = 100
GOAL_BATCH = 1_000
BLOCK_GAS = 30_000_000
ASSET = "0x5FbDB2315678afecb367f032d93F642f64180aa3"  # any address: the leaves are hashed, not checked
BEGIN, END = "<!-- anchor:begin -->", "<!-- anchor:end -->"
METHOD = """\
A fresh anvil dev chain with Electra deployed; the operator (SessionAnchor's anchorer) anchors three
consecutive batches of the session log, of 100, 1,000 and 10,000 sessions, with one `anchorSessions`
transaction each. Each root is the StandardMerkleTree root (`electra.domain.merkle`) over generated
session records of that batch. A batch's transaction carries only its root and its first and last
sequence numbers, so its gas does not depend on the batch's size. Every anchoring
writes two new storage slots (the root; first and last sequence number and time packed in one) and
rewrites one (the batch count and last sequence number). The baseline, on the same chain, is
`PerSessionHashBaseline.store` (contracts/bench/): one transaction per session that stores the
session's hash under its sequence number and emits an event, the mean over 50 sessions. Gas is from
receipts and includes the 21,000 every transaction pays; sessions per block is 30,000,000 / gas per
session."""


@dataclass(frozen=True)
class AnchorGasRow:
    what: str
    sessions_per_tx: int
    gas_per_tx: int  # one transaction's gas (the baseline: the mean over its transactions)

    @property
    def gas_per_session(self) -> float:
        return self.gas_per_tx / self.sessions_per_tx

    @property
    def sessions_per_block(self) -> int:
        return int(BLOCK_GAS // self.gas_per_session)


def measure_anchor_gas(
    e: Electra | None = None,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    baseline_sessions: int = BASELINE_SESSIONS,
) -> list[AnchorGasRow]:
    """One row per batch size, then the per-session baseline. Without ``e``, on a fresh dev chain."""
    if e is not None:
        return _measure(e, batch_sizes, baseline_sessions)
    with fresh_electra() as fresh:
        return _measure(fresh, batch_sizes, baseline_sessions)


def _record(seq: int) -> SessionRecord:
    """A plausible 22.5 kWh session for log entry ``seq`` (its session id is the sequence number)."""
    started_ms = 1_790_000_000_000 + seq * 600_000
    return SessionRecord(
        seq, 1 + seq % 50, 1 + seq % 400, started_ms, started_ms + 2_700_000, 0, 22_500, 22_500, ASSET, 7_650_000
    )


def _measure(e: Electra, batch_sizes: Sequence[int], baseline_sessions: int) -> list[AnchorGasRow]:
    anchors = e.anchors
    rows = []
    first = anchors.next_seq()
    for size in batch_sizes:
        last = first + size - 1
        root = merkle_root([_record(seq).leaf() for seq in range(first, last + 1)])
        _, tx = anchors.anchor_sessions(root, first, last)
        rows.append(AnchorGasRow(f"SessionAnchor.anchorSessions, batch of {size:,}", size, tx.gas_used))
        first = last + 1

    baseline_addr, _ = e.client.deploy("PerSessionHashBaseline")
    baseline = e.client.contract("PerSessionHashBaseline", baseline_addr)
    gas = [
        int(e.client.transact(baseline.functions.store(seq, keccak(text=f"bench-session-{seq}")))["gasUsed"])
        for seq in range(1, baseline_sessions + 1)
    ]
    rows.append(
        AnchorGasRow(
            f"baseline: one tx per session stores its hash (mean of {baseline_sessions})",
            1,
            round(statistics.mean(gas)),
        )
    )
    return rows


def table(rows: Sequence[AnchorGasRow]) -> str:
    out = [
        "| what | sessions per tx | gas per tx | gas per session | sessions per 30M-gas block |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        per_session = f"{r.gas_per_session:,.1f}" if r.gas_per_session < 100 else f"{r.gas_per_session:,.0f}"
        out.append(
            f"| {r.what} | {r.sessions_per_tx:,} | {r.gas_per_tx:,} | {per_session} | {r.sessions_per_block:,} |"
        )
    return "\n".join(out)


def verdict(rows: Sequence[AnchorGasRow]) -> str:
    goal = next(r for r in rows if r.sessions_per_tx == GOAL_BATCH)
    baseline = rows[-1]
    status = "met" if goal.gas_per_session <= GOAL_GAS else "missed"
    return (
        f"Goal: at most {GOAL_GAS} gas per session at a batch of {GOAL_BATCH:,}: {status}, "
        f"{goal.gas_per_session:,.1f} gas per session. Storing each session's hash in a transaction of its "
        f"own costs {baseline.gas_per_session:,.0f} gas per session, "
        f"{baseline.gas_per_session / goal.gas_per_session:,.0f}x as much."
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--write", type=Path, help="rewrite the anchoring section of this markdown file")
    args = ap.parse_args()
    with fresh_electra() as e:
        client_version = e.client.w3.client_version
        rows = measure_anchor_gas(e)
    md = table(rows)
    summary = verdict(rows)
    print(md)
    print()
    print(summary)
    if args.write:
        command = "python bench/anchor_gas.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        block = "\n".join(
            [
                BEGIN,
                "## Anchoring gas",
                "",
                f"Command: `{command.strip()}` (or `make anchor-gas`)  ",
                f"Run: {datetime.date.today().isoformat()}, {client_version}.",
                "",
                METHOD,
                "",
                md,
                "",
                summary,
                END,
            ]
        )
        write_section(args.write, BEGIN, END, block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
