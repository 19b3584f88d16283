"""Tests import shared helpers from tests/fixtures, never from other test files (a helper in a
test module is found by nobody, and importing a test module runs its collection twice)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
TIERS = ("tests.unit", "tests.integration", "tests.reliability")


def test_no_test_file_imports_another() -> None:
    found = []
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            found += [f"{path.relative_to(TESTS)}: {n}" for n in names if n.startswith(TIERS)]
    assert not found, "move the helpers into tests/fixtures: " + ", ".join(found)
