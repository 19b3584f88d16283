"""Producing what replay tooling writes (re-deliveries, replay audit records, drill control
records): every message acknowledged (``acks=all``) or a :class:`BrokerError`.

Kafka is imported inside the function, so importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shulian.errors import BrokerError
from shulian.settings import Settings

__all__ = ["Outgoing", "produce_all"]

# (topic, partition or None for the key's partition, key, value, headers)
Outgoing = tuple[str, int | None, bytes | None, bytes, list[tuple[str, bytes]]]


def produce_all(settings: Settings, items: Sequence[Outgoing], *, timeout_s: float = 60.0) -> None:
    """Produce ``items`` in order and wait until the broker acknowledged every one."""
    from confluent_kafka import Producer

    from shulian.io.kafka import producer_config

    producer = Producer(producer_config(settings))
    errors: list[str] = []
    for topic, partition, key, value, headers in items:
        kw: dict[str, Any] = {"headers": headers,
                              "on_delivery": lambda e, _m: errors.append(str(e)) if e else None}
        if partition is not None:
            kw["partition"] = partition
        while True:
            try:
                producer.produce(topic, value, key, **kw)
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(timeout_s) or errors:
        raise BrokerError(f"producing failed: {errors[:3] or 'timeout'}")
