"""The Kafka side of sink dead letters: a producer that waits for the broker's ack."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from connectors.sinks.failures import SinkFailure, deadletter_headers
from connectors.sinks.records import SinkRecord
from shulian.errors import BrokerError
from shulian.io.kafka import TopicSpec, admin_client, ensure_topics, producer_config
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
        self._producer: Producer | None = None

    def setup(self) -> None:
        ensure_topics(admin_client(self.settings), [TopicSpec(self.topic, self.partitions)])
        self._producer = Producer(producer_config(self.settings, **{"linger.ms": 5}))

    def send(
        self, records: Sequence[SinkRecord], *, reason: SinkFailure, detail: str,
        first: int, last: int,
    ) -> None:
        if self._producer is None:
            raise BrokerError("dead-letter producer used before setup()")
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                errors.append(err)

        try:
            for rec in records:
                self._producer.produce(
                    self.topic, key=rec.key, value=rec.raw_value,
                    headers=list[tuple[str, str | bytes | None]](deadletter_headers(
                        rec, connector=self.connector, reason=reason, detail=detail,
                        first=first, last=last)),
                    on_delivery=on_delivery,
                )
            left = self._producer.flush(self.timeout_s)
        except (KafkaException, BufferError) as exc:
            raise BrokerError(f"cannot produce to {self.topic}: {exc}") from exc
        if left or errors:
            raise BrokerError(f"dead letters to {self.topic} not acknowledged: "
                              f"{left} pending, errors {[str(e) for e in errors[:3]]}")

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(self.timeout_s)
            self._producer = None
