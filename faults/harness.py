"""What every scenario shares: the report of checks, processes on loopback, a dev chain."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from electra.errors import ElectraError

ROOT = Path(__file__).resolve().parent.parent


class FaultSetupError(ElectraError):
    """A scenario could not set up what it breaks (not a finding about the platform)."""


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Report:
    """What one scenario did and checked; printed as it goes."""

    scenario: str
    quick: bool
    checks: list[Check] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0

    def did(self, line: str) -> None:
        print(f"  - {line}", flush=True)

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, bool(ok), detail))
        print(f"  [{'ok' if ok else 'FAIL'}] {name}{': ' + detail if detail else ''}", flush=True)
        return bool(ok)

    def equal(self, name: str, got: Any, expected: Any) -> bool:
        return self.check(name, got == expected, f"{got} (expected {expected})" if got != expected else f"{got}")

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def finish(self) -> None:
        self.seconds = time.monotonic() - self.started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child process: this one without the developer's ELECTRA_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELECTRA_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra or {})
    return env


class Child:
    """A child process whose stdout lines are read on a thread (so its pipe never fills) and
    whose first line announcing readiness is awaited."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, name: str = "") -> None:
        self.name = name or Path(args[1] if len(args) > 1 else args[0]).name
        self.proc = subprocess.Popen(
            args,
            env=env or env_for(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            cwd=ROOT,
        )
        self.lines: list[str] = []
        self._new = threading.Condition()
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        self._reader.start()

    def _read(self, out: IO[str] | None) -> None:
        assert out is not None
        for line in out:
            with self._new:
                self.lines.append(line.rstrip("\n"))
                self._new.notify_all()
        with self._new:
            self._new.notify_all()

    def wait_line(self, prefix: str, timeout_s: float, after: int = 0) -> str:
        """The first line from index ``after`` on that starts with ``prefix``."""
        deadline = time.monotonic() + timeout_s
        with self._new:
            while True:
                for line in self.lines[after:]:
                    if line.startswith(prefix):
                        return line
                if self.proc.poll() is not None and not self._reader.is_alive():
                    tail = "\n".join(self.lines[-15:])
                    raise FaultSetupError(f"{self.name} exited ({self.proc.returncode}) before {prefix!r}:\n{tail}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise FaultSetupError(f"{self.name} did not print {prefix!r} within {timeout_s:.0f} s")
                self._new.wait(min(left, 0.5))

    def json_line(self, prefix: str, timeout_s: float, after: int = 0) -> dict[str, Any]:
        line = self.wait_line(prefix, timeout_s, after)
        return dict(json.loads(line[len(prefix) :]))

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self, timeout_s: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(5)
        return int(self.proc.returncode)


@contextlib.contextmanager
def children() -> Iterator[list[Child]]:
    """Every child started into the list is stopped on the way out, whatever happened."""
    started: list[Child] = []
    try:
        yield started
    finally:
        for child in reversed(started):
            child.stop(30)


def python(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
