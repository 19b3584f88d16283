"""README's first command: `shulian demo` starts the stack, plays the scenario, exits 0."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_demo_prints_measured_table_and_exits_0() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "shulian.cli.main", "demo", "--records", "15", "--seed", "3"],
        capture_output=True, text=True, timeout=300,
        env={**__import__("os").environ, "SHULIAN_LOG_FORMAT": "json", "COLUMNS": "160"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "Published by agencies" in out
    assert "Decisions under sharing list" in out
    assert "share_type_none" in out  # the list's `none` entry withheld everything
    assert "element_check_failed" in out and "empty_value" in out
    assert "unknown_schema_id" in out
    assert ", 0 breaks" in out
