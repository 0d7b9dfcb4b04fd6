"""Utilization forecast vs the seasonal naive baseline, by rolling-origin backtest on simulated
fleets (electra.intelligence.history). Writes its section of docs/intelligence.md with --write.

    uv run python bench/forecast_eval.py --write docs/intelligence.md

Each fleet: 8 sites (commuter, retail, residential, highway, twice) x 5 chargers, 10 weeks of
sessions. A day-ahead forecast at every midnight of the last 28 days, each from a model trained
only on what came before its origin (retrained weekly). One thread (the machine is shared).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import write_section
from electra.intelligence.forecast import backtest, fleet_of
from electra.intelligence.history import simulate_fleet

BEGIN, END = "<!-- forecast-eval:begin -->", "<!-- forecast-eval:end -->"
SEEDS = (1, 2, 3)
SITES, PER_SITE, WEEKS, EVAL_DAYS = 8, 5, 10, 28
BUCKETS = ((1, 6), (7, 12), (13, 18), (19, 24), (1, 24))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", type=Path, help="rewrite this file's forecast-eval section")
    ap.add_argument("--seeds", type=int, nargs="*", default=list(SEEDS))
    args = ap.parse_args()
    started = time.perf_counter()
    results = []
    for seed in args.seeds:
        history = simulate_fleet(seed, sites=SITES, chargers_per_site=PER_SITE, weeks=WEEKS)
        fleet = fleet_of(history.histories(), history.start_ms, history.hours, known_from_first_session=False)
        t = time.perf_counter()
        result = backtest(fleet, eval_days=EVAL_DAYS)
        results.append((seed, fleet, result))
        print(
            f"seed {seed}: MAE model {result.model:.4f}, seasonal naive {result.naive:.4f} "
            f"({result.improvement * 100:.1f} % lower), {result.rows} hours, {time.perf_counter() - t:.1f} s",
            flush=True,
        )
    model = np.vstack([r.mae_model for _, _, r in results]).mean(axis=0)
    naive = np.vstack([r.mae_naive for _, _, r in results]).mean(axis=0)
    smean = np.vstack([r.mae_seasonal_mean for _, _, r in results]).mean(axis=0)
    zero = np.vstack([r.mae_zero for _, _, r in results]).mean(axis=0)
    lines = [
        BEGIN,
        "",
        f"Fleets: seeds {', '.join(map(str, args.seeds))}; each {SITES} sites x {PER_SITE} chargers, {WEEKS} weeks "
        f"(mean utilization {np.mean([np.nanmean(f.utilization) for _, f, _ in results]):.3f}). "
        f"Backtest: a 24-hour forecast at each midnight of the last {EVAL_DAYS} days, trained only on earlier "
        f"targets, retrained weekly; {sum(r.rows for _, _, r in results):,} charger-hours scored. MAE is in "
        "utilization (share of connector-time, 0..1).",
        "",
        "| horizon (h) | model MAE | seasonal naive MAE (same hour last week) | model vs naive "
        "| 4-week seasonal mean MAE | all-idle (0) MAE |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for lo, hi in BUCKETS:
        sl = slice(lo - 1, hi)
        m, n = model[sl].mean(), naive[sl].mean()
        label = "**all (1-24)**" if (lo, hi) == (1, 24) else f"{lo}-{hi}"
        lines.append(
            f"| {label} | {m:.4f} | {n:.4f} | {(1 - m / n) * -100:+.1f} % | {smean[sl].mean():.4f} "
            f"| {zero[sl].mean():.4f} |"
        )
    lines += [
        "",
        "| fleet seed | model MAE | seasonal naive MAE | model vs naive |",
        "| --- | ---: | ---: | ---: |",
    ]
    for seed, _, r in results:
        lines.append(f"| {seed} | {r.model:.4f} | {r.naive:.4f} | {-r.improvement * 100:+.1f} % |")
    overall = 1 - model.mean() / naive.mean()
    lines += [
        "",
        f"Over all horizons the model's MAE is **{overall * 100:.1f} % lower** than the seasonal naive "
        f"baseline ({model.mean():.4f} against {naive.mean():.4f}). Run time {time.perf_counter() - started:.0f} s "
        "on one thread.",
        "",
        END,
    ]
    block = "\n".join(lines)
    print(block)
    if args.write:
        write_section(args.write, BEGIN, END, block)
        print(f"wrote {args.write}")
    if overall <= 0:
        raise SystemExit("the model does not beat the seasonal naive baseline")


if __name__ == "__main__":
    main()
