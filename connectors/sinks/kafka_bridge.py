"""Kafka bridge sink: forwards egress messages to the consumer agency's own Kafka cluster.

Key, value bytes and headers are forwarded untouched (no re-encoding: the value keeps its
Confluent wire-format schema id, so the target needs the same schemas or a registry mirror).
``write_batch`` returns only when the target acknowledged every message (acks=all); the loop
commits the source offsets after that. A redelivered batch is produced again (at least once).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from shulian.connectors.sinks.backoff import RetryPolicy
from shulian.connectors.sinks.config import KafkaBridgeSinkConfig
from shulian.connectors.sinks.failures import PermanentSinkError, RetryableSinkError
from shulian.connectors.sinks.records import SinkRecord
from shulian.errors import SinkError
from shulian.io.sender import DeliveryFailed, Sender
from shulian.log import get_logger

__all__ = ["KafkaBridgeSink", "target_topic"]

log = get_logger("shulian.sinks.kafka_bridge")

_PERMANENT = {
    KafkaError.MSG_SIZE_TOO_LARGE,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.INVALID_RECORD,
}


def target_topic(template: str, topic: str) -> str:
    """The target topic for ``topic`` ({topic}, {consumer}, {dataset} placeholders)."""
    parts = topic.split(".")
    consumer = dataset = ""
    if len(parts) >= 3 and parts[-3] == "egress":
        consumer, dataset = parts[-2], parts[-1]
    return template.format(topic=topic, consumer=consumer, dataset=dataset)


class KafkaBridgeSink:
    def __init__(
        self, config: KafkaBridgeSinkConfig, *, sasl: tuple[str, str] | None = None
    ) -> None:
        self.config = config
        self.name = config.name
        self.retry: RetryPolicy = config.retry
        conf: dict[str, Any] = {
            "bootstrap.servers": config.target_bootstrap_servers,
            "security.protocol": config.security_protocol,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": int(config.timeout_s * 1000),
            "log_level": 3,
        }
        creds = sasl
        if creds is None and config.sasl_mechanism is not None:
            found = config.sasl()
            creds = (found[0], found[1].get_secret_value()) if found else None
        if config.sasl_mechanism is not None and creds is not None:
            conf.update({"sasl.mechanism": config.sasl_mechanism,
                         "sasl.username": creds[0], "sasl.password": creds[1]})
        self._conf = conf
        self._sender: Sender | None = None

    def setup(self) -> None:
        """The target cluster must answer a metadata request: a clear error when it does not."""
        admin_conf = {k: v for k, v in self._conf.items()
                      if k not in ("acks", "linger.ms", "message.timeout.ms")}
        try:
            AdminClient(admin_conf).list_topics(timeout=min(10.0, self.config.timeout_s))
        except KafkaException as exc:
            target = self.config.target_bootstrap_servers
            raise SinkError(f"sink {self.name}: target cluster {target} is unreachable: "
                            f"{exc}") from exc
        self._sender = Sender.with_config(self._conf)
        log.info("sink.kafka_bridge.ready", connector=self.name)

    def write_batch(self, records: Sequence[SinkRecord]) -> None:
        if self._sender is None:
            raise RetryableSinkError("producer not set up")
        try:
            for r in records:
                self._sender.send(
                    target_topic(self.config.topic_template, r.topic), r.raw_value, r.key,
                    headers=list(r.headers) or None, timestamp=r.timestamp_ms or 0,
                )
                self._sender.poll(0)
            self._sender.settle(self.config.timeout_s, what="target messages")
        except KafkaException as exc:
            raise RetryableSinkError(f"target produce failed: {exc}") from exc
        except DeliveryFailed as exc:
            if any(e.code() in _PERMANENT for e in exc.errors):
                raise PermanentSinkError(f"target refused messages: {exc}") from exc
            raise RetryableSinkError(str(exc)) from exc

    def flush(self) -> None:
        if self._sender is not None:
            self._sender.flush(self.config.timeout_s)

    def close(self) -> None:
        self.flush()
        self._sender = None
