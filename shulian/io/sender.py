"""The one producer wrapper: every Kafka write of the project goes through a :class:`Sender`.

What it adds to confluent-kafka's ``Producer``:

- :meth:`Sender.send`: a full local queue (``BufferError``) is waited out by serving delivery
  reports (``poll``), never dropped and never an error;
- delivery failures of messages sent without a callback of their own are collected
  (:attr:`Sender.failures`);
- :meth:`Sender.settle`: flush with a timeout, and anything not acknowledged (failures, or
  messages still outstanding) is one :class:`DeliveryFailed` naming what was being written.

The client is configured by :func:`shulian.io.kafka.producer_config` (the one place for
bootstrap servers, security and the chain's producer settings); :meth:`Sender.with_config`
takes a complete configuration for a cluster that is not ours (the Kafka bridge sink's target).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from shulian.errors import BrokerError
from shulian.io.kafka import producer_config
from shulian.settings import Settings

__all__ = ["BUFFER_WAIT_S", "DeliveryCallback", "DeliveryFailed", "Sender"]

BUFFER_WAIT_S = 0.05
"""How long a send waits for delivery reports when the local queue is full, before trying
again."""

DeliveryCallback = Callable[[KafkaError | None, Message], None]


class DeliveryFailed(BrokerError):
    """Messages the broker did not acknowledge: ``errors`` (delivery failures, the first few
    named in the message) and ``left`` (still outstanding at the flush timeout)."""

    def __init__(self, what: str, errors: list[KafkaError], left: int, timeout_s: float) -> None:
        self.errors = errors
        self.left = left
        why = [str(e) for e in errors[:3]]
        if left:
            why.append(f"{left} unacknowledged after {timeout_s:g} s")
        super().__init__(f"{what} not acknowledged: {'; '.join(why)}")


class Sender:
    """One producer client. ``on_failure``: called with each failed delivery of a message sent
    without a callback of its own (default: collected in :attr:`failures`); ``failures_only``:
    successful deliveries call no Python at all (``delivery.report.only.error``: no callback per
    message on the hot path, see :class:`shulian.streams.runtime.OutputProducer`); ``conf``: client
    settings over :func:`~shulian.io.kafka.producer_config`'s."""

    def __init__(self, settings: Settings, *, on_failure: DeliveryCallback | None = None,
                 failures_only: bool = False, conf: Mapping[str, Any] | None = None) -> None:
        self._setup(producer_config(settings, **(conf or {})), on_failure, failures_only)

    @classmethod
    def with_config(cls, conf: Mapping[str, Any]) -> Sender:
        """A sender with a complete client configuration (a cluster that is not the chain's)."""
        sender = cls.__new__(cls)
        sender._setup(dict(conf), None, False)
        return sender

    def _setup(self, conf: dict[str, Any], on_failure: DeliveryCallback | None,
                    failures_only: bool) -> None:
        self.failures: list[KafkaError] = []
        conf["on_delivery"] = on_failure or self._collect
        if failures_only:
            conf["delivery.report.only.error"] = True
        self.client = Producer(conf)
        self._produce = self.client.produce

    def _collect(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self.failures.append(err)

    def send(self, topic: str, value: bytes | None, key: bytes | None = None,
             **kwargs: Any) -> None:
        """Hand one message to the client (``kwargs``: confluent-kafka's ``partition``,
        ``headers``, ``timestamp``, ``on_delivery``). A full local queue is waited out; a
        message the client refuses outright (too large) raises ``KafkaException``."""
        while True:
            try:
                self._produce(topic, value, key, **kwargs)
                return
            except BufferError:
                self.client.poll(BUFFER_WAIT_S)

    def poll(self, timeout_s: float = 0.0) -> int:
        """Serve delivery reports (waiting up to ``timeout_s`` for one)."""
        return int(self.client.poll(timeout_s))

    def flush(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for every acknowledgement; how many are still outstanding."""
        return int(self.client.flush(timeout_s))

    def settle(self, timeout_s: float, *, what: str) -> None:
        """Wait for every acknowledgement; :class:`DeliveryFailed` (naming ``what``) if any
        message failed or is still outstanding after ``timeout_s``. The failures are cleared."""
        left = self.flush(timeout_s)
        errors, self.failures = self.failures, []
        if left or errors:
            raise DeliveryFailed(what, errors, left, timeout_s)
