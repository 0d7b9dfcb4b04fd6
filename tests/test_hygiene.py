"""Guards on the code itself: one exception root, no swallowed errors."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "electra"
BUILTIN_ERRORS = {"ValueError", "TypeError", "RuntimeError", "Exception", "KeyError"}


def _py_files() -> list[Path]:
    return [p for p in SRC.rglob("*.py") if "migrations" not in p.parts]


def test_no_bare_builtin_raises() -> None:
    """Everything raised on purpose descends from ElectraError (like web3.py's own guard)."""
    offenders = []
    for path in _py_files():
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None and "# protocol:" not in lines[node.lineno - 1]:
                exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(exc, ast.Name) and exc.id in BUILTIN_ERRORS:
                    offenders.append(f"{path.relative_to(SRC)}:{node.lineno} raises {exc.id}")
    assert offenders == []


def test_no_swallowed_exceptions() -> None:
    offenders = []
    for path in _py_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ExceptHandler):
                if node.type is None:
                    offenders.append(f"{path.relative_to(SRC)}:{node.lineno} bare except")
                if len(node.body) == 1 and isinstance(node.body[0], ast.Pass):
                    offenders.append(f"{path.relative_to(SRC)}:{node.lineno} except: pass")
    assert offenders == []
