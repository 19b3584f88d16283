"""The one-hop baselines as child processes: shulian.bench.limit, shulian.bench.naive,
shulian.bench.tuned.

Each run gets fresh source/sink topics holding the same generated records; the child consumes
the backlog, and the rate is taken from the sink's record timestamps: records / (last - first),
so process start-up and group joins are not counted.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from shulian.bench.data import Workload
from shulian.bench.harness import Stack, produce_all, python_argv, scan_topics, wait_for
from shulian.bench.report import PhaseResult, rate_of

PARTITIONS = 3


def _topics(stack: Stack, hop: str, run: int) -> tuple[str, str]:
    tag = f"bench.{hop}.r{run}.{uuid.uuid4().hex[:6]}"
    source, sink = f"{tag}.in", f"{tag}.out"
    stack.create_topics([source, sink], partitions=PARTITIONS)
    return source, sink


def _schema_file(stack: Stack, workload: Workload) -> Path:
    path = stack.workdir / "raw_schema.avsc"
    if not path.exists():
        path.write_text(json.dumps(workload.raw_schema), encoding="utf-8")
    return path


def _result(stack: Stack, sink: str, n: int) -> PhaseResult:
    scan = scan_topics(stack.settings(), [sink], expect=n)[sink]
    return PhaseResult(records=n, outputs=scan.count, first_ms=scan.first_ms,
                       last_ms=scan.last_ms, rate=rate_of(n, scan.first_ms, scan.last_ms))


def run_limit(stack: Stack, workload: Workload, *, run: int,
              timeout_s: float = 600.0) -> PhaseResult:
    source, sink = _topics(stack, "limit", run)
    records = workload.throughput.records
    produce_all(stack.settings(), source, records)
    proc = stack.spawn(f"limit-{run}", python_argv(
        "shulian.bench.limit", "--bootstrap", stack.bootstrap, "--source", source, "--sink", sink,
        "--count", str(len(records)), "--schema", str(_schema_file(stack, workload)),
        "--partitions", str(PARTITIONS)))
    wait_for(lambda: proc.poll() is not None, timeout_s=timeout_s, what="limit hop")
    code = stack.stop_child(proc)
    if code != 0:
        raise RuntimeError(f"limit hop exited {code}; see {stack.workdir}/limit-{run}.log")
    return _result(stack, sink, len(records))


def run_faust_hop(stack: Stack, workload: Workload, *, hop: str, run: int,
                  timeout_s: float = 900.0) -> PhaseResult:
    """A Faust hop as a child: ``naive`` (shulian.bench.naive) or ``tuned``
    (shulian.bench.tuned)."""
    source, sink = _topics(stack, hop, run)
    records = workload.throughput.records
    produce_all(stack.settings(), source, records)
    done = stack.workdir / f"{hop}-{run}.done"
    datadir = stack.workdir / f"{hop}-{run}-data"
    proc = stack.spawn(f"{hop}-{run}", python_argv(
        f"bench.{hop}", "--bootstrap", stack.bootstrap, "--source", source, "--sink", sink,
        "--count", str(len(records)), "--schema", str(_schema_file(stack, workload)),
        "--done", str(done), "--datadir", str(datadir)))
    try:
        wait_for(done.exists, timeout_s=timeout_s, what=f"{hop} Faust hop",
                 alive=lambda: proc.poll() is None, interval_s=0.2)
    finally:
        stack.stop_child(proc)
    return _result(stack, sink, len(records))


def run_naive(stack: Stack, workload: Workload, *, run: int,
              timeout_s: float = 900.0) -> PhaseResult:
    return run_faust_hop(stack, workload, hop="naive", run=run, timeout_s=timeout_s)


def run_tuned(stack: Stack, workload: Workload, *, run: int,
              timeout_s: float = 900.0) -> PhaseResult:
    return run_faust_hop(stack, workload, hop="tuned", run=run, timeout_s=timeout_s)
