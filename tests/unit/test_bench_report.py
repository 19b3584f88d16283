"""Pure figures of the benchmark report."""

from __future__ import annotations

import pytest

from shulian.bench.chain import Progress, parse_metrics
from shulian.bench.report import (
    LatencyResult,
    PhaseResult,
    RssResult,
    percentile,
    rate_of,
    run_record,
    summarise,
    table,
)


def test_percentile_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def test_rate_of() -> None:
    assert rate_of(1000, 0, 500) == pytest.approx(2000.0)
    assert rate_of(1000, 10, 10) is None
    assert rate_of(1000, None, 10) is None


def _run(run: int, limit: float, naive: float, chain: float) -> dict[str, object]:
    def ph(rate: float) -> PhaseResult:
        return PhaseResult(records=10, outputs=10, first_ms=0, last_ms=1, rate=rate)
    return run_record(run=run, load_average=(1.0, 1.0, 1.0), limit=ph(limit), naive=ph(naive),
                      chain=ph(chain),
                      latency=LatencyResult(1000, 5, 10, 10, 10.0, 20.0, 30.0, 40.0),
                      rss=RssResult(100.0, 110.0, 111.0, 120.0))


def test_summary_medians_of_per_run_ratios() -> None:
    runs = [_run(1, 50000, 2000, 6000), _run(2, 40000, 2500, 5000), _run(3, 60000, 1000, 9000)]
    s = summarise(runs)
    assert s["median"]["chain_rate"] == 6000
    assert s["median"]["chain_over_naive"] == pytest.approx(3.0)  # ratios 3.0, 2.0, 9.0
    assert s["targets_met"] == {"chain_rate": True, "chain_over_naive": True,
                                "latency_p99": True, "rss": True}
    text = table({"runs": runs, "summary": s})
    assert "median" in text and "6,000" in text


def test_progress_from_metrics_text() -> None:
    text = "\n".join([
        "# HELP shulian_raw_records_total raw",
        "shulian_raw_records_total 100.0",
        "shulian_canonical_records_total 97.0",
        'shulian_deadletter_records_total{reason="bad_code"} 2.0',
        'shulian_deadletter_records_total{reason="canonical"} 5.0',
        'shulian_decisions_total{outcome="deliver"} 200.0',
    ])
    p = Progress.of(parse_metrics(text))
    assert (p.raw, p.canonical, p.ingest_rejected, p.delivered) == (100, 97, 2, 200)
    assert not p.settled(100)
    assert Progress(100, 98, 2, 0, 0).settled(100)
