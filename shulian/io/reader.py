"""Topic reader for audit and replay: whole partitions or time windows, with ``assign()``.

No consumer group (nothing is committed, production consumers are never touched), so reading
starts at once. Watermarks can lag what was written on the embedded broker, so "the end" is
found by reading: every partition has reported end-of-partition and nothing new arrived for
``quiet_s`` (or, should a broker never report the end, nothing arrived for ``idle_s``).
Records are held in memory: fine for audit windows, not meant for months of traffic.
"""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import KafkaException

from shulian.chain.window import Window, resolve_offsets
from shulian.errors import BrokerError
from shulian.io.kafka import admin_client
from shulian.io.tail import READ_TIMEOUT_S, EndRule, Partitions, Progress, read_to_end
from shulian.settings import Settings

__all__ = ["Partitions", "partition_counts", "read_partitions", "read_topics", "read_window"]

FETCH_MAX_BYTES = 16 * 1024 * 1024
"""A fetch holds a dead letter's 16 MiB original bytes."""


def partition_counts(settings: Settings, topics: Iterable[str]) -> dict[str, int]:
    """Partition count per topic; a topic that does not exist has 0."""
    try:
        md = admin_client(settings).list_topics(timeout=15)
    except KafkaException as exc:
        raise BrokerError(f"cannot list topics: {exc}") from exc
    out: dict[str, int] = {}
    for t in topics:
        meta = md.topics.get(t)
        out[t] = 0 if meta is None or meta.error is not None else len(meta.partitions)
    return out


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
