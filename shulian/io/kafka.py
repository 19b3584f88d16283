"""confluent-kafka clients configured the way the chain needs them, and topic administration.

Settings chosen on purpose:
- consumers: ``enable.auto.commit=false`` (offsets are committed only after outputs are acked),
  session timeout and heartbeat per engine (:meth:`Settings.behaviour`): short on Tansu because
  its first group join waits about half of it (measured: 45 s default -> ~23 s join; 6 s ->
  ~3 s).
- producers: ``acks=all``, ``linger.ms`` and ``batch.size`` for throughput; idempotence per
  engine (on for Apache Kafka), see docs/DEPLOY.md.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from shulian.errors import BrokerError
from shulian.settings import Settings


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: tuple[tuple[str, str], ...] = ()


def consumer_config(settings: Settings, *, group_id: str, **extra: Any) -> dict[str, Any]:
    behaviour = settings.behaviour()
    conf: dict[str, Any] = {
        **settings.kafka_common(),
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": behaviour.session_timeout_ms,
        "heartbeat.interval.ms": behaviour.heartbeat_interval_ms,
        "max.poll.interval.ms": 60000,
        "partition.assignment.strategy": "cooperative-sticky",
        "log_level": 3,
    }
    conf.update(extra)
    return conf


MAX_MESSAGE_BYTES = 17 * 1024 * 1024
"""Largest message the chain writes: a dead letter carries a raw record's original bytes (the
worker fetches up to 16 MiB) plus headers. Chain topics are created accepting it
(``max.message.bytes``), and chain producers are allowed it (librdkafka's default is ~1 MB)."""


def producer_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    conf: dict[str, Any] = {
        **settings.kafka_common(),
        "acks": "all",
        "message.max.bytes": MAX_MESSAGE_BYTES,
        "linger.ms": 10,
        "batch.size": 1_000_000,
        "compression.type": "none",
        "queue.buffering.max.messages": 500_000,
        "log_level": 3,
    }
    if settings.behaviour().idempotence:
        conf["enable.idempotence"] = True
    conf.update(extra)
    return conf


def admin_client(settings: Settings) -> AdminClient:
    return AdminClient({**settings.kafka_common(), "log_level": 3})


def ensure_topics(
    admin: AdminClient,
    specs: Iterable[TopicSpec],
    *,
    replication_factor: int = 1,
    timeout_s: float = 30.0,
) -> None:
    """Create missing topics with explicit partition counts; existing ones are left as they are."""
    specs = list(specs)
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as exc:
        raise BrokerError(f"cannot list topics: {exc}") from exc
    missing = [s for s in specs if s.name not in existing]
    if not missing:
        return
    futures = admin.create_topics(
        [
            NewTopic(s.name, num_partitions=s.partitions,
                     replication_factor=replication_factor, config=dict(s.config))
            for s in missing
        ],
        request_timeout=timeout_s,
    )
    for name, fut in futures.items():
        try:
            fut.result()
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" in str(exc):
                continue
            raise BrokerError(f"cannot create topic {name}: {exc}") from exc
    # metadata can lag creation on the embedded broker: wait until every topic is visible
    deadline = time.monotonic() + timeout_s
    names = {s.name for s in missing}
    while time.monotonic() < deadline:
        md = admin.list_topics(timeout=timeout_s)
        if names <= set(md.topics) and all(
            len(md.topics[n].partitions) > 0 for n in names
        ):
            return
        time.sleep(0.1)
    raise BrokerError(f"topics not visible after creation: {sorted(names)}")
