"""Phase 4: the real chain (``shulian worker`` as a child) on the reference workload.

Two workers per run, each warmed up on its own namespace: one takes the throughput backlog and
then the paced latency phase (the *loaded* latency: the broker holds every earlier phase's
records by then); the other, on a fresh broker, takes only the paced latency phase (and the
soak). RSS is sampled throughout; the latency phases record the worker's and the broker's CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from shulian.bench.data import AGENCY, DATASET, Workload
from shulian.bench.harness import (
    MASTER_KEY,
    Stack,
    merge_scans,
    produce_all,
    python_argv,
    scan_topics,
    wait_for,
)
from shulian.bench.latency import measure_latency
from shulian.bench.report import MB, LatencyResult, PhaseResult, RssResult, rate_of
from shulian.bench.rss import RssSampler
from shulian.catalog.load import load_catalog
from shulian.chain.topology import TopicPlan, Topology, plan_topics
from shulian.clock import DEMO_CLOCK
from shulian.embedded.net import free_port
from shulian.io.setup import init_topology
from shulian.io.trust import DEV_CHAIN_KEY
from shulian.settings import REPO_ROOT, Settings


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process has used so far (Linux /proc; None elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text -> {name or name{labels}: value} (comments skipped)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            continue
    return out


@dataclass(frozen=True)
class Progress:
    raw: int
    canonical: int
    ingest_rejected: int
    delivered: int
    withheld: int

    @classmethod
    def of(cls, metrics: dict[str, float]) -> Progress:
        rejected = sum(v for k, v in metrics.items()
                       if k.startswith("shulian_deadletter_records_total{")
                       and 'reason="canonical"' not in k)
        return cls(
            raw=int(metrics.get("shulian_raw_records_total", 0)),
            canonical=int(metrics.get("shulian_canonical_records_total", 0)),
            ingest_rejected=int(rejected),
            delivered=int(metrics.get('shulian_decisions_total{outcome="deliver"}', 0)),
            withheld=int(metrics.get('shulian_decisions_total{outcome="withhold"}', 0)),
        )

    def settled(self, raw: int) -> bool:
        """``raw`` records consumed and each either enforced or dead-lettered."""
        return self.raw >= raw and self.canonical + self.ingest_rejected >= raw


def read_progress(port: int) -> Progress:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
        return Progress.of(parse_metrics(resp.read().decode()))


@dataclass(frozen=True)
class ChainRun:
    """The throughput worker's figures: rate, the latency measured after the backlog (the
    broker then holds every earlier phase's records) and its RSS."""

    throughput: PhaseResult
    latency_loaded: LatencyResult
    rss: RssResult


@dataclass(frozen=True)
class LatencyRun:
    """A worker started on a fresh broker for the latency phase only (and the soak)."""

    latency: LatencyResult
    peak_rss_mb: float
    soak: dict[str, Any] | None


@dataclass
class ChainWorker:
    """A warmed-up ``shulian worker`` on its own namespace of ``stack``."""

    stack: Stack
    settings: Settings
    topology: Topology
    plan: TopicPlan
    entries: int
    raw_topic: str
    egress_topic: str
    port: int
    proc: subprocess.Popen[bytes]
    rss: RssSampler
    warm: int

    def alive(self) -> bool:
        return self.proc.poll() is None


def _mb(v: int | None) -> float | None:
    return None if v is None else round(v / MB, 1)


def _busy(before: float | None, after: float | None, wall: float) -> float | None:
    return None if before is None or after is None or wall <= 0 else round(
        (after - before) / wall, 2)


def spawn_worker(stack: Stack, settings: Settings, namespace: str, *, name: str, port: int,
                 partitions: int) -> subprocess.Popen[bytes]:
    """A ``shulian worker`` child on ``namespace``, metrics on ``port``."""
    env = {
        "SHULIAN_BOOTSTRAP_SERVERS": stack.bootstrap,
        "SHULIAN_REGISTRY_URL": stack.registry_url,
        "SHULIAN_CATALOG_DIR": str(settings.catalog_dir),
        "SHULIAN_SCHEMAS_DIR": str(settings.schemas_dir),
        "SHULIAN_HMAC_MASTER_KEY": MASTER_KEY,
        "SHULIAN_ALLOW_DEV_KEYS": "1",  # the bench catalogue's lists are signed with dev keys
        # the chain's development key lives with the shipped catalogue's, not the bench's
        "SHULIAN_SIGNING_KEY_FILE": str(REPO_ROOT / "catalog" / DEV_CHAIN_KEY),
        "SHULIAN_METRICS_PORT": str(port),
        "SHULIAN_WORKER_ID": name,
        "SHULIAN_DEFAULT_PARTITIONS": str(partitions),
        "SHULIAN_DATA_DIR": str(stack.workdir / name),
        "SHULIAN_LOG_FORMAT": "json",
        "SHULIAN_CLOCK": DEMO_CLOCK,  # the same decisions (and work) in any year
        "SHULIAN_LOG_LEVEL": os.environ.get("SHULIAN_BENCH_WORKER_LOG_LEVEL", "INFO"),
    }
    return stack.spawn(name, python_argv("shulian.cli.main", "worker", "--namespace", namespace),
                       env=env)


