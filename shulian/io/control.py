"""The list versions published on the control topic: parsed and checked (not yet judged: see
:func:`shulian.catalog.describe.history`), and followed (:class:`ControlFollower`, the chain
worker's and the verifying gateway's), and published (:func:`publish_list`). Reading never
creates the topic."""

from __future__ import annotations

import os
from datetime import datetime

from confluent_kafka import Consumer, Message, TopicPartition

from shulian.catalog.load import load_sharing_list_text
from shulian.catalog.models import Catalog, SharingList
from shulian.chain.topology import CONTROL_GROUP_PREFIX
from shulian.errors import ConfigError, ConfigIssue
from shulian.io.kafka import consumer_config
from shulian.io.reader import read_topics
from shulian.io.tail import EndRule, drain
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
    """Reads every message of the control topic (no consumer group: every worker sees all).

    ``group_id``: the group its requests name (the perimeter grants the control prefix);
    ``error_event``: the log event of a read error (a follower never stops on one)."""

    def __init__(self, settings: Settings, topic: str, *, group_id: str | None = None,
                 error_event: str = "control.read_error") -> None:
        self._consumer = Consumer(
            consumer_config(settings, group_id=group_id or f"{CONTROL_GROUP_PREFIX}{os.getpid()}",
                            **{"enable.partition.eof": True})
        )
        self._consumer.assign([TopicPartition(topic, 0, 0)])
        self._topic = topic
        self._error_event = error_event

    def _read(self, end: EndRule, poll_s: float) -> list[bytes]:
        values: list[bytes] = []

        def take(m: Message) -> None:
            value = m.value()
            if value:
                values.append(value)

        drain(self._consumer, 1, end, take, batch=100, poll_s=poll_s,
              error_event=self._error_event)
        return values

    def poll(self, *, timeout_s: float = 0.0) -> list[bytes]:
        """What one fetch brings (waiting up to ``timeout_s`` for it)."""
        return self._read(EndRule(quiet_s=0.0, idle_s=0.0), timeout_s)

    def catch_up(self, *, quiet_s: float = 1.0) -> list[bytes]:
        """Everything published so far (reads until quiet)."""
        return self._read(EndRule(quiet_s=quiet_s, idle_s=quiet_s), 0.2)

    def close(self) -> None:
        self._consumer.close()


def publish_list(settings: Settings, catalog: Catalog, text: str, sl: SharingList, *,
                 topic: str, now: datetime) -> list[str]:
    """Put list version ``sl`` (read from ``text``, which is what goes out) on the control
    topic, if a worker would take it (approved, every signature valid, keys not revoked by
    ``now``); else the reasons, and nothing is written. ``shulian sharing publish`` and the
    console's publish both come here. BrokerError when the broker does not acknowledge it."""
    from shulian.catalog.approval import verify_version
    from shulian.catalog.keys import Keyring
    from shulian.io.sender import Sender

    why = verify_version(sl, Keyring(catalog.keys), predecessor=sl.supersedes, now=now)
    if why:
        return why
    sender = Sender(settings)
    sender.send(topic, text.encode("utf-8"), str(sl.version).encode())
    sender.settle(30, what=f"list version {sl.version} on {topic}")  # else DeliveryFailed
    log.info("sharing_list.published", version=sl.version, topic=topic)
    return []
