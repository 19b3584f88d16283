"""The console's reader: a thread that follows the chain's topics into the :class:`Store`.

Each round reads, through :func:`shulian.io.reader.read_partitions` (``assign()``, no consumer
group, nothing committed), every partition of the catalogue's raw, canonical, dead-letter,
audit (live and replay) and control topics from where the previous round stopped, hands the
messages to the store, and measures the chain's lag (the worker group's committed offsets
against the raw topics' ends). A failed round is logged and retried; pages keep showing what
was read, with the time of the last good round.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from shulian.audit.redeliver import replay_audit_topic
from shulian.catalog.load import load_sharing_list_text
from shulian.catalog.models import Catalog, SharingList
from shulian.chain.messages import InMessage
from shulian.chain.topology import Topology, plan_topics
from shulian.console.data.health import Health, probe_all
from shulian.console.data.store import Store
from shulian.errors import ConfigError, ShulianError
from shulian.log import get_logger
from shulian.settings import Settings

__all__ = ["Lag", "Tailer", "TopicSet"]

log = get_logger(__name__)
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class TopicSet:
    raw: tuple[str, ...]
    canonical: tuple[str, ...]
    deadletter: tuple[str, ...]
    audit: tuple[str, ...]
    control: str

    @classmethod
    def of(cls, catalog: Catalog, topology: Topology) -> TopicSet:
        plan = plan_topics(catalog, topology)
        replay = tuple(replay_audit_topic(topology, d) for d in sorted(catalog.datasets))
        return cls(plan.raw, plan.canonical, plan.deadletter,
                   plan.audit + replay + plan.verify_audit, plan.control)  # + verifications

    def all(self) -> list[str]:
        return [*self.raw, *self.canonical, *self.deadletter, *self.audit, self.control]


@dataclass
class Lag:
    """Records on the raw topics the worker group has not committed yet."""

    records: int | None = None  # None: not measured (yet)
    group: str = ""
    error: str = ""


@dataclass
class TailState:
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    lag: Lag = field(default_factory=Lag)
    broker_ok: bool | None = None
    broker_error: str = ""
    rounds: int = 0
    health: list[Health] = field(default_factory=list)


def worker_group(topology: Topology) -> str:
    """The chain worker's consumer group (its Faust app id, streams/worker.py)."""
    ns = topology.namespace
    return f"shulian-chain{'-' + ns if ns else ''}"


def group_lag(settings: Settings, group: str, ends: dict[tuple[str, int], int]) -> int:
    from confluent_kafka import Consumer, TopicPartition

    from shulian.io.kafka import consumer_config

    todo = {tp: n for tp, n in ends.items() if n > 0}
    if not todo:
        return 0
    c = Consumer(consumer_config(settings, group_id=group))
    try:
        got = c.committed([TopicPartition(t, p) for t, p in todo], timeout=10)
    finally:
        c.close()
    return sum(max(0, todo[(tp.topic, tp.partition)] - max(tp.offset, 0)) for tp in got)


class Tailer:
    def __init__(self, settings: Settings, catalog: Catalog, topology: Topology, store: Store,
                 *, clock: Clock, interval_s: float = 1.0) -> None:
        self.settings = settings
        self.catalog = catalog
        self.topics = TopicSet.of(catalog, topology)
        self.group = worker_group(topology)
        self.store = store
        self.clock = clock
        self.interval_s = interval_s
        self.state = TailState()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="console-tail", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.round()
                self.state.broker_ok, self.state.broker_error = True, ""
            except ShulianError as exc:
                self.state.broker_ok, self.state.broker_error = False, str(exc)[:300]
                log.warning("console.tail_failed", error=type(exc).__name__)
            self.state.health = probe_all(
                self.settings, broker=(self.state.broker_ok, self.state.broker_error))
            self._stop.wait(self.interval_s)

    def round(self) -> None:
        """Read what is new on every topic and hand it to the store."""
        from shulian.io.reader import partition_counts, read_partitions

        counts = partition_counts(self.settings, self.topics.all())
        starts = {(t, p): self.state.next_offsets.get((t, p), 0)
                  for t, n in counts.items() for p in range(n)}
        parts = read_partitions(self.settings, starts, quiet_s=0.2, idle_s=3.0, timeout_s=60.0)
        for tp, msgs in parts.items():
            if msgs:
                self.state.next_offsets[tp] = msgs[-1].offset + 1
        self._dispatch(parts)
        ends = {tp: self.state.next_offsets.get(tp, 0) for tp in starts if tp[0] in
                self.topics.raw}
        try:
            self.state.lag = Lag(group_lag(self.settings, self.group, ends), self.group)
        except Exception as exc:  # the lag is a figure on a page, not a reason to stop reading
            self.state.lag = Lag(None, self.group, type(exc).__name__)
        self.state.rounds += 1
        self.store.mark_updated(int(self.clock().timestamp() * 1000))

    def _dispatch(self, parts: dict[tuple[str, int], list[InMessage]]) -> None:
        raw, canonical, dead = set(self.topics.raw), set(self.topics.canonical), \
            set(self.topics.deadletter)
        audit = set(self.topics.audit)
        for (topic, partition), msgs in sorted(parts.items()):
            if not msgs:
                continue
            if topic in raw:
                self.store.add_raw(msgs)
            elif topic in canonical:
                self.store.add_canonical(msgs)
            elif topic in dead:
                self.store.add_deadletters(msgs)
            elif topic in audit:
                self.store.add_audit(topic, partition, msgs)
            elif topic == self.topics.control:
                self.store.add_lists(self._lists(msgs))

    def _lists(self, msgs: list[InMessage]) -> list[SharingList]:
        out: list[SharingList] = []
        for m in msgs:
            try:
                text = (m.value or b"").decode("utf-8")
                out.append(load_sharing_list_text(text, source=f"{m.topic}@{m.offset}",
                                                  catalog=self.catalog))
            except (UnicodeDecodeError, ConfigError):
                log.warning("console.bad_list_version", topic=m.topic, offset=m.offset)
        return out
