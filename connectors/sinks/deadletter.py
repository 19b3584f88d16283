"""The Kafka side of sink dead letters: a producer that waits for the broker's ack."""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import KafkaException

from shulian.connectors.sinks.failures import SinkFailure, deadletter_headers
from shulian.connectors.sinks.records import SinkRecord
from shulian.errors import BrokerError
from shulian.io.kafka import TopicSpec, admin_client, ensure_topics
from shulian.io.sender import Sender
from shulian.settings import Settings

__all__ = ["KafkaDeadLetter"]


class KafkaDeadLetter:
    """Produces dead letters to ``topic`` on the source cluster; ``send`` returns once acked."""

    def __init__(
        self, *, settings: Settings, topic: str, connector: str, partitions: int = 1,
        timeout_s: float = 30.0,
    ) -> None:
        self.settings = settings
        self.topic = topic
        self.connector = connector
        self.partitions = partitions
        self.timeout_s = timeout_s
        self._sender: Sender | None = None

    def setup(self) -> None:
        ensure_topics(admin_client(self.settings), [TopicSpec(self.topic, self.partitions)])
        self._sender = Sender(self.settings, conf={"linger.ms": 5})

    def send(
        self, records: Sequence[SinkRecord], *, reason: SinkFailure, detail: str,
        first: int, last: int,
    ) -> None:
        if self._sender is None:
            raise BrokerError("dead-letter producer used before setup()")
        try:
            for rec in records:
                self._sender.send(
                    self.topic, rec.raw_value, rec.key,
                    headers=list[tuple[str, str | bytes | None]](deadletter_headers(
                        rec, connector=self.connector, reason=reason, detail=detail,
                        first=first, last=last)),
                )
        except KafkaException as exc:
            raise BrokerError(f"cannot produce to {self.topic}: {exc}") from exc
        self._sender.settle(self.timeout_s, what=f"dead letters to {self.topic}")

    def close(self) -> None:
        if self._sender is not None:
            self._sender.flush(self.timeout_s)
            self._sender = None
