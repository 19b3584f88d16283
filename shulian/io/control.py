"""The list versions published on the control topic: parsed and checked (not yet judged: see
:func:`shulian.catalog.describe.history`), and followed (:class:`ControlFollower`, the chain
worker's and the verifying gateway's), and published (:func:`publish_list`). Reading never
creates the topic."""

from __future__ import annotations

import os
import time
from datetime import datetime

from confluent_kafka import Consumer, KafkaError, TopicPartition

from shulian.catalog.load import load_sharing_list_text
from shulian.catalog.models import Catalog, SharingList
from shulian.errors import BrokerError, ConfigError, ConfigIssue
from shulian.io.kafka import consumer_config
from shulian.io.reader import read_topics
from shulian.log import get_logger
from shulian.settings import Settings

__all__ = ["ControlFollower", "publish_list", "published_versions"]

log = get_logger(__name__)


def published_versions(settings: Settings, catalog: Catalog, topic: str
                       ) -> list[tuple[str, SharingList | ConfigError]]:
    """Every message of ``topic`` in offset order: the list it holds, or why it holds none."""
    out: list[tuple[str, SharingList | ConfigError]] = []
    for msgs in read_topics(settings, [topic]).values():
        for m in sorted(msgs, key=lambda m: m.offset):
            where = f"{topic}@{m.offset}"
            try:
                text = (m.value or b"").decode("utf-8")
            except UnicodeDecodeError:
                out.append((where, ConfigError([ConfigIssue(where, "(file)", "not UTF-8")])))
                continue
            try:
                out.append((where, load_sharing_list_text(text, source=where, catalog=catalog)))
            except ConfigError as exc:
                out.append((where, exc))
    return out


class ControlFollower:
    """Reads every message of the control topic (no consumer group: every worker sees all)."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self._consumer = Consumer(
            consumer_config(settings, group_id=f"shulian-control-{os.getpid()}",
                            **{"enable.partition.eof": True})
        )
        self._consumer.assign([TopicPartition(topic, 0, 0)])
        self._topic = topic

    def poll(self, *, timeout_s: float = 0.0) -> list[bytes]:
        values: list[bytes] = []
        for m in self._consumer.consume(100, timeout_s):
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                log.warning("control.read_error", error=str(err))
                continue
            value = m.value()
            if value:
                values.append(value)
        return values

    def catch_up(self, *, quiet_s: float = 1.0) -> list[bytes]:
        """Everything published so far (reads until quiet)."""
        values: list[bytes] = []
        deadline = time.monotonic() + quiet_s
        while time.monotonic() < deadline:
            got = self.poll(timeout_s=0.2)
            if got:
                values.extend(got)
                deadline = time.monotonic() + quiet_s
        return values

    def close(self) -> None:
        self._consumer.close()


def publish_list(settings: Settings, catalog: Catalog, text: str, sl: SharingList, *,
                 topic: str, now: datetime) -> list[str]:
    """Put list version ``sl`` (read from ``text``, which is what goes out) on the control
    topic, if a worker would take it (approved, every signature valid, keys not revoked by
    ``now``); else the reasons, and nothing is written. ``shulian sharing publish`` and the
    console's publish both come here. BrokerError when the broker does not acknowledge it."""
    from confluent_kafka import Producer

    from shulian.catalog.approval import verify_version
    from shulian.catalog.keys import Keyring
    from shulian.io.kafka import producer_config

    why = verify_version(sl, Keyring(catalog.keys), predecessor=sl.supersedes, now=now)
    if why:
        return why
    producer = Producer(producer_config(settings))
    errors: list[str] = []
    producer.produce(topic, text.encode("utf-8"), str(sl.version).encode(),
                     on_delivery=lambda err, _m: errors.append(str(err)) if err else None)
    if producer.flush(30) or errors:
        raise BrokerError(f"publishing list version {sl.version} to {topic} failed: "
                          f"{errors or 'not acknowledged within 30 s'}")
    log.info("sharing_list.published", version=sl.version, topic=topic)
    return []
