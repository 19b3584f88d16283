"""`shulian bench` end to end with a tiny workload: the harness runs, every phase produces its
outputs, the JSON carries every figure, ratios come from the measured rates, each run has its
own broker and registry. No timing is asserted (the figures depend on the machine)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(300)


def test_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "shulian.cli.main", "bench", "--records", "2000", "--runs", "2",
         "--seconds", "2", "--latency-rate", "200", "--json", str(out)],
        capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["machine"]["cores"] >= 1 and report["machine"]["python"]
    assert len(report["machine"]["load_average_at_start"]) == 3
    assert [r["run"] for r in report["runs"]] == [1, 2]
    # per run: one broker for the throughput phases, another for the latency phase
    brokers = re.findall(r"^run \d/2(?: latency)?: broker (\S+),", proc.stdout, re.MULTILINE)
    assert len(brokers) == 4 and len(set(brokers)) == 4, proc.stdout
    for run in report["runs"]:
        _check_run(run)
    med = report["summary"]["median"]
    rates = sorted(r["chain"]["rate"] for r in report["runs"])
    assert med["chain_rate"] == pytest.approx(sum(rates) / 2)
    assert set(report["summary"]["targets_met"]) == {"chain_rate", "chain_over_naive",
                                                     "latency_p99", "rss"}
    assert "median" in proc.stdout and "limit/s" in proc.stdout and "tuned/s" in proc.stdout


def _check_run(run: dict[str, Any]) -> None:
    for hop in ("limit", "naive", "tuned"):
        assert run[hop]["records"] == 2000 and run[hop]["outputs"] == 2000
        assert run[hop]["rate"] > 0
    chain = run["chain"]
    d = chain["detail"]
    assert chain["records"] == 2000
    assert d["valid_generated"] + d["invalid_generated"] == 2000
    assert d["canonical"] + d["deadletter"] == 2000
    assert d["canonical"] == d["metrics_canonical"] == d["valid_generated"]
    assert d["audit"] == 4 * d["canonical"]  # four list entries, one decision each
    assert d["egress"] == d["metrics_delivered"]
    full = [n for t, n in d["egress_by_topic"].items() if ".egress.tax." in t]
    none = [n for t, n in d["egress_by_topic"].items() if ".egress.psb." in t]
    assert full == [d["canonical"]] and none == [0]
    assert run["ratios"]["chain_over_limit"] == pytest.approx(chain["rate"] / run["limit"]["rate"])
    assert run["ratios"]["chain_over_naive"] == pytest.approx(chain["rate"] / run["naive"]["rate"])
    assert run["ratios"]["chain_over_tuned"] == pytest.approx(chain["rate"] / run["tuned"]["rate"])
    for lat in (run["latency"], run["latency_loaded"]):
        assert lat["sent"] == 400 and lat["matched"] == 400
        assert 0 < lat["p50_ms"] <= lat["p95_ms"] <= lat["p99_ms"] <= lat["max_ms"]
        assert lat["worker_cpu_busy"] > 0 and lat["broker_cpu_busy"] > 0
    rss = run["rss"]
    assert rss["peak_mb"] >= max(rss["start_mb"], rss["end_mb"], rss["latency_worker_peak_mb"])
    assert rss["start_mb"] > 0 and rss["latency_worker_peak_mb"] > 0
