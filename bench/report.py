"""Pure figures of the benchmark: rates, percentiles, medians, the machine, the JSON and table.

No I/O except reading /proc/cpuinfo for the CPU model.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TARGETS = {
    "chain_rate_min": 5000.0,
    "chain_over_naive_min": 3.0,
    "latency_p99_ms_max": 250.0,
    "rss_mb_max": 300.0,
}
MB = 1024 * 1024


@dataclass(frozen=True)
class PhaseResult:
    """One throughput phase: ``records`` in, ``outputs`` seen, rate from output timestamps."""

    records: int
    outputs: int
    first_ms: int | None
    last_ms: int | None
    rate: float | None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LatencyResult:
    offered_rate: float
    seconds: float
    sent: int
    matched: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    worker_cpu_busy: float | None = None
    broker_cpu_busy: float | None = None


@dataclass(frozen=True)
class RssResult:
    start_mb: float | None
    after_throughput_mb: float | None
    end_mb: float | None
    peak_mb: float
    latency_worker_peak_mb: float | None = None


def rate_of(records: int, first_ms: int | None, last_ms: int | None) -> float | None:
    """records / (last - first) seconds; None when the interval is unknown or empty."""
    if first_ms is None or last_ms is None or last_ms <= first_ms or records <= 0:
        return None
    return records / ((last_ms - first_ms) / 1000.0)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    # nearest rank: the smallest value with at least q% of the values at or below it
    rank = max(1, min(len(ordered), math.ceil(q * len(ordered) / 100)))
    return float(ordered[rank - 1])


def latency_result(latencies_ms: Sequence[float], *, offered_rate: float, seconds: float,
                   sent: int) -> LatencyResult:
    return LatencyResult(
        offered_rate=offered_rate, seconds=seconds, sent=sent, matched=len(latencies_ms),
        p50_ms=percentile(latencies_ms, 50), p95_ms=percentile(latencies_ms, 95),
        p99_ms=percentile(latencies_ms, 99),
        max_ms=max(latencies_ms) if latencies_ms else None)


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
        "load_average_at_start": list(os.getloadavg()),
    }


def run_record(*, run: int, load_average: Sequence[float], limit: PhaseResult,
               naive: PhaseResult, chain: PhaseResult, latency: LatencyResult,
               rss: RssResult, tuned: PhaseResult | None = None,
               latency_loaded: LatencyResult | None = None) -> dict[str, Any]:
    """One run's figures; the ratios are computed here from the measured rates.

    ``latency`` is measured on a fresh broker; ``latency_loaded`` on the throughput worker
    after its backlog, when the broker holds every earlier phase's records."""
    return {
        "run": run,
        "load_average_at_start": list(load_average),
        "limit": asdict(limit),
        "naive": asdict(naive),
        "tuned": None if tuned is None else asdict(tuned),
        "chain": asdict(chain),
        "ratios": {"chain_over_limit": ratio(chain.rate, limit.rate),
                   "chain_over_naive": ratio(chain.rate, naive.rate),
                   "tuned_over_naive": ratio(None if tuned is None else tuned.rate, naive.rate),
                   "chain_over_tuned": ratio(chain.rate, None if tuned is None else tuned.rate)},
        "latency": asdict(latency),
        "latency_loaded": None if latency_loaded is None else asdict(latency_loaded),
        "rss": asdict(rss),
    }


