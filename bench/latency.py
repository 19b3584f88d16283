"""End-to-end latency of the chain at a fixed offered load.

A producer thread sends raw records at ``rate`` per second (paced in 10 ms slices, as an agency
system would) and notes when each was produced; a consumer on the full-view consumer's egress
topic notes when each view arrives. Latency = egress consumed - raw produced, matched by record
key (the credit code; the full view keeps it in clear). Before producing starts the consumer
reads what is already on the egress topic, so old records never count.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence

from confluent_kafka import Consumer, KafkaError, TopicPartition

from shulian.bench.report import LatencyResult, latency_result
from shulian.errors import BrokerError
from shulian.io.kafka import consumer_config
from shulian.io.reader import partition_counts
from shulian.io.sender import Sender
from shulian.settings import Settings

SLICE_S = 0.01


def measure_latency(settings: Settings, *, raw_topic: str, egress_topic: str,
                    records: Sequence[tuple[bytes, bytes]], rate: float, seconds: float,
                    grace_s: float = 15.0) -> LatencyResult:
    """Offer ``rate`` records/s for ``seconds`` (cycling through ``records``).

    A key sent again while an earlier copy is in flight (the soak cycles the records) is matched
    first in, first out: one key keeps its order through the chain (one raw partition, one
    canonical partition, one egress partition)."""
    sent_at: dict[bytes, deque[float]] = {}
    latencies: list[float] = []
    caught_up = threading.Event()
    stop = threading.Event()
    errors: list[str] = []
    parts = partition_counts(settings, [egress_topic])[egress_topic]
    consumer = Consumer(consumer_config(
        settings, group_id=f"bench-latency-{uuid.uuid4().hex[:8]}",
        **{"enable.partition.eof": True, "fetch.wait.max.ms": 5}))
    consumer.assign([TopicPartition(egress_topic, p, 0) for p in range(parts)])

    def consume() -> None:
        at_end: set[int] = set()
        try:
            while not stop.is_set():
                for m in consumer.consume(1000, 0.05):
                    now = time.monotonic()
                    err = m.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            at_end.add(int(m.partition() or 0))
                            if len(at_end) == parts:
                                caught_up.set()
                            continue
                        errors.append(str(err))
                        continue
                    pending = sent_at.get(m.key() or b"")
                    if pending:
                        latencies.append((now - pending.popleft()) * 1000.0)
        finally:
            caught_up.set()

    thread = threading.Thread(target=consume, name="latency-consumer", daemon=True)
    thread.start()
    try:
        if not caught_up.wait(60):
            raise BrokerError(f"could not read {egress_topic} to its end")
        sender = Sender(settings, conf={"linger.ms": 1})
        total = int(rate * seconds)
        per_slice = rate * SLICE_S
        start = time.monotonic()
        for i in range(total):
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0 and i % max(1, int(per_slice)) == 0:
                sender.poll(0)
                time.sleep(delay)
            key, value = records[i % len(records)]
            sent_at.setdefault(key, deque()).append(time.monotonic())
            sender.send(raw_topic, value, key)
        sender.flush(30)
        deadline = time.monotonic() + grace_s
        while any(sent_at.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10)
        consumer.close()
    if errors:
        raise BrokerError(f"reading {egress_topic}: {errors[0]}")
    return latency_result(latencies, offered_rate=rate, seconds=seconds, sent=int(rate * seconds))
