"""Topic reader for audit and replay: whole partitions or time windows, with ``assign()``.

No consumer group (nothing is committed, production consumers are never touched), so reading
starts at once. Watermarks can lag what was written on the embedded broker, so "the end" is
found by reading: every partition has reported end-of-partition and nothing new arrived for
``quiet_s`` (or, should a broker never report the end, nothing arrived for ``idle_s``).
Records are held in memory: fine for audit windows, not meant for months of traffic.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from shulian.audit.window import Window, resolve_offsets
from shulian.chain.messages import InMessage
from shulian.errors import BrokerError, ConfigError, ConfigIssue
from shulian.io.kafka import admin_client, consumer_config
from shulian.settings import Settings

__all__ = ["Partitions", "partition_counts", "read_partitions", "read_topics", "read_window"]

Partitions = dict[tuple[str, int], list[InMessage]]
Progress = Callable[[int], None]


def partition_counts(settings: Settings, topics: Iterable[str]) -> dict[str, int]:
    """Partition count per topic; a topic that does not exist has 0.

    A topic this process's principal may not read is a ConfigError naming the principal and
    the topics, never an empty topic: an auditor's verification must not report the records
    it may not read as missing."""
    topics = list(topics)
    try:
        md = admin_client(settings).list_topics(timeout=15)
        refused = _refused(settings, topics, md)
    except KafkaException as exc:
        raise BrokerError(f"cannot list topics: {exc}") from exc
    if refused:
        who = settings.principal or "this process (no SHULIAN_PRINCIPAL)"
        raise ConfigError([ConfigIssue("<environment>", "SHULIAN_PRINCIPAL",
                                       f"{who} may not read {', '.join(refused)} (the "
                                       "perimeter's ACLs, docs/SECURITY.md)")])
    out: dict[str, int] = {}
    for t in topics:
        meta = md.topics.get(t)
        out[t] = 0 if meta is None or meta.error is not None else len(meta.partitions)
    return out


def _refused(settings: Settings, topics: list[str], md: Any) -> list[str]:
    """The topics among ``topics`` the broker refuses to describe to this principal. A
    metadata request for all topics leaves them out silently, so they are asked for by name."""
    missing = [t for t in topics if t not in md.topics]
    if not missing:
        return []
    consumer = Consumer(consumer_config(settings, group_id=f"shulian-reader-{os.getpid()}",
                                        **{"allow.auto.create.topics": False, "log_level": 0}))
    try:
        out = []
        for t in missing:
            meta = consumer.list_topics(t, timeout=15).topics.get(t)
            err = None if meta is None else meta.error
            if err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                out.append(t)
        return out
    finally:
        consumer.close()


def _message(m: Any) -> InMessage:
    _, ts = m.timestamp()
    return InMessage(topic=m.topic(), partition=m.partition(), offset=m.offset(), key=m.key(),
                     value=m.value(), timestamp_ms=int(ts), headers=list(m.headers() or ()))


def read_partitions(
    settings: Settings,
    starts: dict[tuple[str, int], int],
    *,
    quiet_s: float = 0.5,
    idle_s: float = 5.0,
    timeout_s: float = 600.0,
    progress: Progress | None = None,
) -> Partitions:
    """Every record of each ``(topic, partition)`` from its start offset to the end."""
    out: Partitions = {tp: [] for tp in starts}
    if not starts:
        return out
    consumer = Consumer(consumer_config(
        settings, group_id=f"shulian-reader-{os.getpid()}-{uuid.uuid4().hex[:8]}",
        **{"enable.partition.eof": True, "fetch.max.bytes": 16 * 1024 * 1024}))
    try:
        consumer.assign([TopicPartition(t, p, off) for (t, p), off in starts.items()])
        at_end: set[tuple[str, int]] = set()
        now = time.monotonic()
        last_data, deadline = now, now + timeout_s
        while True:
            msgs = consumer.consume(5000, 0.1)
            now = time.monotonic()
            got = 0
            for m in msgs:
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        at_end.add((str(m.topic()), int(m.partition() or 0)))
                        continue
                    raise BrokerError(f"reading {m.topic()}[{m.partition()}]: {err}")
                tp = (str(m.topic()), int(m.partition() or 0))
                out[tp].append(_message(m))
                at_end.discard(tp)
                got += 1
            if got:
                last_data = now
                if progress is not None:
                    progress(got)
            quiet = now - last_data
            if (len(at_end) == len(starts) and quiet >= quiet_s) or quiet >= idle_s:
                return out
            if now > deadline:
                raise BrokerError(f"reading {len(starts)} partitions did not finish in "
                                  f"{timeout_s:.0f} s")
    finally:
        consumer.close()


def read_topics(
    settings: Settings, topics: Iterable[str], *, progress: Progress | None = None,
    quiet_s: float = 0.5,
) -> Partitions:
    """Every partition of every existing topic among ``topics``, from the start."""
    counts = partition_counts(settings, topics)
    starts = {(t, p): 0 for t, n in counts.items() for p in range(n)}
    return read_partitions(settings, starts, progress=progress, quiet_s=quiet_s)


def read_window(
    settings: Settings, topics: Iterable[str], window: Window, *,
    progress: Progress | None = None,
) -> Partitions:
    """The records of ``window`` per partition: the offset range resolved by reading the
    record timestamps (not the broker's offsets-for-times), filtered by timestamp inside it."""
    parts = read_topics(settings, topics, progress=progress)
    if window.unbounded:
        return parts
    out: Partitions = {}
    for tp, msgs in parts.items():
        rng = resolve_offsets(((m.offset, m.timestamp_ms) for m in msgs), window)
        out[tp] = [] if rng is None else [
            m for m in msgs if m.offset in rng and window.contains(m.timestamp_ms)]
    return out
