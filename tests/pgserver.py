"""A throwaway PostgreSQL cluster for the tests: initdb into a temp dir, start on a free port, stop, delete.

It never touches a cluster the Debian package may have set up on port 5432. The server listens on
127.0.0.1 only, with its unix socket inside the temp dir, trusts TCP connections from 127.0.0.1 and
nothing else, and runs with fsync off. As root (CI), initdb refuses to run, so the binaries run as
the ``postgres`` system user via ``runuser``.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql

PG_ROOT = Path("/usr/lib/postgresql")
SUPERUSER = "postgres"
INSTALL_HINT = "run `make pg-deps` (it installs Debian's postgresql package) and try again"


class PostgresUnavailable(Exception):
    """The throwaway cluster cannot be created or started."""


def find_bin_dir(root: Path = PG_ROOT) -> Path:
    """The newest ``<root>/<version>/bin`` that has both initdb and pg_ctl."""
    found = []
    for initdb in root.glob("*/bin/initdb"):
        bin_dir = initdb.parent
        version = tuple(int(part) for part in re.findall(r"\d+", bin_dir.parent.name))
        if version and (bin_dir / "pg_ctl").is_file():
            found.append((version, bin_dir))
    if not found:
        raise PostgresUnavailable(f"no PostgreSQL server binaries (initdb, pg_ctl) under {root}/*/bin; {INSTALL_HINT}")
    return max(found)[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One cluster in a private temp dir. ``start()`` then ``url(db)``; ``stop()`` removes everything."""

    def __init__(self, bin_dir: Path | None = None) -> None:
        self.bin_dir = bin_dir or find_bin_dir()
        self.base: Path | None = None
        self.port: int | None = None
        self.run_as: str | None = None
        self.running = False

    @property
    def data_dir(self) -> Path:
        assert self.base is not None, "the cluster has not been created"
        return self.base / "data"

    @property
    def log_file(self) -> Path:
        assert self.base is not None, "the cluster has not been created"
        return self.base / "server.log"

    def url(self, database: str, driver: str = "postgresql+psycopg") -> str:
        assert self.port is not None, "the cluster has not been started"
        return f"{driver}://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection:
        """An autocommit psycopg connection as the superuser, for CREATE/DROP DATABASE."""
        assert self.port is not None, "the cluster has not been started"
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, dbname=database, autocommit=True, connect_timeout=5
        )

    def create_database(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop_database(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def start(self) -> None:
        """initdb, configure and start the cluster; on failure everything made so far is removed."""
        try:
            self._create()
            self._start_on_free_port()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stops the server (fast shutdown) if it runs, then deletes the temp dir."""
        if self.base is None:
            return
        try:
            if self.running:
                self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30")
                self.running = False
        finally:
            shutil.rmtree(self.base)
            self.base = None

    def _create(self) -> None:
        owner = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam(SUPERUSER)
            except KeyError:
                raise PostgresUnavailable(
                    f"running as root, but there is no `{SUPERUSER}` system user to run initdb as "
                    f"(initdb refuses root); {INSTALL_HINT}, which creates that user"
                ) from None
            if shutil.which("runuser") is None:
                raise PostgresUnavailable("running as root, but `runuser` (util-linux) is missing to drop to postgres")
            self.run_as = SUPERUSER
        # mkdtemp in the system temp dir (world-traversable), not under pytest's 0700 basetemp,
        # so the postgres user can reach it; it stays 0700 itself.
        self.base = Path(tempfile.mkdtemp(prefix="electra-pg-"))
        if owner is not None:
            os.chown(self.base, owner.pw_uid, owner.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        )
        # TCP from 127.0.0.1 only; no socket or other-host rules at all.
        (self.data_dir / "pg_hba.conf").write_text("host all all 127.0.0.1/32 trust\n")

    def _configure(self, port: int) -> None:
        settings = {
            "port": str(port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.base}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "50",
        }
        lines = [f"{key} = {value}" for key, value in settings.items()]
        (self.data_dir / "postgresql.auto.conf").write_text("\n".join(lines) + "\n")

    def _start_on_free_port(self, attempts: int = 3) -> None:
        """A free port can be taken between probing and binding it; then try another one."""
        for attempt in range(attempts):
            port = _free_port()
            self._configure(port)
            try:
                self._run("pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "30")
            except PostgresUnavailable:
                log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
                if "could not bind" in log and attempt + 1 < attempts:
                    continue
                raise
            self.port = port
            self.running = True
            return

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin_dir / tool), *args]
        if self.run_as is not None:
            cmd = ["runuser", "-u", self.run_as, "--", *cmd]
        # cwd: the postgres user may not be allowed into the caller's working directory.
        proc = subprocess.run(cmd, cwd=self.base, capture_output=True, text=True, timeout=60, check=False)
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip()
            if self.log_file.exists():
                detail += "\nserver log:\n" + self.log_file.read_text(errors="replace")[-2000:]
            raise PostgresUnavailable(f"`{' '.join(cmd)}` failed with exit code {proc.returncode}:\n{detail}")