@contextlib.contextmanager
def chain_worker(stack: Stack, workload: Workload, *, name: str, partitions: int
                 ) -> Iterator[ChainWorker]:
    """A fresh namespace (topics + schemas through ``init_topology``), a worker on it and its
    warm-up batch (group join, schema fetches, audit heads: start-up, not throughput)."""
    settings = stack.settings(default_partitions=partitions)
    catalog = load_catalog(settings.catalog_dir, schemas_dir=settings.schemas_dir)
    ns = f"{name.replace('-', '')}x{uuid.uuid4().hex[:6]}"
    topology = Topology(namespace=ns, partitions=partitions)
    init_topology(settings, catalog, topology)
    full_view = next(e for e in catalog.current_list.entries if e.id == "bench-tax-full")
    port = free_port()
    proc = spawn_worker(stack, settings, ns, name=name, port=port, partitions=partitions)
    rss = RssSampler(proc.pid).start()
    try:
        worker = ChainWorker(
            stack=stack, settings=settings, topology=topology, plan=plan_topics(catalog, topology),
            entries=len(catalog.current_list.entries), raw_topic=topology.raw(AGENCY, DATASET),
            egress_topic=topology.egress(full_view.consumer, DATASET), port=port, proc=proc,
            rss=rss, warm=len(workload.warmup.records))
        produce_all(settings, worker.raw_topic, workload.warmup.records)
        wait_for(lambda: _settled(port, worker.warm), timeout_s=180, what="chain warm-up",
                 alive=worker.alive, interval_s=0.2)
        rss.mark("start")
        yield worker
    finally:
        rss.stop()
        stack.stop_child(proc, timeout_s=20)


def chain_latency(worker: ChainWorker, workload: Workload, *, rate: float,
                  seconds: float) -> LatencyResult:
    """The paced latency phase, with the worker's and the broker's CPU (cores busy) over it."""
    broker = worker.stack.broker_pid
    pids = [worker.proc.pid, *([broker] if broker is not None else [])]
    before = [cpu_seconds(pid) for pid in pids]
    t0 = time.monotonic()
    latency = measure_latency(worker.settings, raw_topic=worker.raw_topic,
                              egress_topic=worker.egress_topic,
                              records=workload.latency.records, rate=rate, seconds=seconds)
    wall = time.monotonic() - t0
    after = [cpu_seconds(pid) for pid in pids]
    busy = [_busy(b, a, wall) for b, a in zip(before, after, strict=True)]
    return dataclasses.replace(latency, worker_cpu_busy=busy[0],
                               broker_cpu_busy=busy[1] if len(busy) > 1 else None)


