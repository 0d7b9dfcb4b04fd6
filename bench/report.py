"""The benchmark report: one summary table of every goal at the top of docs/benchmarks.md, and the
figures as PNG plots in docs/img/.

It reads what the benchmarks of the same `make bench` run wrote: their sections of
docs/benchmarks.md (tables whose rows it finds by their first cell), docs/intelligence.md, and the
raw results in bench/results/ (ocpp_load.json, discovery.json, soak.json). A figure whose input is
missing is reported as missing, not drawn from stale data.

    uv run python bench/report.py   # after the benchmarks; `make bench` runs them all, then this
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from benchlib import write_section

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
INTEL = ROOT / "docs" / "intelligence.md"
RESULTS = ROOT / "bench" / "results"
IMG = ROOT / "docs" / "img"
BEGIN, END = "<!-- summary:begin -->", "<!-- summary:end -->"
_NUM = re.compile(r"-?[\d,]*\.?\d+")


def rows(text: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines() if line.startswith("|")
    ]


def row(text: str, first: str) -> list[str] | None:
    """The first table row whose first cell starts with ``first``."""
    return next((r for r in rows(text) if r and r[0].startswith(first)), None)


def num(cell: str | None, index: int = 0) -> float | None:
    if cell is None:
        return None
    found = _NUM.findall(cell.replace("**", ""))
    return float(found[index].replace(",", "")) if len(found) > index else None


def load(name: str) -> Any:
    p = RESULTS / name
    return json.loads(p.read_text()) if p.exists() else None


def summary(doc: str, intel: str) -> tuple[list[tuple[str, str, str, str, str, str]], list[str]]:
    """(area, what, ours, baseline, ratio, goal) rows, and what is missing."""
    out: list[tuple[str, str, str, str, str, str]] = []
    missing: list[str] = []

    def add(
        area: str,
        what: str,
        ours: float | None,
        base: float | None,
        unit: str,
        goal: str,
        met: bool | None,
        fmt: str = ",.0f",
    ) -> None:
        if ours is None:
            missing.append(f"{area}: {what}")
            return
        ratio = f"{ours / base:.3g}x" if base else ""
        verdict = "" if met is None else (" (met)" if met else " (missed)")
        b = f"{base:{fmt}} {unit}" if base is not None else ""
        out.append((area, what, f"{ours:{fmt}} {unit}", b, ratio, goal + verdict))

    s100 = row(doc, "PaymentHub.settleBatch, 100 |") or row(doc, "PaymentHub.settleBatch, 100")
    base_a = row(doc, "(a) one tx per session")
    add(
        "settlement",
        "gas per session, batch of 100",
        num(s100[3]) if s100 else None,
        num(base_a[3]) if base_a else None,
        "gas",
        "<= 15,000",
        s100 is not None and num(s100[3]) <= 15_000,
    )  # type: ignore[operator]
    a1000 = row(doc, "SessionAnchor.anchorSessions, batch of 1,000")
    abase = row(doc, "baseline: one tx per session stores its hash")
    add(
        "anchoring",
        "gas per session, batch of 1,000",
        num(a1000[3]) if a1000 else None,
        num(abase[3]) if abase else None,
        "gas",
        "<= 100",
        a1000 is not None and (num(a1000[3]) or 1e9) <= 100,
        ",.1f",
    )
    ing = row(doc, "hash-chained events ingested into SQLite")
    add(
        "session log",
        "events ingested per second",
        num(ing[1]) if ing else None,
        num(ing[2]) if ing else None,
        "events/s",
        ">= 20,000",
        ing is not None and (num(ing[1]) or 0) >= 20_000,
    )
    ver = row(doc, "proof verification from the leaf")
    add(
        "session log",
        "proof verification",
        num(ver[1]) if ver else None,
        None,
        "us",
        "< 100 us",
        ver is not None and (num(ver[1]) or 1e9) < 100,
        ",.1f",
    )
    root = row(doc, "Merkle root of 100,000 leaves")
    add(
        "session log",
        "root of 100,000 leaves",
        num(root[1]) if root else None,
        num(root[2]) if root else None,
        "s",
        "",
        None,
        ",.2f",
    )
    ocpp = load("ocpp_load.json")
    if ocpp:
        by = {(r.get("chargers"), r.get("server")): r for r in ocpp}
        top = max((c for c, _ in by), default=None)
        ours, base = by.get((top, "ours")), by.get((top, "baseline"))

        def phase(r: Any, name: str, key: str) -> float | None:
            ph = (r or {}).get("phases", {}).get(name) or {}
            v = ph.get(key)
            return float(v) if v is not None else None

        add(
            "OCPP",
            f"chargers connected (of {top:,})",
            float((ours or {}).get("connected", 0)),
            float((base or {}).get("connected", 0)) if base else None,
            "",
            f"{top:,}",
            (ours or {}).get("connected") == top,
        )
        burst = phase(ours, "burst", "persisted_rate") or phase(ours, "burst", "rate")
        add(
            "OCPP",
            f"persisted messages/s in the burst, {top:,} chargers",
            burst,
            phase(base, "burst", "rate"),
            "msg/s",
            ">= 3,000",
            burst is not None and burst >= 3_000,
        )
        p99 = phase(ours, "steady", "p99_ms")
        add(
            "OCPP",
            f"p99 call latency, steady, {top:,} chargers",
            p99,
            phase(base, "steady", "p99_ms"),
            "ms",
            "< 100 ms",
            p99 is not None and p99 < 100,
            ",.1f",
        )
    else:
        missing.append("OCPP: bench/results/ocpp_load.json")
    disc = load("discovery.json")
    if disc:
        add(
            "discovery",
            f"worst p99 in-process, k=10, {disc['stations']:,} stations",
            disc["worst_p99_in_process_ms"],
            None,
            "ms",
            "<= 2 ms",
            disc["worst_p99_in_process_ms"] <= 2,
            ",.2f",
        )
        add(
            "discovery",
            "worst p99 over HTTP",
            disc["worst_p99_http_ms"],
            None,
            "ms",
            "<= 10 ms",
            disc["worst_p99_http_ms"] <= 10,
            ",.2f",
        )
        add(
            "discovery",
            "speed-up over a brute-force numpy scan (slowest mix)",
            disc["least_speedup"],
            None,
            "x",
            ">= 50x",
            disc["least_speedup"] >= 50,
        )
    else:
        missing.append("discovery: bench/results/discovery.json")
    meter = row(doc, "**whole check of one signed value, secp256k1")
    add("meter data", "OCMF check per signed value, device key", num(meter[1]) if meter else None, None, "us", "", None)
    shared, memory = row(doc, "database: PostgreSQL, shared"), row(doc, "memory, per process (baseline)")
    add(
        "API",
        "rate-limit decision, buckets shared on PostgreSQL",
        num(shared[1]) if shared else None,
        num(memory[1]) if memory else None,
        "us",
        "",
        None,
        ",.1f",
    )
    holding = row(doc, "a host's chargers (1 of")
    add(
        "web app",
        holding[0] if holding else "a host's chargers",
        num(holding[1]) if holding else None,
        num(holding[2]) if holding else None,
        "ms",
        "",
        None,
        ",.1f",
    )
    mae = row(intel, "all") or row(intel, "**all")
    if mae is not None:
        add(
            "intelligence",
            "forecast MAE, all fleets (lower is better)",
            num(mae[1]),
            num(mae[2]),
            "",
            "beats seasonal naive",
            (num(mae[1]) or 1) < (num(mae[2]) or 0),
            ",.4f",
        )
    else:
        missing.append("intelligence: the forecast table of docs/intelligence.md")
    soak = load("soak.json")
    if soak:
        r = soak["result"]
        add(
            "soak",
            f"RSS growth over {r['minutes']:g} min after warm-up",
            r["fitted_growth_mb"],
            None,
            "MB",
            "no growth trend",
            r["no_growth"],
            "+,.1f",
        )
        add("soak", "settlement lag, max", r["settlement_lag_max_s"], None, "s", "", None)
        add("soak", "anchor lag, max", r["anchor_lag_max_s"], None, "s", "", None)
    else:
        missing.append("soak: bench/results/soak.json")
    return out, missing


def plots() -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    IMG.mkdir(parents=True, exist_ok=True)
    made = []
    disc = load("discovery.json")
    if disc:
        fig, axes = plt.subplots(1, len(disc["mixes"]), figsize=(14, 3.6), sharey=True)
        for ax, (name, m) in zip(axes, disc["mixes"].items(), strict=True):
            for key, label in (
                ("ours_ms", "index, in-process"),
                ("http_ms", "index, over HTTP"),
                ("brute_ms", "numpy brute force"),
            ):
                xs = sorted(m[key])
                ax.plot(xs, [i / len(xs) for i in range(len(xs))], label=label)
            ax.set_xscale("log")
            ax.set_title(name[:40], fontsize=9)
            ax.set_xlabel("latency, ms (log)")
            ax.grid(True, alpha=0.3)
        axes[0].set_ylabel("share of queries")
        axes[0].legend(fontsize=8)
        fig.suptitle(f"Discovery: k=10 among {disc['stations']:,} stations, latency CDF")
        fig.tight_layout()
        fig.savefig(IMG / "discovery_latency.png", dpi=100)
        plt.close(fig)
        made.append("discovery_latency.png")
    ocpp = load("ocpp_load.json")
    if ocpp:
        fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
        for ax, ph in zip(axes, ("steady", "paced", "burst"), strict=True):
            for server, marker in (("ours", "o"), ("baseline", "s")):
                rs = sorted((r for r in ocpp if r.get("server") == server), key=lambda r: r["chargers"])
                for key, style in (("p50_ms", "-"), ("p99_ms", "--"), ("max_ms", ":")):
                    pts = [(r["chargers"], (r.get("phases", {}).get(ph) or {}).get(key)) for r in rs]
                    pts = [(c, v) for c, v in pts if v is not None]
                    if pts:
                        ax.plot(*zip(*pts, strict=True), style, marker=marker, label=f"{server} {key[:-3]}")
            ax.set_title(f"{ph} phase")
            ax.set_xlabel("chargers")
            ax.set_yscale("log")
            ax.grid(True, alpha=0.3)
        axes[0].set_ylabel("call latency, ms (log)")
        axes[0].legend(fontsize=7)
        fig.suptitle("OCPP central system: latency percentiles, ours vs the plain ocpp-library baseline")
        fig.tight_layout()
        fig.savefig(IMG / "ocpp_latency.png", dpi=100)
        plt.close(fig)
        made.append("ocpp_latency.png")
    doc = DOC.read_text()
    anchor = [(num(r[1]), num(r[3])) for r in rows(doc) if r[0].startswith("SessionAnchor.anchorSessions, batch of")]
    settle = [
        (num(r[1]), num(r[3]))
        for r in rows(doc)
        if re.fullmatch(r"PaymentHub\.settleBatch, [\d,]+", r[0].replace("**", ""))
    ]
    if anchor or settle:
        fig, ax = plt.subplots(figsize=(7, 4))
        for pts, label in ((settle, "PaymentHub.settleBatch (settlement)"), (anchor, "SessionAnchor.anchorSessions")):
            pts = [(b, g) for b, g in pts if b and g]
            if pts:
                ax.plot(*zip(*sorted(pts), strict=True), marker="o", label=label)
        for r in rows(doc):
            if r[0].startswith("(a) one tx per session") or r[0].startswith("baseline: one tx per session"):
                g = num(r[3])
                if g:
                    ax.axhline(g, linestyle=":", color="grey")
                    ax.text(1.05, g * 1.1, r[0][:48], fontsize=7, color="grey")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("sessions per transaction (batch size)")
        ax.set_ylabel("gas per session")
        ax.legend(fontsize=8)
        ax.grid(True, alpha=0.3)
        ax.set_title("Gas per session against batch size")
        fig.tight_layout()
        fig.savefig(IMG / "gas_per_session.png", dpi=100)
        plt.close(fig)
        made.append("gas_per_session.png")
    if (IMG / "soak_memory.png").exists() and load("soak.json"):
        made.append("soak_memory.png")
    return made


def main() -> int:
    global DOC, IMG
    import argparse

    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--doc", type=Path, default=DOC, help="the benchmark document to read and write")
    ap.add_argument("--img", type=Path, default=IMG, help="where the figures go")
    args = ap.parse_args()
    DOC, IMG = args.doc, args.img
    made = plots()
    doc = DOC.read_text()
    intel = INTEL.read_text() if INTEL.exists() else ""
    table, missing = summary(doc, intel)
    lines = [
        BEGIN,
        "## Summary",
        "",
        "Command: `make bench` (every benchmark in bench/, then `python bench/report.py`, which writes this table "
        "and the figures). Each row comes from its section below, measured in that section's run with its "
        "baseline beside it.",
        "",
        "| area | what | ours | baseline (same run) | ratio | goal |",
        "| --- | --- | ---: | ---: | ---: | --- |",
        *[f"| {a} | {w} | {o} | {b} | {r} | {g} |" for a, w, o, b, r, g in table],
        "",
        "Figures: " + ", ".join(f"[{m}]({os.path.relpath(IMG / m, DOC.parent)})" for m in made)
        if made
        else "Figures: none (no raw results yet).",
    ]
    if missing:
        lines += ["", "Not in this report (their benchmark did not run): " + "; ".join(missing) + "."]
    lines.append(END)
    block = "\n".join(lines)
    if BEGIN in doc:
        write_section(DOC, BEGIN, END, block)
    else:  # right after the title
        head, _, rest = doc.partition("\n")
        DOC.write_text(head + "\n\n" + block + "\n" + rest)
    print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
