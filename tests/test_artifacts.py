"""The committed artifacts are exactly what the pinned solcjs makes of the committed sources."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from electra.chain import artifacts

ROOT = Path(__file__).resolve().parents[1]


def test_recompiling_gives_byte_identical_artifacts(tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node, "node is needed to recompile; `make test` installs the npm dependencies"
    proc = subprocess.run(
        [node, str(ROOT / "contracts" / "compile.js"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    committed = sorted(p.name for p in artifacts.ARTIFACTS_DIR.glob("*.json"))
    fresh = sorted(p.name for p in tmp_path.glob("*.json"))
    assert committed == fresh
    for name in committed:
        assert (tmp_path / name).read_bytes() == (artifacts.ARTIFACTS_DIR / name).read_bytes(), name


@pytest.mark.parametrize(
    "name",
    ["ElectraToken", "ElectraGovernor", "ElectraTimelock", "StationRegistry", "VehicleLedger"],
)
def test_artifacts_fit_the_code_size_limit(name: str) -> None:
    art = artifacts.load(name)
    assert art.abi and art.bytecode.startswith("0x6")
    assert 0 < (len(art.deployed_bytecode) - 2) // 2 <= 24_576
