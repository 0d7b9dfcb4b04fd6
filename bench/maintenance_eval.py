"""Maintenance risk model: precision and recall at the ticket threshold, on simulated chargers with
degradation injected before their failures (electra.intelligence.history). Writes its section of
docs/intelligence.md with --write.

    uv run python bench/maintenance_eval.py --write docs/intelligence.md

Three fleets of 12 sites x 6 chargers, 10 weeks each, from different seeds: the model is the
platform's default (trained on seed 101), the threshold is the best F1 on seed 202 and the figures
are on seed 303, which neither saw. A sample is one charger at one midnight (chargers that are
down are not scored); it is positive if the charger fails within the next 3 days.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import write_section
from electra.intelligence.history import simulate_fleet
from electra.intelligence.maintenance import (
    DEFAULT_TRAINING_SEED,
    HORIZON_DAYS,
    RISK_THRESHOLD_PERMILLE,
    best_threshold,
    confusion,
    default_risk_model,
    failures_caught,
    samples,
)

BEGIN, END = "<!-- maintenance-eval:begin -->", "<!-- maintenance-eval:end -->"
VALIDATION_SEED, TEST_SEED = 202, 303
SWEEP = (250, 500, 750, 900)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", type=Path, help="rewrite this file's maintenance-eval section")
    args = ap.parse_args()
    started = time.perf_counter()
    model = default_risk_model()
    validation = simulate_fleet(VALIDATION_SEED, sites=12, chargers_per_site=6, weeks=10, prefix="VAL")
    test = simulate_fleet(TEST_SEED, sites=12, chargers_per_site=6, weeks=10, prefix="TEST")
    val, tst = samples(validation), samples(test)
    chosen = best_threshold(model.risk_permille(val.x), val.y)
    if chosen.threshold_permille != RISK_THRESHOLD_PERMILLE:
        print(
            f"warning: the validation fleet's best threshold is {chosen.threshold_permille}, "
            f"the code's RISK_THRESHOLD_PERMILLE is {RISK_THRESHOLD_PERMILLE}",
            flush=True,
        )
    risk = model.risk_permille(tst.x)
    at = confusion(risk, tst.y, RISK_THRESHOLD_PERMILLE)
    failures, caught, leads = failures_caught(test, tst, risk, RISK_THRESHOLD_PERMILLE)
    sudden = [c for c in test.chargers if c.failure is not None and c.failure.sudden]
    lines = [
        BEGIN,
        "",
        f"Model trained on seed {DEFAULT_TRAINING_SEED}; threshold chosen on seed {VALIDATION_SEED} (best F1: "
        f"{chosen.threshold_permille} permille, precision {chosen.precision:.2f}, recall {chosen.recall:.2f}); "
        f"scored on seed {TEST_SEED}: {len(tst.y):,} charger-days, {int(tst.y.sum())} of them within "
        f"{HORIZON_DAYS} days before a failure, {sum(c.failure is not None for c in test.chargers)} of "
        f"{len(test.chargers)} chargers failing ({len(sudden)} of those with hardly any warning).",
        "",
        f"At the threshold, **{RISK_THRESHOLD_PERMILLE} permille**: precision **{at.precision:.3f}**, "
        f"recall **{at.recall:.3f}** (F1 {at.f1:.3f}).",
        "",
        "| | fails within 3 days | does not |",
        "| --- | ---: | ---: |",
        f"| ticket (risk >= {RISK_THRESHOLD_PERMILLE}) | {at.tp} (TP) | {at.fp} (FP) |",
        f"| no ticket | {at.fn} (FN) | {at.tn} (TN) |",
        "",
        "| threshold (permille) | precision | recall | TP | FP | FN | TN |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for t in sorted({*SWEEP, RISK_THRESHOLD_PERMILLE}):
        c = confusion(risk, tst.y, t)
        mark = " (chosen)" if t == RISK_THRESHOLD_PERMILLE else ""
        lines.append(f"| {t}{mark} | {c.precision:.3f} | {c.recall:.3f} | {c.tp} | {c.fp} | {c.fn} | {c.tn} |")
    lead = f"median {statistics.median(leads):.1f} days before the failure" if leads else "none"
    lines += [
        "",
        f"Per failure: {caught} of {failures} failures in the scored period had a ticket-level score in the "
        f"{HORIZON_DAYS} days before them (first alarm {lead}). Run time {time.perf_counter() - started:.0f} s.",
        "",
        END,
    ]
    block = "\n".join(lines)
    print(block)
    if args.write:
        write_section(args.write, BEGIN, END, block)
        print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
