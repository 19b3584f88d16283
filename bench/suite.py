"""One benchmark invocation: data generated once, R runs of limit/naive/tuned/chain, each on a
fresh broker and registry, and the report (JSON-ready dict) with per-run figures, medians and
the machine."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.chain import run_chain
from bench.data import (
    AGENCY,
    DATASET,
    Workload,
    generate_workload,
    raw_schema,
    reference_catalog,
)
from bench.harness import CATALOG_DIR, SCHEMAS_DIR, Stack, load_average, running_stack
from bench.hops import run_limit, run_naive, run_tuned
from bench.report import machine_info, run_record, summarise
from shulian.errors import RegistryError
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
    catalog = reference_catalog(CATALOG_DIR, SCHEMAS_DIR)
    subject = f"raw.{AGENCY}.{DATASET}-value"
    schema_text = json.dumps(raw_schema(catalog, SCHEMAS_DIR))
    workload: Workload | None = None
    runs: list[dict[str, Any]] = []
    soak: dict[str, Any] | None = None
    for run in range(1, params.runs + 1):
        # A fresh broker and registry per run: the embedded broker's memory engine keeps every
        # record and costs more per request as its log grows, so on one shared broker each run
        # (and the latency phase above all) would be measured against all earlier runs' data.
        with running_stack(keep_workdir=keep_workdir) as stack:
            echo(f"run {run}/{params.runs}: broker {stack.bootstrap}, registry "
                 f"{stack.registry_url}, logs {stack.workdir}")
            schema_id = SchemaCache(stack.registry_url).register(subject, schema_text)
            if workload is None:
                t0 = time.monotonic()
                workload = generate_workload(
                    catalog, SCHEMAS_DIR, schema_id=schema_id, records=params.records,
                    latency_records=max(1, int(params.latency_rate * params.latency_seconds)),
                    invalid_rate=params.invalid_rate)
                echo(f"generated {params.records} records ({workload.throughput.invalid} "
                     f"invalid) in {time.monotonic() - t0:.1f} s")
            elif schema_id != workload.schema_id:
                raise RegistryError(f"run {run}: the fresh registry gave schema id {schema_id}, "
                                    f"the generated records carry {workload.schema_id}")
            record, run_soak = _one_run(stack, workload, params, run=run, echo=echo)
            runs.append(record)
            soak = run_soak or soak
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


def _one_run(stack: Stack, workload: Workload, params: BenchParams, *, run: int, echo: Echo
             ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """limit, naive, tuned and chain on one stack; the soak only on the last run."""
    load = load_average()
    echo(f"  load average {load[0]:.2f}")
    limit = run_limit(stack, workload, run=run)
    echo(f"  limit  {limit.rate or 0:>10,.0f} rec/s")
    naive = run_naive(stack, workload, run=run)
    echo(f"  naive  {naive.rate or 0:>10,.0f} rec/s")
    tuned = run_tuned(stack, workload, run=run)
    echo(f"  tuned  {tuned.rate or 0:>10,.0f} rec/s")
    chain = run_chain(stack, workload, run=run, latency_rate=params.latency_rate,
                      latency_seconds=params.latency_seconds,
                      soak_seconds=params.soak_seconds if run == params.runs else 0.0,
                      partitions=params.partitions)
    echo(f"  chain  {chain.throughput.rate or 0:>10,.0f} rec/s; latency p50/p95/p99 "
         f"{chain.latency.p50_ms or 0:.0f}/{chain.latency.p95_ms or 0:.0f}/"
         f"{chain.latency.p99_ms or 0:.0f} ms; peak RSS {chain.rss.peak_mb:.0f} MB")
    return (run_record(run=run, load_average=load, limit=limit, naive=naive,
                       chain=chain.throughput, latency=chain.latency, rss=chain.rss,
                       tuned=tuned), chain.soak)


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
