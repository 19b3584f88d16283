"""The embedded broker: produce and consume with confluent-kafka, explicit partitions."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, Producer, TopicPartition

from shulian.io.kafka import (
    TopicSpec,
    admin_client,
    consumer_config,
    ensure_topics,
    producer_config,
)
from shulian.settings import Settings


def test_produce_consume_roundtrip(kafka_settings: Settings, unique: str) -> None:
    topic = f"t.roundtrip.{unique}"
    ensure_topics(admin_client(kafka_settings), [TopicSpec(topic, 3)])
    md = admin_client(kafka_settings).list_topics(topic, timeout=10)
    assert len(md.topics[topic].partitions) == 3

    producer = Producer(producer_config(kafka_settings))
    acked: list[int] = []
    for i in range(300):
        producer.produce(topic, key=str(i).encode(), value=f"v{i}".encode(),
                         on_delivery=lambda err, msg: acked.append(0 if err is None else 1))
    producer.flush(30)
    assert len(acked) == 300 and sum(acked) == 0

    consumer = Consumer(consumer_config(kafka_settings, group_id=f"g.{unique}"))
    consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
    seen: set[bytes] = set()
    deadline = time.monotonic() + 30
    while len(seen) < 300 and time.monotonic() < deadline:
        for m in consumer.consume(500, 0.5):
            assert m.error() is None
            seen.add(m.value())
    consumer.close()
    assert seen == {f"v{i}".encode() for i in range(300)}
