"""Drills (数据演习): replay a window of past raw records into an isolated namespace at N times
the original pace, through a chain worker of its own, and summarise what the chain did.

Production is only read (``assign()``, no consumer group, nothing committed): the drill's raw,
canonical, egress, dead-letter, audit and control topics all carry the drill's namespace, and
its worker runs as consumer group ``shulian-chain-<namespace>``. The drill decides under the
same list versions as production: the production control topic is copied first.

This module orchestrates I/O (topics, a worker subprocess, producing); Kafka is imported inside
the functions. The pacing itself is :func:`shulian.audit.redeliver.pace` (pure).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from shulian.audit.check import AuditEntry, audit_entries
from shulian.audit.produce import produce_all
from shulian.audit.progress import reading
from shulian.audit.redeliver import pace
from shulian.audit.window import Window
from shulian.catalog.models import Catalog
from shulian.chain import headers as H
from shulian.chain.messages import header_str
from shulian.chain.topology import Topology, plan_topics
from shulian.errors import BrokerError, ConfigError, ConfigIssue
from shulian.settings import Settings

__all__ = ["DrillResult", "drill_group", "group_done", "run_drill"]


@dataclass
class DrillResult:
    namespace: str
    produced: Counter[str]
    canonical: int
    deadletters: Counter[str]
    decisions: Counter[tuple[str, str]]
    elapsed_s: float
    window_span_s: float


def drill_group(namespace: str) -> str:
    """The consumer group (Faust app id) of the drill's worker."""
    return f"shulian-chain-{namespace}"


def group_done(settings: Settings, group: str, ends: dict[tuple[str, int], int]) -> bool:
    """Has ``group`` committed every partition up to its end offset?"""
    from confluent_kafka import Consumer, TopicPartition

    from shulian.io.kafka import consumer_config

    todo = {tp: n for tp, n in ends.items() if n > 0}
    if not todo:
        return True
    c = Consumer(consumer_config(settings, group_id=group))
    try:
        got = c.committed([TopicPartition(t, p) for t, p in todo], timeout=10)
    finally:
        c.close()
    return all(tp.offset >= todo[(tp.topic, tp.partition)] for tp in got)


class DrillWorkerDied(BrokerError):
    """The drill's worker exited before the drill was processed."""


def _start_worker(settings: Settings, namespace: str, log_file: Path
                  ) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SHULIAN_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
           "SHULIAN_REGISTRY_URL": settings.registry_url,
           "SHULIAN_CATALOG_DIR": str(settings.catalog_dir),
           "SHULIAN_CLOCK": settings.clock,
           "SHULIAN_WORKER_ID": f"drill-{namespace}", "SHULIAN_METRICS_PORT": "0"}
    if settings.allow_dev_keys:
        env["SHULIAN_ALLOW_DEV_KEYS"] = "1"
    if settings.hmac_master_key is not None:  # the drill pseudonymises like production
        env["SHULIAN_HMAC_MASTER_KEY"] = settings.hmac_master_key.get_secret_value()
    with log_file.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "shulian.cli.main", "worker",
                                 "--namespace", namespace], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _stop_worker(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def last_error_line(log_file: Path, *, tail_bytes: int = 65536) -> str | None:
    """The last error a worker log reports (the CLI's ``error:`` message with the issue lines
    under it, or a structlog event at level error), else its last line; None when empty."""
    try:
        with log_file.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - tail_bytes))
            lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines()]
    except OSError:
        return None
    lines = [ln for ln in lines if ln]
    for i in range(len(lines) - 1, -1, -1):
        low = lines[i].lower()
        if low.startswith("error:"):  # the CLI's message, its issues on the lines after it
            return " ".join(lines[i:i + 6])
        if '"level": "error"' in low or "[error" in low:
            return lines[i]
    return lines[-1] if lines else None


def _check_worker(proc: subprocess.Popen[bytes], log_file: Path) -> None:
    """Fail at once, with the worker's last error line, when the drill worker has exited."""
    if proc.poll() is None:
        return
    line = last_error_line(log_file)
    raise DrillWorkerDied(f"drill worker exited with {proc.returncode}"
                          + (f": {line}" if line else "") + f" (log: {log_file})")


