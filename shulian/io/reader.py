"""Topic reader for audit and replay: whole partitions or time windows, with ``assign()``.

No consumer group (nothing is committed, production consumers are never touched), so reading
starts at once. Watermarks can lag what was written on the embedded broker, so "the end" is
found by reading: every partition has reported end-of-partition and nothing new arrived for
``quiet_s`` (or, should a broker never report the end, nothing arrived for ``idle_s``).
Records are held in memory: fine for audit windows, not meant for months of traffic.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException

from shulian.chain.window import Window, resolve_offsets
from shulian.errors import BrokerError, ConfigError, ConfigIssue
from shulian.io.kafka import admin_client, consumer_config
from shulian.io.tail import (
    READ_TIMEOUT_S,
    EndRule,
    Partitions,
    Progress,
    read_to_end,
    reader_group,
)
from shulian.settings import Settings

__all__ = ["Partitions", "partition_counts", "read_partitions", "read_topics", "read_window"]

FETCH_MAX_BYTES = 16 * 1024 * 1024
"""A fetch holds a dead letter's 16 MiB original bytes."""


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
    consumer = Consumer(consumer_config(settings, group_id=reader_group(),
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



def read_partitions(
    settings: Settings,
    starts: dict[tuple[str, int], int],
    *,
    quiet_s: float = 0.5,
    idle_s: float = 5.0,
    timeout_s: float = READ_TIMEOUT_S,
    progress: Progress | None = None,
) -> Partitions:
    """Every record of each ``(topic, partition)`` from its start offset to the end."""
    return read_to_end(settings, starts,
                       end=EndRule(quiet_s=quiet_s, idle_s=idle_s, timeout_s=timeout_s,
                                   errors_keep_reading=True),
                       progress=progress, consumer_conf={"fetch.max.bytes": FETCH_MAX_BYTES})


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
