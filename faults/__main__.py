"""`python -m faults [--quick] [SCENARIO ...]`: runs the fault scenarios, prints every check, and
exits 1 if one failed (see faults/__init__.py)."""

from __future__ import annotations

import argparse
import importlib
import logging
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from websockets.exceptions import ConnectionClosed

from faults.harness import Report


class _ClosedCallsAtShutdown(logging.Filter):
    """The `ocpp` library leaves a simulated charger's call future unretrieved when its connection
    closes while the fleet shuts down; asyncio logs that as an error. Only that one is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = getattr(record, "exc_info", None)
        return not (exc and isinstance(exc[1], ConnectionClosed) and "never retrieved" in record.getMessage())


SCENARIOS = ("kill9", "chain_outage", "reorg", "db_restart", "storm", "disk")


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m faults", description=__doc__.splitlines()[0])
    ap.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=f"default: all of {', '.join(SCENARIOS)}")
    ap.add_argument("--quick", action="store_true", help="short outages and small fleets, for CI")
    ap.add_argument("--keep", action="store_true", help="keep each scenario's working directory")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR, format="    log %(levelname)s %(name)s: %(message)s")
    logging.getLogger("asyncio").addFilter(_ClosedCallsAtShutdown())
    names = args.scenarios or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    reports: list[Report] = []
    t0 = time.monotonic()
    for name in names:
        module = importlib.import_module(f"faults.{name}")
        print(f"\n== {name}{' (quick)' if args.quick else ''}: {module.__doc__.strip().splitlines()[0]}", flush=True)
        report = Report(name, args.quick)
        workdir = Path(tempfile.mkdtemp(prefix=f"electra-faults-{name}-"))
        try:
            module.run(report, workdir)
        except Exception as exc:  # noqa: BLE001 - a scenario that broke is a failed check, and the others still run
            traceback.print_exc()
            report.check("the scenario ran to its end", False, f"{type(exc).__name__}: {exc}")
        finally:
            report.finish()
            if not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)
        reports.append(report)
        passed = sum(c.ok for c in report.checks)
        print(f"   {name}: {passed}/{len(report.checks)} checks passed in {report.seconds:.0f} s", flush=True)
    print("\n== summary")
    for r in reports:
        failed = [c.name for c in r.checks if not c.ok]
        state = "passed" if r.passed else "FAILED: " + "; ".join(failed)
        print(f"   {r.scenario:<13} {r.seconds:6.0f} s  {len(r.checks):3d} checks  {state}")
    checks = [c for r in reports for c in r.checks]
    ok = sum(c.ok for c in checks)
    print(f"   {len(reports)} scenario(s) in {time.monotonic() - t0:.0f} s")
    print(f"faults: {ok} passed, {len(checks) - ok} failed", flush=True)
    return 0 if all(r.passed for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
