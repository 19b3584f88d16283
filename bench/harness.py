"""The benchmark's own embedded stack and the plumbing every phase shares.

:class:`Stack` starts a broker (Tansu, or Apache Kafka with ``engine="kafka"``) and a
``shulian registry`` child on free ports in a temp directory, and stops every child it started
(broker, registry, hop processes, workers) on exit, on an exception and on Ctrl-C/SIGTERM.
Children are spawned from the main thread with :func:`shulian.embedded.process.spawn` (own
session, SIGTERM when the parent dies), so even a ``kill -9`` of the benchmark leaves nothing
running.

:func:`scan_topics` reads output topics to their end after a phase and keeps only counts and
first/last record timestamps (CreateTime, set by the producing client when it produced).
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from confluent_kafka import Consumer, Message, TopicPartition

from shulian.embedded.kafka import KafkaCluster
from shulian.embedded.net import free_port, wait_until
from shulian.embedded.process import spawn, stop_process
from shulian.embedded.tansu import TansuProcess
from shulian.errors import BrokerError, EmbeddedProcessError
from shulian.io.kafka import (
    TopicSpec,
    admin_client,
    consumer_config,
    ensure_topics,
)
from shulian.io.reader import partition_counts
from shulian.io.sender import Sender
from shulian.io.tail import EndRule, ReadTimedOut, drain
from shulian.settings import BrokerEngine, Settings, load_settings

BENCH_DIR = Path(__file__).resolve().parent
CATALOG_DIR = BENCH_DIR / "catalog"
SCHEMAS_DIR = CATALOG_DIR / "schemas"
MASTER_KEY = "bench-master-key"


def python_argv(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


@dataclass
class Stack:
    """Broker + registry for one benchmark invocation, and every child started on them."""

    workdir: Path
    keep_workdir: bool = False
    engine: BrokerEngine = "tansu"
    broker: TansuProcess | KafkaCluster | None = None
    registry_port: int = 0
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _registry: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        assert self.broker is not None
        return self.broker.bootstrap

    @property
    def registry_url(self) -> str:
        return f"http://127.0.0.1:{self.registry_port}"

    @property
    def broker_pid(self) -> int | None:
        """The broker's process (Kafka: node 1's JVM), for its CPU figures."""
        if isinstance(self.broker, KafkaCluster):
            proc = self.broker.members[0].proc if self.broker.members else None
        else:
            proc = self.broker.proc if self.broker is not None else None
        return None if proc is None else proc.pid

    def settings(self, **overrides: Any) -> Settings:
        return load_settings(bootstrap_servers=self.bootstrap, registry_url=self.registry_url,
                             catalog_dir=CATALOG_DIR, schemas_dir=SCHEMAS_DIR,
                             hmac_master_key=MASTER_KEY, broker_engine=self.engine, **overrides)

    def start(self) -> Stack:
        if self.engine == "kafka":
            self.broker = KafkaCluster(port=free_port(), data_dir=self.workdir / "kafka")
            self.broker.start()
        else:
            self.broker = TansuProcess(host="127.0.0.1", port=free_port(),
                                       log_file=self.workdir / "tansu.log")
            self.broker.start(ready_timeout_s=60)
        self.registry_port = free_port()
        self._registry = self.spawn(
            "registry",
            python_argv("shulian.cli.main", "registry", "--bootstrap", self.bootstrap,
                        "--host", "127.0.0.1", "--port", str(self.registry_port),
                        "--topic", f"_schemas.bench-{uuid.uuid4().hex[:6]}"))
        reg = self._registry
        ok = wait_until(lambda: reg.poll() is None and httpx.get(
            f"{self.registry_url}/subjects", timeout=1.0).status_code == 200, timeout_s=60)
        if not ok:
            raise EmbeddedProcessError(f"registry did not start; see {self.workdir}/registry.log")
        return self

    def spawn(self, name: str, argv: Sequence[str], *, env: dict[str, str] | None = None
              ) -> subprocess.Popen[bytes]:
        """A child in its own session, logging to ``<workdir>/<name>.log``; stopped at exit."""
        env = {"SHULIAN_BROKER_ENGINE": self.engine, **(env or {})}  # the clients' behaviour
        proc = spawn(argv, env=env, log_file=self.workdir / f"{name}.log")
        self.children.append(proc)
        return proc

    def stop_child(self, proc: subprocess.Popen[bytes], *, timeout_s: float = 15.0) -> int:
        code = stop_process(proc, timeout_s=timeout_s)
        with contextlib.suppress(ValueError):
            self.children.remove(proc)
        return code

    def close(self) -> None:
        for proc in reversed(self.children):
            with contextlib.suppress(Exception):
                stop_process(proc, timeout_s=10)
        self.children.clear()
        if self.broker is not None:
            with contextlib.suppress(Exception):
                self.broker.stop()
        if not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def create_topics(self, names: Iterable[str], *, partitions: int) -> None:
        ensure_topics(admin_client(self.settings()),
                      [TopicSpec(n, partitions) for n in names])


class Interrupted(KeyboardInterrupt):
    """SIGTERM turned into the same unwinding as Ctrl-C."""


@contextlib.contextmanager
def running_stack(*, keep_workdir: bool = False, engine: BrokerEngine = "tansu"
                  ) -> Iterator[Stack]:
    """A started :class:`Stack`; everything is stopped on leaving, whatever the reason."""
    workdir = Path(tempfile.mkdtemp(prefix="shulian-bench-"))
    stack = Stack(workdir=workdir, keep_workdir=keep_workdir, engine=engine)

    def on_term(_sig: int, _frame: FrameType | None) -> None:
        raise Interrupted()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield stack.start()
    except BaseException:
        stack.keep_workdir = True  # logs stay for the post-mortem
        print(f"bench: logs kept in {workdir}", file=sys.stderr)
        raise
    finally:
        # a second Ctrl-C during cleanup must not leave children behind
        old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            stack.close()
        finally:
            signal.signal(signal.SIGINT, old_int)
            signal.signal(signal.SIGTERM, previous)


def produce_all(settings: Settings, topic: str, records: Sequence[tuple[bytes | None, bytes]],
                ) -> None:
    """Produce (key, value) pairs as fast as the client goes; raise unless all are acked."""
    sender = Sender(settings, conf={"linger.ms": 20, "queue.buffering.max.messages": 1_000_000})
    for key, value in records:
        sender.send(topic, value, key)
    sender.settle(120, what=f"preloading {topic}")


@dataclass(frozen=True)
class TopicScan:
    count: int
    first_ms: int | None
    last_ms: int | None


def scan_topics(settings: Settings, topics: Iterable[str], *, expect: int | None = None,
                since_ms: int = 0, quiet_s: float = 0.5, timeout_s: float = 120.0,
                skip: Callable[[bytes], bool] | None = None) -> dict[str, TopicScan]:
    """Count every record of ``topics`` (all partitions, from the start) with the smallest and
    largest record timestamp per topic; records stamped before ``since_ms`` (a warm-up) are
    skipped, and so are those ``skip`` says are not outputs (e.g. audit seals). With ``expect``,
    reading goes on (until ``timeout_s``)
    while the total is below it: the embedded broker's end-of-partition can lag acked writes."""
    topics = list(topics)
    counts = partition_counts(settings, topics)
    starts = [TopicPartition(t, p, 0) for t, n in counts.items() for p in range(n)]
    counts_by: dict[str, int] = dict.fromkeys(topics, 0)
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    consumer = Consumer(consumer_config(
        settings, group_id=f"bench-scan-{uuid.uuid4().hex[:8]}",
        **{"enable.partition.eof": True, "fetch.max.bytes": 16 * 1024 * 1024}))

    def take(m: Message) -> None:
        ts = m.timestamp()[1]
        if ts < since_ms or (skip is not None and skip(m.value() or b"")):
            return
        t = m.topic() or ""
        counts_by[t] += 1
        if t not in first or ts < first[t]:
            first[t] = ts
        if t not in last or ts > last[t]:
            last[t] = ts

    try:
        consumer.assign(starts)
        drain(consumer, len(starts), EndRule(quiet_s=quiet_s, idle_s=math.inf, timeout_s=timeout_s),
              take, batch=10000, enough=lambda: expect is None or sum(counts_by.values()) >= expect)
    except ReadTimedOut as exc:
        if expect is None or sum(counts_by.values()) >= expect:
            raise BrokerError(f"scanning {topics} did not finish in {timeout_s:.0f} s") from exc
        # short of what was expected: the caller compares counts and reports the shortfall
    finally:
        consumer.close()
    return {t: TopicScan(counts_by[t], first.get(t), last.get(t)) for t in topics}


def merge_scans(scans: Iterable[TopicScan]) -> TopicScan:
    scans = [s for s in scans if s.count]
    if not scans:
        return TopicScan(0, None, None)
    return TopicScan(sum(s.count for s in scans), min(s.first_ms or 0 for s in scans),
                     max(s.last_ms or 0 for s in scans))


def wait_for(check: Callable[[], bool], *, timeout_s: float, what: str,
             alive: Callable[[], bool] | None = None, interval_s: float = 0.1) -> None:
    """Wait until ``check()``; fail if ``alive()`` turns False or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        if alive is not None and not alive():
            raise EmbeddedProcessError(f"{what}: the process died")
        time.sleep(interval_s)
    raise EmbeddedProcessError(f"{what}: not done within {timeout_s:.0f} s")


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()
