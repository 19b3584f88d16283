"""Scale-out: the chain with 1 and with N worker processes on the same topics.

For each worker count, on the stack's broker: a fresh namespace (``partitions`` partitions per
topic, so every worker owns some), the workers started in one consumer group, a warm-up batch
until every worker has joined and settled, then the throughput backlog. The rate is taken from
the output topics (first canonical/dead letter -> last egress/audit), done is the workers'
summed Prometheus progress; each worker's and the broker's CPU over the phase are reported
(cores busy), with each worker's share of the records.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from dataclasses import dataclass
from typing import Any

from shulian.bench.chain import Progress, cpu_seconds, read_progress, spawn_worker
from shulian.bench.data import AGENCY, DATASET, Workload
from shulian.bench.harness import Stack, merge_scans, produce_all, scan_topics, wait_for
from shulian.bench.report import rate_of
from shulian.catalog.load import load_catalog
from shulian.chain.topology import Topology, plan_topics
from shulian.embedded.net import free_port
from shulian.io.setup import init_topology


@dataclass(frozen=True)
class Worker:
    proc: subprocess.Popen[bytes]
    port: int


def _progress(workers: list[Worker]) -> list[Progress]:
    return [read_progress(w.port) for w in workers]


def _settled(workers: list[Worker], raw: int) -> bool:
    try:
        ps = _progress(workers)
    except OSError:
        return False
    return Progress(raw=sum(p.raw for p in ps), canonical=sum(p.canonical for p in ps),
                    ingest_rejected=sum(p.ingest_rejected for p in ps),
                    delivered=sum(p.delivered for p in ps),
                    withheld=sum(p.withheld for p in ps)).settled(raw)


def _busy(before: float | None, after: float | None, wall: float) -> float | None:
    return None if before is None or after is None else round((after - before) / wall, 2)


def run_workers(stack: Stack, workload: Workload, *, workers: int, partitions: int,
                timeout_s: float = 900.0) -> dict[str, Any]:
    """One scale-out point: ``workers`` processes on one fresh namespace."""
    settings = stack.settings(default_partitions=partitions)
    catalog = load_catalog(settings.catalog_dir, schemas_dir=settings.schemas_dir)
    ns = f"scale{workers}x{uuid.uuid4().hex[:6]}"
    topology = Topology(namespace=ns, partitions=partitions)
    init_topology(settings, catalog, topology)
    plan = plan_topics(catalog, topology)
    raw_topic = topology.raw(AGENCY, DATASET)
    procs: list[Worker] = []
    try:
        for i in range(workers):
            port = free_port()
            procs.append(Worker(spawn_worker(stack, settings, ns, name=f"{ns}-w{i + 1}",
                                             port=port, partitions=partitions), port))

        def alive() -> bool:
            return all(w.proc.poll() is None for w in procs)

        warm = len(workload.warmup.records)
        produce_all(settings, raw_topic, workload.warmup.records)
        wait_for(lambda: _settled(procs, warm), timeout_s=180, what="scale-out warm-up",
                 alive=alive, interval_s=0.2)
        before = _progress(procs)
        pids = [w.proc.pid for w in procs] + ([stack.broker_pid] if stack.broker_pid else [])
        cpu_before = [cpu_seconds(p) for p in pids]
        t0, since_ms = time.monotonic(), int(time.time() * 1000)
        n = len(workload.throughput.records)
        produce_all(settings, raw_topic, workload.throughput.records)
        wait_for(lambda: _settled(procs, warm + n), timeout_s=timeout_s,
                 what="scale-out throughput", alive=alive, interval_s=0.1)
        wall = time.monotonic() - t0
        cpu_after = [cpu_seconds(p) for p in pids]
        after = _progress(procs)
        scans = scan_topics(settings, [*plan.canonical, *plan.deadletter, *plan.egress,
                                       *plan.audit], since_ms=since_ms)
        first = merge_scans(scans[t] for t in (*plan.canonical, *plan.deadletter))
        last = merge_scans(scans[t] for t in (*plan.egress, *plan.audit, *plan.deadletter))
        busy = [_busy(b, a, wall) for b, a in zip(cpu_before, cpu_after, strict=True)]
        return {
            "workers": workers, "partitions": partitions, "records": n,
            "rate": rate_of(n, first.first_ms, last.last_ms),
            "worker_cpu_busy": busy[:workers],
            "broker_cpu_busy": busy[workers] if len(busy) > workers else None,
            "worker_raw_records": [a.raw - b.raw for a, b in zip(after, before, strict=True)],
        }
    finally:
        for w in procs:
            stack.stop_child(w.proc, timeout_s=20)


def scale_table(points: list[dict[str, Any]], engine: str) -> str:
    """A plain table of the scale-out points (rates, speed-up, CPU per process)."""
    base = points[0]["rate"] or 0.0
    lines = [f"scale-out on {engine}: workers | rec/s | x one worker | worker CPU (cores) | "
             "records per worker | broker CPU"]
    for p in points:
        rate = p["rate"] or 0.0
        lines.append(f"  {p['workers']} | {rate:,.0f} | {rate / base if base else 0:.2f} | "
                     f"{p['worker_cpu_busy']} | {p['worker_raw_records']} | "
                     f"{p['broker_cpu_busy']}")
    return "\n".join(lines)
