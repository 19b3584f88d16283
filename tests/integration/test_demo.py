"""README's first command: `shulian demo` starts the stack, plays the scenario, exits 0.

The suite's one demo run also checks that no personal data reaches any log: the demo's own
output and every child process's log file (broker, registry, worker under the demo's log
directory) are searched for the citizen IDs, credit codes, names and phone numbers of the
records the demo published (regenerated from the same seed; the regenerated counts must equal
the demo's published table, so the search covers what was really sent).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shulian.catalog.load import load_catalog
from shulian.settings import REPO_ROOT
from tests.fixtures.pii import generate_like_publisher, leaks, log_lines, personal_values

pytestmark = [pytest.mark.integration, pytest.mark.both_engines]
PAIRS = len(load_catalog(REPO_ROOT / "catalog", schemas_dir=REPO_ROOT / "schemas").mappings)
RECORDS, GARBAGE, SEED, INVALID_RATE = 15, 5, 3, 0.05  # per agency dataset


def test_demo_prints_measured_table_and_exits_0_and_logs_no_personal_data(engine: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "shulian.cli.main", "demo",
         "--records", str(PAIRS * (RECORDS + GARBAGE)), "--garbage", str(GARBAGE),
         "--seed", str(SEED), "--invalid-rate", str(INVALID_RATE), "--engine", engine],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "SHULIAN_LOG_FORMAT": "json", "COLUMNS": "160"},
    )
    found = re.search(r"logs in ([^\s)]+)\)", proc.stdout)
    log_dir = Path(found.group(1)) if found else None
    try:
        broker_log = log_dir / "broker.log" if log_dir is not None else None
        assert proc.returncode == 0, (
            proc.stdout[-3000:] + proc.stderr[-3000:]
            + (broker_log.read_text(errors="replace")[-3000:]
               if broker_log is not None and broker_log.exists() else ""))
        out = proc.stdout
        assert "Published by agencies" in out
        assert "Decisions under sharing list" in out
        assert f"published {PAIRS * (RECORDS + GARBAGE)} records" in out  # --records N is N
        assert "share_type_none" in out  # the list's `none` entry withheld everything
        assert "清单规定不予共享" in out  # ... and the legend says so in words
        assert "element_check_failed" in out and "empty_value" in out
        assert "unknown_schema_id" in out
        assert ", 0 breaks" in out

        # --- no personal data in any log
        assert log_dir is not None and log_dir.is_dir(), out[:500]
        files = [p for p in log_dir.rglob("*") if p.is_file()]
        names = {p.name for p in files}
        assert {"broker.log", "registry.log", "worker.log", "demo.log"} <= names, names
        catalog = load_catalog(REPO_ROOT / "catalog", schemas_dir=REPO_ROOT / "schemas")
        generated = generate_like_publisher(catalog, records=RECORDS,
                                            invalid_rate=INVALID_RATE, seed=SEED)
        for (agency, dataset), gs in generated.items():
            valid = sum(g.valid for g in gs)
            name = catalog.agencies[agency].name  # type: ignore[index]
            row = (rf"{name} \({agency}\)\s*│\s*{dataset}\s*│\s*{valid}\s*│\s*"
                   rf"{RECORDS - valid}\s*│\s*{GARBAGE}\s*│")
            assert re.search(row, out), f"demo published other records than regenerated: {row}"
        values = personal_values(catalog, [(p, g.raw) for p, gs in generated.items()
                                           for g in gs])
        assert len(values) > 50
        lines = log_lines(files, [proc.stdout, proc.stderr])
        worker_lines = log_lines([log_dir / "worker.log"])
        assert any("record.rejected" in line for line in worker_lines)
        hits = leaks(values, lines)
        assert not hits, hits[:5]
    finally:
        if log_dir is not None and log_dir.name.startswith("shulian-demo-"):
            shutil.rmtree(log_dir, ignore_errors=True)
