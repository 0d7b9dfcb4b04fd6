"""What the benchmarks share: a fresh dev chain with Electra deployed, a free port, and rewriting
their own section of docs/benchmarks.md between two markers."""

from __future__ import annotations

import datetime
import os
import platform
import re
import shlex
import socket
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from electra.chain.bindings import Electra
from electra.chain.client import connect
from electra.chain.deploy import deploy
from electra.chain.devchain import DevChain
from electra.config import load_settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def fresh_electra() -> Iterator[Electra]:
    """A fresh anvil dev chain in a temporary data directory, with Electra deployed; stopped after."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(data_dir=Path(tmp), dev_chain_port=free_port())
        dev = DevChain(settings)
        dev.start()
        try:
            client = connect(settings)
            deployment, _ = deploy(client, settings)
            yield Electra.of(client, deployment)
        finally:
            dev.stop()


def write_section(path: Path, begin: str, end: str, block: str) -> None:
    """Replaces the text from ``begin`` to ``end`` in ``path`` with ``block`` (which carries both
    markers), or appends ``block`` if the file has no such section yet."""
    text = path.read_text() if path.exists() else ""
    if begin in text:
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def documented_section(
    begin: str, end: str, title: str, script_doc: str | None, table: str, note: str, versions: str = ""
) -> str:
    """The block a benchmark writes into docs/benchmarks.md: its title, the command as it was run,
    the date and machine, the script's docstring after its first two paragraphs, the table and the
    reading of it. ``versions`` is added to the run line (", pyocmf 0.6.0")."""
    command = " ".join(["python", sys.argv[0], *(shlex.quote(a) for a in sys.argv[1:])])
    today, cores, python = datetime.date.today().isoformat(), os.cpu_count(), platform.python_version()
    run = f"Run: {today}, {cores} cores, Python {python}{versions}."
    doc = (script_doc or "").split("\n\n", 2)[2].strip()
    return "\n".join([begin, title, "", f"Command: `{command}`  ", run, "", doc, "", table, "", note, end])
