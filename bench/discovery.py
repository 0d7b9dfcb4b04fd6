"""Discovery benchmark: k=10 nearest chargers with filters among 1,000,000, against a numpy scan.

Synthetic stations spread like real charging networks: 70% around metropolitan areas (a list of
real city coordinates, weighted by rough size, Gaussian spread of 5-40 km), 30% along the country
side of four continents. Queries come from the same distribution (drivers are where chargers are),
with four filter mixes. Reported: index build time and memory, p50/p99 query latency in-process
and over HTTP (the platform's FastAPI route under uvicorn, in a second process pinned to its own
core, a keep-alive client on the other), and the same queries answered by a brute-force numpy scan
(haversine to every station, mask, partial sort, same ranking) in the same run.

    uv run python bench/discovery.py [--stations 1000000] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

from benchlib import free_port, write_section
from electra.discovery.index import EARTH_RADIUS_M, Filters, Listing, StationIndex
from electra.domain.ranking import Availability, Candidate, rank

BEGIN, END = "<!-- discovery:begin -->", "<!-- discovery:end -->"
CITIES = [  # (lat, lon, weight)
    (52.52, 13.40, 4),
    (48.14, 11.58, 3),
    (50.11, 8.68, 2),
    (53.55, 9.99, 3),
    (51.23, 6.78, 3),
    (48.86, 2.35, 6),
    (51.51, -0.13, 6),
    (40.42, -3.70, 4),
    (41.39, 2.17, 3),
    (45.46, 9.19, 3),
    (41.90, 12.50, 3),
    (52.37, 4.90, 3),
    (50.85, 4.35, 2),
    (59.33, 18.07, 2),
    (59.91, 10.75, 2),
    (55.68, 12.57, 2),
    (48.21, 16.37, 2),
    (47.37, 8.54, 2),
    (52.23, 21.01, 2),
    (50.08, 14.44, 2),
    (40.71, -74.01, 6),
    (34.05, -118.24, 6),
    (37.77, -122.42, 4),
    (41.88, -87.63, 4),
    (29.76, -95.37, 3),
    (47.61, -122.33, 3),
    (25.76, -80.19, 3),
    (43.65, -79.38, 3),
    (45.50, -73.57, 2),
    (49.28, -123.12, 2),
    (39.90, 116.41, 6),
    (31.23, 121.47, 6),
    (22.54, 114.06, 5),
    (23.13, 113.26, 5),
    (30.57, 104.07, 3),
    (35.68, 139.69, 6),
    (34.69, 135.50, 4),
    (37.57, 126.98, 5),
    (1.35, 103.82, 3),
    (-33.87, 151.21, 3),
    (-37.81, 144.96, 3),
    (19.43, -99.13, 3),
    (-23.55, -46.63, 3),
]
REGIONS = [
    (36.0, 60.0, -10.0, 30.0),
    (25.0, 49.0, -124.0, -67.0),
    (22.0, 41.0, 100.0, 122.0),
    (-38.0, -12.0, 115.0, 153.0),
]
MIXES = [
    ("no filter", Filters()),
    ("CCS2", Filters(connector_mask=0b1000)),
    ("CCS2, >= 50 kW, available now", Filters(connector_mask=0b1000, min_power_w=50_000, available_now=True)),
    (
        "all: type 2, >= 22 kW, <= 450/Wh, available, public, 25 km",
        Filters(
            connector_mask=0b0010,
            min_power_w=22_000,
            max_price_per_wh=450,
            available_now=True,
            public_only=True,
            radius_m=25_000,
        ),
    ),
]


def synthetic(n: int, seed: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    city = np.array(CITIES)
    urban = int(n * 0.7)
    pick = rng.choice(len(city), urban, p=city[:, 2] / city[:, 2].sum())
    spread_km = rng.uniform(5, 40, len(city))[pick]
    lat = city[pick, 0] + rng.normal(0, 1, urban) * spread_km / 111.0
    lon = city[pick, 1] + rng.normal(0, 1, urban) * spread_km / (111.0 * np.cos(np.radians(city[pick, 0])))
    region = np.array(REGIONS)[rng.integers(0, len(REGIONS), n - urban)]
    lat = np.concatenate((lat, rng.uniform(region[:, 0], region[:, 1])))
    lon = np.concatenate((lon, rng.uniform(region[:, 2], region[:, 3])))
    lon = (lon + 180) % 360 - 180
    return {
        "lat": np.clip(np.round(lat * 1e6), -90e6, 90e6).astype(np.int64),
        "lon": np.round(lon * 1e6).astype(np.int64),
        "power": rng.choice([3_700, 11_000, 22_000, 50_000, 150_000, 300_000], n, p=[0.1, 0.35, 0.3, 0.1, 0.1, 0.05]),
        "conn": rng.integers(1, 16, n),
        "price": rng.integers(250, 700, n),
        "public": rng.random(n) < 0.85,
        "avail": rng.integers(0, 3, n).astype(np.int8),
        "rel": rng.integers(600, 1001, n),
        "boost": rng.choice([0, 0, 0, 100, 250, 500], n),
    }


def listings(d: dict[str, np.ndarray]) -> list[Listing]:
    cols = [d[k].tolist() for k in ("lat", "lon", "power", "conn", "price", "public", "avail", "rel", "boost")]
    return [
        Listing(i + 1, f"SYN-{i:07d}", la, lo, p, c, pr, "EUSD", pub, True, Availability(av), rl, b)
        for i, (la, lo, p, c, pr, pub, av, rl, b) in enumerate(zip(*cols, strict=True))
    ]


def queries(n: int, seed: int = 11) -> list[tuple[int, int]]:
    d = synthetic(n, seed)
    return list(zip(d["lat"].tolist(), d["lon"].tolist(), strict=True))


def brute_force(d: dict[str, np.ndarray], q: tuple[int, int], k: int, f: Filters) -> list[int]:
    """The same answer by scanning every station: haversine, mask, nearest pool, same ranking."""
    la, lo = np.radians(d["lat"] * 1e-6), np.radians(d["lon"] * 1e-6)
    qa, qo = math.radians(q[0] * 1e-6), math.radians(q[1] * 1e-6)
    h = np.sin((la - qa) / 2) ** 2 + math.cos(qa) * np.cos(la) * np.sin((lo - qo) / 2) ** 2
    dist = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(1.0, h)))
    m = np.ones(len(dist), dtype=bool)
    if f.connector_mask:
        m &= (d["conn"] & f.connector_mask) != 0
    if f.min_power_w:
        m &= d["power"] >= f.min_power_w
    if f.max_price_per_wh is not None:
        m &= d["price"] <= f.max_price_per_wh
    if f.available_now:
        m &= d["avail"] == int(Availability.AVAILABLE)
    if f.public_only:
        m &= d["public"]
    if f.radius_m is not None:
        m &= dist <= f.radius_m
    rows = np.flatnonzero(m)
    pool = max(3 * k, 30)
    if len(rows) > pool:
        rows = rows[np.argpartition(dist[rows], pool)[:pool]]
    cands = [
        Candidate(
            int(r) + 1,
            int(dist[r]),
            int(d["price"][r]),
            Availability(int(d["avail"][r])),
            int(d["rel"][r]),
            int(d["boost"][r]),
            "EUSD",
        )
        for r in rows
    ]
    return [c.candidate.token_id for c in rank(cands)[:k]]


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def _serve(n: int, port: int, ready: mp.Event) -> None:  # type: ignore[valid-type]
    import uvicorn

    from electra.api.app import create_app

    os.sched_setaffinity(0, {0})
    index = StationIndex(listings(synthetic(n)))
    from electra.api.ratelimit import Rate, RateLimits

    # One client sends every query: lift the anonymous rate limit (the bucket is still checked).
    limits = RateLimits(anonymous=Rate(10**9, 10**8))
    app = create_app(None, lambda: None, stations=lambda: index, rate_limits=limits)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    ready.set()  # type: ignore[attr-defined]
    server.run()


def over_http(n: int, qs: list[tuple[int, int]]) -> dict[str, list[float]]:
    import httpx

    port = free_port()
    ready = mp.get_context("fork").Event()
    proc = mp.get_context("fork").Process(target=_serve, args=(n, port, ready), daemon=True)
    proc.start()
    ready.wait(600)
    os.sched_setaffinity(0, {1})
    out: dict[str, list[float]] = {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
            for _ in range(600):
                try:
                    c.get("/healthz")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            for name, f in MIXES:
                params = {"k": 10}
                if f.connector_mask:
                    params["connector"] = "ccs2" if f.connector_mask == 0b1000 else "type2"
                if f.min_power_w:
                    params["min_power_kw"] = f.min_power_w // 1000
                if f.max_price_per_wh is not None:
                    params["max_price_per_wh"] = f.max_price_per_wh
                if f.available_now:
                    params["available"] = "true"
                if f.public_only:
                    params["public"] = "true"
                if f.radius_m:
                    params["radius_km"] = f.radius_m / 1000
                ts = []
                for la, lo in qs:
                    t = time.perf_counter()
                    r = c.get("/api/v1/stations/nearby", params={**params, "lat": la / 1e6, "lon": lo / 1e6})
                    ts.append(time.perf_counter() - t)
                    assert r.status_code == 200, r.text
                out[name] = ts
    finally:
        proc.terminate()
        proc.join(10)
        os.sched_setaffinity(0, {0, 1})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--stations", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=2_000)
    ap.add_argument("--brute-queries", type=int, default=100)
    ap.add_argument("--http-queries", type=int, default=1_000)
    ap.add_argument("--write", type=Path)
    ap.add_argument("--json", type=Path, help="write every latency (ms) and the summary here")
    args = ap.parse_args()
    n = args.stations
    d = synthetic(n)
    xs = listings(d)
    tracemalloc.start()
    t = time.perf_counter()
    index = StationIndex(xs)
    build_s = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    cols = sum(
        getattr(index, a).nbytes
        for a in ("_xyz", "_power", "_conn", "_price", "_public", "_live", "_avail", "_rel", "_boost")
    )
    qs = queries(args.queries)
    rows = []
    http = over_http(n, qs[: args.http_queries])
    for name, f in MIXES:
        ours = []
        for q in qs:
            t = time.perf_counter()
            index.nearby(*q, k=10, filters=f)
            ours.append(time.perf_counter() - t)
        brute, same = [], 0
        for q in qs[: args.brute_queries]:
            t = time.perf_counter()
            expect = brute_force(d, q, 10, f)
            brute.append(time.perf_counter() - t)
            same += [x.listing.token_id for x in index.nearby(*q, k=10, filters=f)] == expect
        h = http[name]
        rows.append((name, ours, brute, h, same))
        print(
            f"{name}: ours p50 {pct(ours, 50) * 1e3:.3f} ms p99 {pct(ours, 99) * 1e3:.3f} ms; "
            f"http p99 {pct(h, 99) * 1e3:.2f} ms; brute p50 {pct(brute, 50) * 1e3:.1f} ms; same {same}/{len(brute)}",
            file=sys.stderr,
        )
    lines = [
        "| filters | in-process p50 / p99 ms | over HTTP p50 / p99 ms | brute-force numpy p50 / p99 ms "
        "| speed-up (p50) | same answer |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, ours, brute, h, same in rows:
        lines.append(
            f"| {name} | {pct(ours, 50) * 1e3:.3f} / {pct(ours, 99) * 1e3:.3f} | {pct(h, 50) * 1e3:.2f} / "
            f"{pct(h, 99) * 1e3:.2f} | {pct(brute, 50) * 1e3:.1f} / {pct(brute, 99) * 1e3:.1f} | "
            f"{statistics.median(brute) / statistics.median(ours):,.0f}x | {same}/{len(brute)} |"
        )
    worst_in = max(pct(r[1], 99) for r in rows) * 1e3
    worst_http = max(pct(r[3], 99) for r in rows) * 1e3
    least = min(statistics.median(r[2]) / statistics.median(r[1]) for r in rows)
    table = "\n".join(lines)
    summary = (
        f"Index of {n:,} stations built in {build_s:.2f} s; its numpy columns take {cols / 2**20:.0f} MiB and the "
        f"build peaked at {peak / 2**20:.0f} MiB of Python allocations (tree included; the {n:,} `Listing` "
        f"objects it is built from are not counted). Goals: p99 <= 2 ms in-process: "
        f"{'met' if worst_in <= 2 else 'missed'} ({worst_in:.2f} ms worst mix); p99 <= 10 ms over HTTP: "
        f"{'met' if worst_http <= 10 else 'missed'} ({worst_http:.2f} ms); >= 50x the brute-force scan: "
        f"{'met' if least >= 50 else 'missed'} ({least:,.0f}x for the slowest mix)."
    )
    print(table)
    print(summary)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "stations": n,
                    "build_s": build_s,
                    "columns_mib": cols / 2**20,
                    "peak_mib": peak / 2**20,
                    "worst_p99_in_process_ms": worst_in,
                    "worst_p99_http_ms": worst_http,
                    "least_speedup": least,
                    "mixes": {
                        name: {
                            "ours_ms": [x * 1e3 for x in ours],
                            "http_ms": [x * 1e3 for x in h],
                            "brute_ms": [x * 1e3 for x in brute],
                            "same": same,
                        }
                        for name, ours, brute, h, same in rows
                    },
                }
            )
        )
    if args.write:
        cmd = "python bench/discovery.py --write docs/benchmarks.md"
        run = (
            f"Run: {datetime.date.today().isoformat()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{n:,} synthetic stations (70% around {len(CITIES)} metropolitan areas, 30% countryside of four "
            f"continents), {len(qs):,} queries in-process, {args.http_queries:,} over HTTP, "
            f"{args.brute_queries} by brute force per mix; k = 10."
        )
        how = (
            "In-process: `StationIndex.nearby`. Over HTTP: `GET /api/v1/stations/nearby` of the platform's FastAPI "
            "app under uvicorn in its own process on core 0, one keep-alive httpx client on core 1, one request at "
            "a time, latency at the client. Brute force: the same filters and the same ranking over a haversine "
            'scan of every station in numpy. "Same answer" counts brute-force queries whose ten results are the '
            "index's, in order."
        )
        block = "\n".join(
            [
                BEGIN,
                "## Discovery",
                "",
                f"Command: `{cmd}`  ",
                run,
                "",
                how,
                "",
                table,
                "",
                summary,
                END,
            ]
        )
        write_section(args.write, BEGIN, END, block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
