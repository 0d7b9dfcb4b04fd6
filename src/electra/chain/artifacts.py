"""The compiled contracts, committed inside the package (see contracts/compile.js)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

ARTIFACTS_DIR = Path(__file__).parent / "artifacts"


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str


@cache
def load(name: str) -> Artifact:
    data = json.loads((ARTIFACTS_DIR / f"{name}.json").read_text())
    return Artifact(name, data["abi"], data["bytecode"], data["deployedBytecode"])


@cache
def names() -> tuple[str, ...]:
    index = json.loads((ARTIFACTS_DIR / "index.json").read_text())
    return tuple(index["contracts"])
