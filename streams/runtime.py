"""I/O adapters for the chain worker: output producer, audit tail reader, control-topic follower.

Delivery rule (at-least-once): a batch's outputs are produced with confluent-kafka (C client,
no per-record await) and the agent waits for every acknowledgement before the batch's input
events are acked. A failed delivery is retried; if the broker stays unusable past
``fatal_after_s`` the process exits hard, before anything is acked, so a restart re-reads the
batch. (Faust's ``take_events`` acks a batch in a ``finally`` even when the body raises, so the
body must never raise on infrastructure failure.)
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from shulian.chain.messages import OutMessage
from shulian.errors import BrokerError
from shulian.io.kafka import consumer_config, producer_config
from shulian.log import get_logger
from shulian.logic.audit import AuditChain
from shulian.settings import Settings

log = get_logger(__name__)


class OutputProducer:
    """Produces a batch of OutMessages and waits until every one is acknowledged."""

    def __init__(self, settings: Settings, *, fatal_after_s: float = 300.0) -> None:
        self._producer = Producer(producer_config(settings))
        self._fatal_after_s = fatal_after_s

    def _produce_all(self, msgs: Sequence[OutMessage]) -> list[tuple[OutMessage, KafkaError]]:
        failed: list[tuple[OutMessage, KafkaError]] = []
        produce = self._producer.produce
        for m in msgs:
            headers: Any = m.headers

            def on_delivery(err: KafkaError | None, _msg: Any, m: OutMessage = m) -> None:
                if err is not None:
                    failed.append((m, err))
            while True:
                try:
                    if m.partition is None:
                        produce(m.topic, m.value, m.key, headers=headers, on_delivery=on_delivery)
                    else:
                        produce(m.topic, m.value, m.key, partition=m.partition,
                                headers=headers, on_delivery=on_delivery)
                    break
                except BufferError:
                    self._producer.poll(0.05)
        remaining = self._producer.flush(60)
        if remaining:
            raise BrokerError(f"{remaining} messages not delivered within 60 s")
        return failed

    def deliver(self, msgs: Sequence[OutMessage]) -> None:
        """Blocking: produce all, retry failures with backoff, exit hard if it never succeeds."""
        pending = list(msgs)
        deadline = time.monotonic() + self._fatal_after_s
        backoff = 0.2
        while pending:
            try:
                failed = self._produce_all(pending)
            except BrokerError as exc:
                log.warning("egress.flush_timeout", error=str(exc))
                failed = [(m, KafkaError(KafkaError._TIMED_OUT)) for m in pending]
            if not failed:
                return
            log.warning("output.delivery_failed", count=len(failed), error=str(failed[0][1]))
            if time.monotonic() > deadline:
                log.critical("output.giving_up", count=len(failed))
                os._exit(70)  # nothing acked: a restart re-processes the batch
            time.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
            pending = [m for m, _ in failed]

    async def deliver_async(self, msgs: Sequence[OutMessage]) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.deliver, msgs)

    def close(self) -> None:
        self._producer.flush(10)


def read_tail(
    settings: Settings, topic: str, partition: int, *, quiet_s: float = 0.5
) -> bytes | None:
    """The value of the last record in a partition, found by reading (watermarks can lag on the
    embedded broker, so reading goes on until nothing more arrives for ``quiet_s``)."""
    consumer = Consumer(consumer_config(settings, group_id=f"shulian-tail-{os.getpid()}",
                                        **{"enable.partition.eof": True}))
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        start = 0 if high <= 0 else max(low, high - 1)
        consumer.assign([TopicPartition(topic, partition, start)])
        last: bytes | None = None
        quiet_deadline = time.monotonic() + quiet_s
        while time.monotonic() < quiet_deadline:
            msgs = consumer.consume(1000, 0.2)
            got = False
            for m in msgs:
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise BrokerError(f"reading {topic}[{partition}]: {err}")
                last = m.value()
                got = True
            if got:
                quiet_deadline = time.monotonic() + quiet_s
        return last
    finally:
        consumer.close()


def audit_chain(settings: Settings, topic: str, partition: int) -> AuditChain:
    """The audit chain of a partition, resumed after its last record (read, not trusted)."""
    tail = read_tail(settings, topic, partition)
    try:
        chain = AuditChain.resume(tail)
    except ValueError as exc:
        raise BrokerError(f"last audit record of {topic}[{partition}] is unreadable") from exc
    log.info("audit.chain_resumed", topic=topic, partition=partition, head=chain.head[:12],
             next_seq=chain.next_seq)
    return chain


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
