"""One benchmark invocation: stack up, data generated once, R runs of limit/naive/chain, the
report (JSON-ready dict) with per-run figures, medians and the machine."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.chain import run_chain
from bench.data import AGENCY, DATASET, generate_workload, raw_schema, reference_catalog
from bench.harness import CATALOG_DIR, SCHEMAS_DIR, load_average, running_stack
from bench.hops import run_limit, run_naive, run_tuned
from bench.report import machine_info, run_record, summarise
from shulian.serde import SchemaCache


@dataclass(frozen=True)
class BenchParams:
    records: int = 50_000
    runs: int = 3
    latency_rate: float = 1000.0
    latency_seconds: float = 15.0
    soak_seconds: float = 0.0
    invalid_rate: float = 0.01
    partitions: int = 3


Echo = Callable[[str], None]


def run_benchmark(params: BenchParams, *, echo: Echo = print,
                  keep_workdir: bool = False) -> dict[str, Any]:
    machine = machine_info()
    started = time.time()
    with running_stack(keep_workdir=keep_workdir) as stack:
        echo(f"stack: broker {stack.bootstrap}, registry {stack.registry_url}, "
             f"logs {stack.workdir}")
        catalog = reference_catalog(CATALOG_DIR, SCHEMAS_DIR)
        schema_id = SchemaCache(stack.registry_url).register(
            f"raw.{AGENCY}.{DATASET}-value", json.dumps(raw_schema(catalog, SCHEMAS_DIR)))
        t0 = time.monotonic()
        workload = generate_workload(
            catalog, SCHEMAS_DIR, schema_id=schema_id, records=params.records,
            latency_records=max(1, int(params.latency_rate * params.latency_seconds)),
            invalid_rate=params.invalid_rate)
        echo(f"generated {params.records} records ({workload.throughput.invalid} invalid) "
             f"in {time.monotonic() - t0:.1f} s")
        runs: list[dict[str, Any]] = []
        soak: dict[str, Any] | None = None
        for run in range(1, params.runs + 1):
            load = load_average()
            echo(f"run {run}/{params.runs}: load average {load[0]:.2f}")
            limit = run_limit(stack, workload, run=run)
            echo(f"  limit  {limit.rate or 0:>10,.0f} rec/s")
            naive = run_naive(stack, workload, run=run)
            echo(f"  naive  {naive.rate or 0:>10,.0f} rec/s")
            tuned = run_tuned(stack, workload, run=run)
            echo(f"  tuned  {tuned.rate or 0:>10,.0f} rec/s")
            last = run == params.runs
            chain = run_chain(stack, workload, run=run, latency_rate=params.latency_rate,
                              latency_seconds=params.latency_seconds,
                              soak_seconds=params.soak_seconds if last else 0.0,
                              partitions=params.partitions)
            echo(f"  chain  {chain.throughput.rate or 0:>10,.0f} rec/s; latency p50/p95/p99 "
                 f"{chain.latency.p50_ms or 0:.0f}/{chain.latency.p95_ms or 0:.0f}/"
                 f"{chain.latency.p99_ms or 0:.0f} ms; peak RSS {chain.rss.peak_mb:.0f} MB")
            runs.append(run_record(run=run, load_average=load, limit=limit, naive=naive,
                                   chain=chain.throughput, latency=chain.latency,
                                   rss=chain.rss, tuned=tuned))
            if chain.soak is not None:
                soak = chain.soak
    return {
        "command": "shulian bench",
        "params": asdict(params),
        "machine": machine,
        "started_at": started,
        "duration_s": round(time.time() - started, 1),
        "runs": runs,
        "summary": summarise(runs),
        "soak": soak,
    }


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
