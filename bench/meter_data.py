"""What verifying signed meter data (OCMF) costs, per signed value and on the OCPP hot path.

    .venv/bin/python bench/meter_data.py                              # prints the table
    .venv/bin/python bench/meter_data.py --write docs/benchmarks.md   # and rewrites its section there
    .venv/bin/python bench/meter_data.py --quick                      # smaller sizes, a few seconds

Per signed value (CPU time, the least of 7 runs of 5,000; one record of one reading as the simulators sign it):
pyocmf's strict parse, Electra's parse (pyocmf plus the record's fields as integers), the signature
with the charger's key parsed once (libsecp256k1 through coincurve for secp256k1, OpenSSL through
cryptography for secp256r1), the whole check of the session service (``MeterDataVerifier.check``:
parse, key, signature, value and time against the reading), and learning a device key from a
signature once per charger. Baselines in the same run: OpenSSL on secp256k1 with the key parsed
once, and pyocmf's own ``verify_signature``, which parses the key again for every record.

Hot path: ``SessionService`` over the group-commit writer on SQLite, many chargers at once, each
running sessions of StartTransaction, MeterValues with the signed begin record, 8 MeterValues with a
signed periodic record, StopTransaction with the begin and end records (1.6 as the simulators send
it): 11 calls and 10 records checked per session. Verification off (the same signed data carried
and stored unchecked) against on, with the device key (secp256k1) and with a registered secp256r1
meter key; alternating, median of three; CPU per call, and the extra CPU per checked record.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.metadata
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pyocmf import OCMF
from sqlalchemy import Engine

from benchlib import documented_section, write_section
from electra.charging.meter_data import MeterDataVerifier, MeterKeyBook
from electra.charging.service import SessionService
from electra.charging.tokens import TokenRegistry
from electra.domain.meter_data import Verification
from electra.metering.keys import SECP256K1, SECP256R1, recover_secp256k1
from electra.metering.ocmf import Identification, OcmfReading, OcmfSigner, build_ocmf, check_signature, parse_ocmf
from electra.ocpp.meter import RegisterReading, SignedMeter
from electra.store.db import make_engine, migrate
from electra.store.writer import GroupCommitWriter

BEGIN, END = "<!-- meter:begin -->", "<!-- meter:end -->"
T0 = 1_795_860_000_000
PERIODIC = 8
CALLS_PER_SESSION = PERIODIC + 3  # start, begin record, 8 periodic, stop
CHECKED_PER_SESSION = PERIODIC + 2  # begin, 8 periodic, end (the begin record repeated at the stop is not)


@dataclass
class Sizes:
    n: int = 5_000
    chargers: int = 300
    sessions: int = 2
    runs: int = 3


QUICK = Sizes(500, 40, 1, 1)


def signer(curve: str, charger_id: str = "CP-BENCH") -> OcmfSigner:
    key = hashlib.sha256(f"bench meter {curve} {charger_id}".encode()).digest()
    return OcmfSigner(key, charger_id, f"{charger_id}-MTR-1", curve=curve)


def record(s: OcmfSigner, at_ms: int, wh: int, page: int, tx: str = "C") -> str:
    return build_ocmf(
        s,
        [OcmfReading(at_ms, wh, tx)],
        pagination=page,
        charge_point_id=s.gateway_serial,
        identification=Identification("1A2B3C4D", ("RFID_PLAIN", "OCPP_AUTH")),
    )


def per_call_us(fn: Callable[[], object], n: int, runs: int = 7) -> float:
    """CPU µs per call: the least of ``runs`` runs of ``n`` calls (the run other load disturbed least)."""
    for _ in range(min(n, 200)):
        fn()
    samples = []
    for _ in range(runs):
        start = time.process_time()
        for _ in range(n):
            fn()
        samples.append((time.process_time() - start) / n * 1e6)
    return min(samples)


def measure_curve(curve: str, n: int) -> dict[str, float]:
    s = signer(curve)
    text = record(s, T0, 12_345, 7)
    doc, rec = parse_ocmf(text)
    verifier = MeterDataVerifier(MeterKeyBook(None))  # type: ignore[arg-type]  # no store needed
    trust = verifier.trust_from("CP-BENCH", None)
    trust.key = s.public_key
    assert verifier.check(trust, T0, 12_345, text).verification is Verification.VERIFIED
    hex_key = s.public_key_hex
    return {
        f"{curve} parse pyocmf": per_call_us(lambda: OCMF.from_string(text, strict=True), n),
        f"{curve} parse electra": per_call_us(lambda: parse_ocmf(text), n),
        f"{curve} signature": per_call_us(lambda: check_signature(doc, rec, s.public_key), n),
        f"{curve} check": per_call_us(lambda: verifier.check(trust, T0, 12_345, text), n),
        f"{curve} pyocmf verify_signature": per_call_us(lambda: doc.verify_signature(hex_key), max(n // 5, 50)),
    }


def measure_micro(z: Sizes) -> dict[str, float]:
    out = measure_curve(SECP256K1, z.n) | measure_curve(SECP256R1, z.n)
    k1 = signer(SECP256K1)
    payload = record(k1, T0, 12_345, 7).split("|")[1].encode()
    der = k1.sign(payload)
    openssl = serialization.load_der_public_key(k1.public_key_der)
    assert isinstance(openssl, ec.EllipticCurvePublicKey)
    out["secp256k1 openssl"] = per_call_us(lambda: openssl.verify(der, payload, ec.ECDSA(hashes.SHA256())), z.n // 5)
    out["secp256k1 recover"] = per_call_us(lambda: recover_secp256k1(der, payload), z.n // 5)
    return out


MODES = ("off", SECP256K1, SECP256R1)


def session_records(z: Sizes, curve: str) -> dict[str, list[list[RegisterReading]]]:
    """Per charger, per session: the begin reading, the periodic readings, the end reading; signed."""
    out: dict[str, list[list[RegisterReading]]] = {}
    for n in range(z.chargers):
        cid = f"CP-{n:05d}"
        s = signer(curve, cid)
        page, sessions = 0, []
        for k in range(z.sessions):
            t0 = T0 + k * 3_600_000
            readings = []
            for m in range(PERIODIC + 2):
                page += 1
                tx = "B" if m == 0 else "E" if m == PERIODIC + 1 else "C"
                at, wh = t0 + m * 60_000, m * 1_000
                text = record(s, at, wh, page, tx)
                readings.append(RegisterReading(at, wh, None, SignedMeter(text, s.algorithm, "OCMF")))
            sessions.append(readings)
        out[cid] = sessions
    return out


def hot_path(z: Sizes, mode: str, signed: dict[str, dict[str, list[list[RegisterReading]]]]) -> tuple[float, float]:
    """(calls/s, CPU µs per call) of the session service with verification ``mode`` (MODES)."""
    curve = SECP256R1 if mode == SECP256R1 else SECP256K1
    data = signed[curve]

    async def charger(svc: SessionService, cid: str) -> int:
        calls = 0
        for readings in data[cid]:
            begin, periodic, end = readings[0], readings[1:-1], readings[-1]
            s = await svc.start(cid, "1.6", 1, "BENCH", begin.timestamp_ms, begin.register_wh)
            await svc.record(cid, s.uid, [begin])
            for r in periodic:
                await svc.record(cid, s.uid, [r])
            done = await svc.stop(cid, s.uid, end.timestamp_ms, end.register_wh, "EVDisconnected", [begin, end])
            assert mode == "off" or done.billable_wh == end.register_wh, (mode, done)
            calls += CALLS_PER_SESSION
        return calls

    async def main(engine: Engine) -> tuple[float, float]:
        writer = GroupCommitWriter(engine)
        await writer.start()
        meter = None
        try:
            if mode != "off":
                book = MeterKeyBook(engine)
                meter = MeterDataVerifier(book)
                for cid in data:
                    s = signer(curve, cid)
                    if curve == SECP256R1:
                        book.put(cid, s.public_key, None)
                    else:
                        meter.know_device(cid, s.address)
                    # Steady state: each charger's key already parsed (or learned) once.
                    first = data[cid][0][0]
                    assert first.signed is not None
                    trust = await meter.trust(cid)
                    meter.check(trust, first.timestamp_ms, first.register_wh, first.signed.data)
            svc = SessionService(engine, writer, TokenRegistry(engine), meter=meter)
            wall, cpu = time.perf_counter(), time.process_time()
            calls = sum(await asyncio.gather(*(charger(svc, cid) for cid in data)))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        finally:
            await writer.stop()
        return calls / wall, cpu / calls * 1e6

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/hot.db")
        migrate(engine)
        try:
            return asyncio.run(main(engine))
        finally:
            engine.dispose()


def measure_hot_path(z: Sizes) -> dict[str, tuple[float, float]]:
    signed = {curve: session_records(z, curve) for curve in (SECP256K1, SECP256R1)}
    warm = Sizes(z.n, min(z.chargers, 20), 1, 1)
    warm_signed = {c: {k: v[:1] for k, v in list(d.items())[: warm.chargers]} for c, d in signed.items()}
    for mode in MODES:
        hot_path(warm, mode, warm_signed)
    runs: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
    for _ in range(z.runs):  # alternating, so that drift in the machine's load hits every mode alike
        for mode in MODES:
            runs[mode].append(hot_path(z, mode, signed))
    med = statistics.median
    return {mode: (med(x[0] for x in r), med(x[1] for x in r)) for mode, r in runs.items()}


def table(z: Sizes, m: dict[str, float], hot: dict[str, tuple[float, float]]) -> str:
    rows = [
        ("parse, pyocmf strict (`OCMF.from_string`)", f"{m['secp256k1 parse pyocmf']:.1f} µs", "", ""),
        ("parse, Electra (`parse_ocmf`: pyocmf + integer Wh and ms)", f"{m['secp256k1 parse electra']:.1f} µs", "", ""),
        (
            "signature, secp256k1, key parsed once (libsecp256k1)",
            f"{m['secp256k1 signature']:.1f} µs",
            f"OpenSSL, key parsed once: {m['secp256k1 openssl']:.1f} µs; "
            f"pyocmf `verify_signature`: {m['secp256k1 pyocmf verify_signature']:.1f} µs",
            "",
        ),
        (
            "signature, secp256r1, key parsed once (OpenSSL)",
            f"{m['secp256r1 signature']:.1f} µs",
            f"pyocmf `verify_signature`: {m['secp256r1 pyocmf verify_signature']:.1f} µs",
            "",
        ),
        ("**whole check of one signed value, secp256k1 device key**", f"**{m['secp256k1 check']:.1f} µs**", "", ""),
        ("**whole check of one signed value, secp256r1 meter key**", f"**{m['secp256r1 check']:.1f} µs**", "", ""),
        ("learning a device key from a signature (once per charger)", f"{m['secp256k1 recover']:.1f} µs", "", ""),
    ]
    off_cpu = hot["off"][1]
    for mode in (SECP256K1, SECP256R1):
        calls_s, cpu = hot[mode]
        per_record = (cpu - off_cpu) * CALLS_PER_SESSION / CHECKED_PER_SESSION
        rows.append(
            (
                f"OCPP session service, {z.chargers} chargers at once, every reading signed: verified, {mode}",
                f"{calls_s:,.0f} calls/s, {cpu:,.0f} µs CPU per call",
                f"not verified: {hot['off'][0]:,.0f} calls/s, {off_cpu:,.0f} µs CPU per call",
                f"CPU per call {100 * (cpu / off_cpu - 1):+.0f}%, {per_record:,.0f} µs per checked record",
            )
        )
    out = ["| what | electra | baseline (same run) | cost |", "| --- | ---: | --- | --- |"]
    out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(out)


NOTE = """\
Reading it: a check is pyocmf's strict parse (pydantic validation, the largest part with the device
key), Electra's reading of the fields it needs, and one signature with a key parsed once per
charger. pyocmf's own `verify_signature` would cost more than the whole check, since it parses the
key again each time and verifies secp256k1 through OpenSSL's generic code. In the service the cost
per checked record is the check plus its bookkeeping (the outcome stored with the reading, about
10 µs) and the heavier garbage of the parse; with every reading signed, as the simulators do, the
service's CPU per MeterValues call is about three (device key) to four (secp256r1) times as much.
A charger that signs only its begin and end readings (the usual Eichrecht meter) pays it twice per
session. A record sent again (1.6 repeats the begin record at the stop) is not checked again."""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", type=Path, help="rewrite the meter-data section of this markdown file")
    ap.add_argument("--quick", action="store_true", help="smaller sizes (not for the record)")
    args = ap.parse_args()
    z = QUICK if args.quick else Sizes()
    micro = measure_micro(z)
    print(f"micro: {micro}", file=sys.stderr)
    hot = measure_hot_path(z)
    print(f"hot path: {hot}", file=sys.stderr)
    md = table(z, micro, hot)
    print(md)
    if args.write:
        pyocmf_version = importlib.metadata.version("pyocmf")
        title = "## Signed meter data (OCMF) verification"
        block = documented_section(BEGIN, END, title, __doc__, md, NOTE, versions=f", pyocmf {pyocmf_version}")
        write_section(args.write, BEGIN, END, block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