def _wait_processed(settings: Settings, proc: subprocess.Popen[bytes], group: str,
                    ends: dict[tuple[str, int], int], *, deadline: float, what: str,
                    log_file: Path) -> None:
    while not group_done(settings, group, ends):
        _check_worker(proc, log_file)
        if time.monotonic() > deadline:
            raise BrokerError(f"drill {what} not processed in time")
        time.sleep(0.5)


def run_drill(settings: Settings, *, catalog: Catalog, source: Topology, namespace: str,
              window: Window, speed: float, timeout_s: float = 600.0,
              log_file: Path | None = None) -> DrillResult:
    """Replay the window's raw records into ``namespace`` at ``speed`` times the original pace,
    through a worker of its own; production topics are only read (assign(), no group)."""
    from shulian.io.reader import read_topics, read_window
    from shulian.io.sender import Sender
    from shulian.io.setup import init_topology

    if not namespace or namespace == source.namespace:
        raise ConfigError([ConfigIssue("command line", "--namespace",
                                       "a drill needs a namespace of its own")])
    if speed <= 0:
        raise ConfigError([ConfigIssue("command line", "--speed", "must be > 0")])
    target = Topology.from_settings(settings, namespace)
    init_topology(settings, catalog, target)
    src_plan, dst_plan = plan_topics(catalog, source), plan_topics(catalog, target)
    control = [m for msgs in read_topics(settings, [source.control]).values() for m in msgs]
    produce_all(settings, [(target.control, 0, m.key, m.value or b"", []) for m in control])
    with reading("raw window") as progress:
        raw = read_window(settings, src_plan.raw, window, progress=progress)
    msgs = sorted((m for ms in raw.values() for m in ms),
                  key=lambda m: (m.timestamp_ms, m.topic, m.offset))
    rename = dict(zip(src_plan.raw, dst_plan.raw, strict=True))
    started = time.monotonic()
    own_log = log_file is None  # kept only to report the worker's last error line
    worker_log = log_file or Path(tempfile.mkstemp(prefix="shulian-drill-", suffix=".log")[1])
    proc = _start_worker(settings, namespace, worker_log)
    try:
        produced: Counter[str] = Counter()
        sender = Sender(settings)
        t0 = time.monotonic()
        with reading(f"drill at {speed:g}x", total=len(msgs)) as progress:
            for m, at in zip(msgs, pace([m.timestamp_ms for m in msgs], speed), strict=True):
                _check_worker(proc, worker_log)
                while (wait := t0 + at - time.monotonic()) > 0:
                    # pacing, not synchronisation: the record is due later; the worker is
                    # watched meanwhile (a drill at 1x may wait minutes between records)
                    sender.flush(min(wait, 0.5))
                    time.sleep(max(0.0, min(t0 + at - time.monotonic(), 0.5)))
                    _check_worker(proc, worker_log)
                topic = rename[m.topic]
                sender.send(topic, m.value, m.key, partition=m.partition,
                            headers=[(k, v or b"") for k, v in m.headers],
                            timestamp=m.timestamp_ms)
                produced[topic] += 1
                progress(1)
        sender.settle(60, what="drill records")
        # the drill topics are new, so the end offsets are the counts just produced
        ends: dict[tuple[str, int], int] = {}
        for m in msgs:
            tp = (rename[m.topic], m.partition)
            ends[tp] = ends.get(tp, 0) + 1
        # the worker commits a raw batch only after its canonical records, dead letters,
        # egress views and audit records are all acknowledged
        _wait_processed(settings, proc, drill_group(namespace), ends,
                        deadline=time.monotonic() + timeout_s, what="raw records",
                        log_file=worker_log)
    finally:
        _stop_worker(proc)
        if own_log:
            worker_log.unlink(missing_ok=True)
    elapsed = time.monotonic() - started
    canonical = read_topics(settings, dst_plan.canonical)
    dead = read_topics(settings, dst_plan.deadletter)
    reasons = Counter(header_str(m.headers, H.REASON) or "?"
                      for ms in dead.values() for m in ms)
    audits: list[AuditEntry] = [e for ms in read_topics(settings, dst_plan.audit).values()
                                for e in audit_entries(ms)]
    decided = Counter((str(e.record.get("consumer")), str(e.record.get("decision")))
                      for e in audits)
    span = (msgs[-1].timestamp_ms - msgs[0].timestamp_ms) / 1000 if msgs else 0.0
    return DrillResult(namespace, produced, sum(len(v) for v in canonical.values()), reasons,
                       decided, elapsed, span)