def chain_throughput(worker: ChainWorker, workload: Workload, *, timeout_s: float
                     ) -> PhaseResult:
    """The throughput records produced as a backlog. Done is read from the worker's Prometheus
    metrics (every raw record consumed and every valid one enforced, outputs acked); the rate
    is taken from the output topics afterwards: records / (first canonical/dead letter -> last
    egress/audit)."""
    port, plan, settings = worker.port, worker.plan, worker.settings
    cpu_before = cpu_seconds(worker.proc.pid)
    wall_before = time.monotonic()
    before = read_progress(port)
    since_ms = int(time.time() * 1000)
    n = len(workload.throughput.records)
    produce_all(settings, worker.raw_topic, workload.throughput.records)
    wait_for(lambda: _settled(port, worker.warm + n), timeout_s=timeout_s,
             what="chain throughput", alive=worker.alive, interval_s=0.1)
    worker.rss.mark("after_throughput")
    cpu_after = cpu_seconds(worker.proc.pid)
    wall = time.monotonic() - wall_before
    progress = read_progress(port)
    canonical = progress.canonical - before.canonical
    rejected = progress.ingest_rejected - before.ingest_rejected
    delivered = progress.delivered - before.delivered
    expect = canonical + rejected + canonical * worker.entries + delivered
    scans = scan_topics(settings, [*plan.canonical, *plan.deadletter, *plan.egress,
                                   *plan.audit], since_ms=since_ms, expect=expect,
                        skip=_is_seal)
    first = merge_scans(scans[t] for t in (*plan.canonical, *plan.deadletter))
    last = merge_scans(scans[t] for t in (*plan.egress, *plan.audit, *plan.deadletter))
    egress = sum(scans[t].count for t in plan.egress)
    audit = sum(scans[t].count for t in plan.audit)
    dead = sum(scans[t].count for t in plan.deadletter)
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return PhaseResult(
        records=n, outputs=egress + audit + dead, first_ms=first.first_ms,
        last_ms=last.last_ms, rate=rate_of(n, first.first_ms, last.last_ms),
        detail={"valid_generated": workload.throughput.valid,
                "invalid_generated": workload.throughput.invalid,
                "canonical": sum(scans[t].count for t in plan.canonical),
                "deadletter": dead, "audit": audit, "egress": egress,
                "egress_by_topic": {t: scans[t].count for t in plan.egress},
                "metrics_canonical": canonical,
                "metrics_rejected": rejected,
                "metrics_delivered": delivered,
                "entries": worker.entries,
                # the worker's CPU over the throughput phase (all its threads): CPU-bound
                # when cpu_busy is ~1 core or more (one interpreter, one GIL)
                "worker_cpu_s": None if cpu is None else round(cpu, 2),
                "worker_cpu_us_per_record": None if cpu is None else round(cpu / n * 1e6),
                "worker_cpu_busy": _busy(cpu_before, cpu_after, wall)})


def run_chain(stack: Stack, workload: Workload, *, run: int, latency_rate: float,
              latency_seconds: float, partitions: int = 3,
              timeout_s: float = 900.0) -> ChainRun:
    """Throughput, then the latency phase on the same worker and broker (loaded)."""
    with chain_worker(stack, workload, name=f"bench-{run}", partitions=partitions) as worker:
        throughput = chain_throughput(worker, workload, timeout_s=timeout_s)
        loaded = chain_latency(worker, workload, rate=latency_rate, seconds=latency_seconds)
        worker.rss.mark("end")
        rss = worker.rss
    return ChainRun(
        throughput=throughput, latency_loaded=loaded,
        rss=RssResult(start_mb=_mb(rss.marks.get("start")),
                      after_throughput_mb=_mb(rss.marks.get("after_throughput")),
                      end_mb=_mb(rss.marks.get("end")), peak_mb=_mb(rss.peak) or 0.0))


def run_chain_latency(stack: Stack, workload: Workload, *, run: int, rate: float,
                      seconds: float, soak_seconds: float = 0.0,
                      partitions: int = 3) -> LatencyRun:
    """The latency phase on a worker of its own; then, optionally, the soak on it."""
    with chain_worker(stack, workload, name=f"bench-latency-{run}",
                      partitions=partitions) as worker:
        latency = chain_latency(worker, workload, rate=rate, seconds=seconds)
        rss = worker.rss
        rss.mark("end")
        soak: dict[str, Any] | None = None
        if soak_seconds > 0:
            soak_start, soak_t0 = rss.marks["end"], time.monotonic()
            soak_lat = chain_latency(worker, workload, rate=rate, seconds=soak_seconds)
            rss.mark("soak_end")
            window = [r for t, r in rss.samples if t >= soak_t0]
            soak = {"seconds": soak_seconds, "latency": asdict(soak_lat),
                    "rss": {"start_mb": _mb(soak_start), "end_mb": _mb(rss.marks["soak_end"]),
                            "peak_mb": _mb(max(window, default=0)),
                            "growth_mb": _mb(rss.marks["soak_end"] - soak_start)},
                    "rss_samples_mb": [_mb(r) for r in window[:: max(1, len(window) // 120)]]}
    return LatencyRun(latency=latency, peak_rss_mb=_mb(rss.peak) or 0.0, soak=soak)


def _settled(port: int, raw: int) -> bool:
    try:
        return read_progress(port).settled(raw)
    except OSError:
        return False


def _is_seal(value: bytes) -> bool:
    """An audit partition's signed seal of a batch: not a decision, so not counted as one."""
    return value.startswith(b"{") and b'"kind":"seal"' in value
