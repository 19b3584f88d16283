"""One benchmark invocation: data generated once; R runs, each of limit/naive/tuned/chain on a
fresh broker and registry, then the chain's latency phase on another fresh one; the report
(JSON-ready dict) with per-run figures, medians and the machine."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from shulian.bench.chain import run_chain, run_chain_latency
from shulian.bench.data import (
    AGENCY,
    DATASET,
    Workload,
    generate_workload,
    raw_schema,
    reference_catalog,
)
from shulian.bench.harness import CATALOG_DIR, SCHEMAS_DIR, Stack, load_average, running_stack
from shulian.bench.hops import run_limit, run_naive, run_tuned
from shulian.bench.report import LatencyResult, machine_info, run_record, summarise
from shulian.bench.scaleout import run_workers
from shulian.errors import RegistryError
from shulian.serde import SchemaCache
from shulian.settings import BrokerEngine


@dataclass(frozen=True)
class BenchParams:
    records: int = 50_000
    runs: int = 3
    latency_rate: float = 1000.0
    latency_seconds: float = 15.0
    soak_seconds: float = 0.0
    invalid_rate: float = 0.01
    partitions: int = 3
    engine: BrokerEngine = "tansu"
    scale_out: int = 0  # >1: also the chain with 1 and with this many worker processes
    scale_out_partitions: int = 6


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

    @contextlib.contextmanager
    def fresh_stack(label: str) -> Iterator[tuple[Stack, Workload]]:
        """A fresh broker and registry with the raw schema registered under the id the
        generated records carry. The embedded broker's memory engine keeps every record and
        costs more per request as its log grows: on one shared broker each phase would be
        measured against every earlier phase's data."""
        nonlocal workload
        with running_stack(keep_workdir=keep_workdir, engine=params.engine) as stack:
            echo(f"{label}: broker {stack.bootstrap}, registry {stack.registry_url}, "
                 f"logs {stack.workdir}")
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
                raise RegistryError(f"{label}: the fresh registry gave schema id {schema_id}, "
                                    f"the generated records carry {workload.schema_id}")
            yield stack, workload

    for run in range(1, params.runs + 1):
        load = load_average()
        with fresh_stack(f"run {run}/{params.runs}") as (stack, data):
            echo(f"  load average {load[0]:.2f}")
            limit = run_limit(stack, data, run=run)
            echo(f"  limit  {limit.rate or 0:>10,.0f} rec/s")
            naive = run_naive(stack, data, run=run)
            echo(f"  naive  {naive.rate or 0:>10,.0f} rec/s")
            tuned = run_tuned(stack, data, run=run)
            echo(f"  tuned  {tuned.rate or 0:>10,.0f} rec/s")
            chain = run_chain(stack, data, run=run, latency_rate=params.latency_rate,
                              latency_seconds=params.latency_seconds,
                              partitions=params.partitions)
            echo(f"  chain  {chain.throughput.rate or 0:>10,.0f} rec/s; then latency "
                 f"p50/p95/p99 {_ms(chain.latency_loaded)}")
        with fresh_stack(f"run {run}/{params.runs} latency") as (stack, data):
            lat = run_chain_latency(
                stack, data, run=run, rate=params.latency_rate,
                seconds=params.latency_seconds,
                soak_seconds=params.soak_seconds if run == params.runs else 0.0,
                partitions=params.partitions)
            echo(f"  latency p50/p95/p99 {_ms(lat.latency)}")
        rss = dataclasses.replace(chain.rss, peak_mb=max(chain.rss.peak_mb, lat.peak_rss_mb),
                                  latency_worker_peak_mb=lat.peak_rss_mb)
        echo(f"  peak RSS {rss.peak_mb:.0f} MB")
        runs.append(run_record(run=run, load_average=load, limit=limit, naive=naive,
                               chain=chain.throughput, latency=lat.latency, rss=rss,
                               tuned=tuned, latency_loaded=chain.latency_loaded))
        soak = lat.soak or soak
    scale: list[dict[str, Any]] = []
    for workers in (1, params.scale_out) if params.scale_out > 1 else ():
        with fresh_stack(f"scale-out, {workers} worker(s)") as (stack, data):
            point = run_workers(stack, data, workers=workers,
                                partitions=params.scale_out_partitions)
            echo(f"  {workers} worker(s): {point['rate'] or 0:,.0f} rec/s, worker CPU "
                 f"{point['worker_cpu_busy']}, broker CPU {point['broker_cpu_busy']}")
            scale.append(point)
    return {
        "command": "shulian bench",
        "params": asdict(params),
        "machine": machine,
        "started_at": started,
        "duration_s": round(time.time() - started, 1),
        "runs": runs,
        "summary": summarise(runs),
        "soak": soak,
        "scale_out": scale,
    }


def _ms(lat: LatencyResult) -> str:
    return (f"{lat.p50_ms or 0:.0f}/{lat.p95_ms or 0:.0f}/{lat.p99_ms or 0:.0f} ms, "
            f"broker {lat.broker_cpu_busy or 0:.2f} cores busy")


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