def summarise(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Medians over runs (ratios: the median of the per-run ratios) and the targets met."""
    def col(*path: str) -> list[float | None]:
        out: list[float | None] = []
        for r in runs:
            v: Any = r
            for p in path:
                v = v.get(p) if isinstance(v, dict) else None
            out.append(v)
        return out

    med = {
        "limit_rate": median(col("limit", "rate")),
        "naive_rate": median(col("naive", "rate")),
        "tuned_rate": median(col("tuned", "rate")),
        "chain_rate": median(col("chain", "rate")),
        "chain_over_limit": median(col("ratios", "chain_over_limit")),
        "chain_over_naive": median(col("ratios", "chain_over_naive")),
        "tuned_over_naive": median(col("ratios", "tuned_over_naive")),
        "chain_over_tuned": median(col("ratios", "chain_over_tuned")),
        "latency_p50_ms": median(col("latency", "p50_ms")),
        "latency_p95_ms": median(col("latency", "p95_ms")),
        "latency_p99_ms": median(col("latency", "p99_ms")),
        "latency_loaded_p50_ms": median(col("latency_loaded", "p50_ms")),
        "latency_loaded_p99_ms": median(col("latency_loaded", "p99_ms")),
        "peak_rss_mb": median(col("rss", "peak_mb")),
    }
    peak_max = max((v for v in col("rss", "peak_mb") if v is not None), default=None)

    def at_least(v: float | None, t: float) -> bool | None:
        return None if v is None else v >= t

    def at_most(v: float | None, t: float) -> bool | None:
        return None if v is None else v <= t

    targets = {
        "chain_rate": at_least(med["chain_rate"], TARGETS["chain_rate_min"]),
        "chain_over_naive": at_least(med["chain_over_naive"], TARGETS["chain_over_naive_min"]),
        "latency_p99": at_most(med["latency_p99_ms"], TARGETS["latency_p99_ms_max"]),
        "rss": at_most(peak_max, TARGETS["rss_mb_max"]),
    }
    return {"median": med, "max_peak_rss_mb": peak_max, "targets_met": targets,
            "targets": TARGETS}


def _f(v: Any, fmt: str = "{:,.0f}") -> str:
    return "-" if v is None else fmt.format(v)


def table(report: dict[str, Any]) -> str:
    """A plain-text table of every run and the medians."""
    head = (f"{'run':>6} {'load1':>6} {'limit/s':>9} {'naive/s':>9} {'tuned/s':>9} "
            f"{'chain/s':>9} "
            f"{'c/limit':>8} {'c/naive':>8} {'p50ms':>7} {'p95ms':>7} {'p99ms':>7} "
            f"{'p99L':>7} {'peakMB':>7}")
    lines = [head, "-" * len(head)]
    for r in report["runs"]:
        lines.append(
            f"{r['run']:>6} {_f(r['load_average_at_start'][0], '{:.2f}'):>6} "
            f"{_f(r['limit']['rate']):>9} {_f(r['naive']['rate']):>9} "
            f"{_f((r.get('tuned') or {}).get('rate')):>9} {_f(r['chain']['rate']):>9} "
            f"{_f(r['ratios']['chain_over_limit'], '{:.2f}'):>8} "
            f"{_f(r['ratios']['chain_over_naive'], '{:.2f}'):>8} "
            f"{_f(r['latency']['p50_ms'], '{:.0f}'):>7} {_f(r['latency']['p95_ms'], '{:.0f}'):>7} "
            f"{_f(r['latency']['p99_ms'], '{:.0f}'):>7} "
            f"{_f((r.get('latency_loaded') or {}).get('p99_ms'), '{:.0f}'):>7} "
            f"{_f(r['rss']['peak_mb'], '{:.0f}'):>7}")
    m = report["summary"]["median"]
    lines.append(
        f"{'median':>6} {'':>6} {_f(m['limit_rate']):>9} {_f(m['naive_rate']):>9} "
        f"{_f(m.get('tuned_rate')):>9} {_f(m['chain_rate']):>9} "
        f"{_f(m['chain_over_limit'], '{:.2f}'):>8} "
        f"{_f(m['chain_over_naive'], '{:.2f}'):>8} {_f(m['latency_p50_ms'], '{:.0f}'):>7} "
        f"{_f(m['latency_p95_ms'], '{:.0f}'):>7} {_f(m['latency_p99_ms'], '{:.0f}'):>7} "
        f"{_f(m.get('latency_loaded_p99_ms'), '{:.0f}'):>7} "
        f"{_f(m['peak_rss_mb'], '{:.0f}'):>7}")
    lines.append("p50/p95/p99: latency on a fresh broker; p99L: after the throughput backlog, "
                 "the broker holding every earlier phase's records")
    t = report["summary"]["targets_met"]
    lines.append("targets: " + ", ".join(f"{k}={'-' if v is None else ('met' if v else 'MISSED')}"
                                         for k, v in t.items()))
    soak = report.get("soak")
    if soak:
        lines.append(f"soak {soak['seconds']:.0f} s at {soak['latency']['offered_rate']:.0f}/s: "
                     f"RSS start {_f(soak['rss']['start_mb'], '{:.0f}')} MB, end "
                     f"{_f(soak['rss']['end_mb'], '{:.0f}')} MB, peak "
                     f"{_f(soak['rss']['peak_mb'], '{:.0f}')} MB; p99 "
                     f"{_f(soak['latency']['p99_ms'], '{:.0f}')} ms")
    return "\n".join(lines)
