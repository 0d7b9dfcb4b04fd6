"""The embedded dev chain: an anvil process whose state persists under the data directory.

anvil loads ``<data_dir>/chain/state.json`` at start, dumps it every few seconds and again when it
exits on SIGTERM/SIGINT. A dev chain that already answers on the configured port is reused, not
started twice.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from electra.config import ANVIL_CHAIN_ID, Settings
from electra.errors import DevChainError

STATE_INTERVAL_S = 2
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class ChainHealth:
    rpc_url: str
    chain_id: int
    block_number: int
    client_version: str


def probe(rpc_url: str, timeout_s: float = 1.0) -> ChainHealth | None:
    """Asks the endpoint who it is; None if nothing answers."""

    def call(method: str) -> str:
        r = requests.post(
            rpc_url,
            json={"jsonrpc": "2.0", "id": 1, "method": method, "params": []},
            timeout=timeout_s,
        )
        r.raise_for_status()
        return str(r.json()["result"])

    try:
        return ChainHealth(
            rpc_url,
            int(call("eth_chainId"), 16),
            int(call("eth_blockNumber"), 16),
            call("web3_clientVersion"),
        )
    except (requests.RequestException, ValueError, KeyError):
        return None


def find_anvil(settings: Settings) -> Path:
    if settings.anvil_bin is not None:
        if not settings.anvil_bin.exists():
            raise DevChainError(f"ELECTRA_ANVIL_BIN {settings.anvil_bin} does not exist", "fix the path or unset it")
        return settings.anvil_bin
    roots = [Path.cwd(), *Path.cwd().parents, Path(__file__).resolve().parents[3]]
    for root in roots:
        for candidate in sorted((root / "node_modules" / "@foundry-rs").glob("anvil-*/bin/anvil")):
            if os.access(candidate, os.X_OK):
                return candidate
    on_path = shutil.which("anvil")
    if on_path:
        return Path(on_path)
    raise DevChainError(
        "anvil not found (looked in node_modules/@foundry-rs and on PATH)",
        "run `make run` or `npm ci` in the repository, or set ELECTRA_ANVIL_BIN",
    )


class DevChain:
    """Starts, reuses, inspects and stops the dev chain of one data directory."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dir = settings.chain_dir
        self.state_file = self.dir / "state.json"
        self.pid_file = self.dir / "anvil.pid"
        self.log_file = self.dir / "anvil.log"
        self.rpc_url = f"http://{settings.dev_chain_host}:{settings.dev_chain_port}"
        self.process: subprocess.Popen[bytes] | None = None

    def health(self) -> ChainHealth | None:
        return probe(self.rpc_url)

    def start(self) -> tuple[ChainHealth, bool]:
        """Starts anvil unless a dev chain already answers. Returns (health, started_by_us)."""
        existing = self.health()
        if existing is not None:
            if existing.chain_id != ANVIL_CHAIN_ID:
                raise DevChainError(
                    f"port {self.settings.dev_chain_port} answers as chain id {existing.chain_id}, not a dev chain",
                    "stop that node or set ELECTRA_DEV_CHAIN_PORT to a free port",
                )
            return existing, False
        anvil = find_anvil(self.settings)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            log = self.log_file.open("ab")
        except OSError as exc:
            raise DevChainError(f"cannot write to {self.dir}: {exc.strerror}", "check ELECTRA_DATA_DIR") from exc
        cmd = [
            str(anvil),
            "--host",
            self.settings.dev_chain_host,
            "--port",
            str(self.settings.dev_chain_port),
            "--chain-id",
            str(ANVIL_CHAIN_ID),
            "--state",
            str(self.state_file),
            "--state-interval",
            str(STATE_INTERVAL_S),
        ]
        # A session of its own: Ctrl-C in the terminal reaches Electra, which then stops anvil
        # with SIGTERM so it dumps its state once, in order.
        with log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.pid_file.write_text(f"{self.process.pid}\n")
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            health = self.health()
            if health is not None:
                return health, True
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        tail = self._log_tail()
        self.stop()
        raise DevChainError(
            f"anvil did not start on {self.rpc_url}: {tail or 'no output'}",
            f"see {self.log_file}; if the state file is damaged, move {self.state_file} aside",
        )

    def stop(self) -> bool:
        """Stops the dev chain of this data directory, letting it dump its state. True if one ran."""
        pid = self.process.pid if self.process is not None else self._pid_from_file()
        if pid is None:
            return False
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            self.pid_file.unlink(missing_ok=True)
            return False
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is not None:
                if self.process.poll() is not None:
                    break
            elif not _alive(pid):
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        self.process = None
        return True

    def _pid_from_file(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1][:200] if lines else ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True
