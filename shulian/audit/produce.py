"""Producing what replay tooling writes (re-deliveries, replay audit records, drill control
records): every message acknowledged (``acks=all``) or a :class:`BrokerError`
(:class:`shulian.io.sender.DeliveryFailed`).

Kafka is imported inside the function, so importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shulian.settings import Settings

__all__ = ["Outgoing", "produce_all"]

# (topic, partition or None for the key's partition, key, value, headers)
Outgoing = tuple[str, int | None, bytes | None, bytes, list[tuple[str, bytes]]]


def produce_all(settings: Settings, items: Sequence[Outgoing], *, timeout_s: float = 60.0) -> None:
    """Produce ``items`` in order and wait until the broker acknowledged every one."""
    from shulian.io.sender import Sender

    sender = Sender(settings)
    for topic, partition, key, value, headers in items:
        kw: dict[str, Any] = {"headers": headers}
        if partition is not None:
            kw["partition"] = partition
        sender.send(topic, value, key, **kw)
    sender.settle(timeout_s, what="replay records")
