"""The registry's ``_schemas`` topic is compacted on Apache Kafka (keep the newest value per key,
tombstones dropped): after many updates and deletes, forced compaction (segments rolled every
100 ms, no compaction lag, tombstones kept 0 ms) leaves a log from which a fresh registry
rebuilds exactly the same state, and ids never issued twice.

Tansu does not compact, so this test runs with ``--engine kafka`` only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from shulian.embedded.net import wait_until
from shulian.io.kafka import TopicSpec, admin_client, consumer_config, ensure_topics
from shulian.registry.store import SCHEMAS_TOPIC_CONFIG
from shulian.settings import Settings
from tests.fixtures.registry import RegistryProcess

pytestmark = [pytest.mark.integration, pytest.mark.kafka_only]

FORCE_COMPACTION = (
    ("segment.ms", "100"),  # roll a segment on the first write 100 ms after the last roll
    ("min.compaction.lag.ms", "0"),
    ("min.cleanable.dirty.ratio", "0.01"),
    ("delete.retention.ms", "0"),  # tombstones go on the next cleaning
)


def rec(name: str, n: int) -> str:
    fields = [{"name": f"f{i}", "type": "string", "default": ""} for i in range(n)]
    return json.dumps({"type": "record", "name": name, "namespace": "gov.compact",
                       "fields": fields})


def read_log(settings: Settings, topic: str) -> tuple[int, int]:
    """(records present, end offset) of the topic's single partition."""
    c = Consumer(consumer_config(settings, group_id=f"count-{topic}",
                                 **{"enable.partition.eof": True}))
    try:
        _, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        c.assign([TopicPartition(topic, 0, 0)])
        count = 0
        while True:
            msgs = c.consume(1000, 5.0)
            assert msgs, "no end of partition within 5 s"
            for m in msgs:
                err = m.error()
                if err is not None and err.code() == KafkaError._PARTITION_EOF:
                    return count, high
                assert err is None, err
                count += 1
    finally:
        c.close()


def snapshot(url: str, subjects: list[str], ids: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with httpx.Client(base_url=url) as http:
        paths = ["/subjects", "/subjects?deleted=true", "/config", "/mode", "/schemas"]
        for s in subjects:
            paths += [f"/subjects/{s}/versions", f"/subjects/{s}/versions?deleted=true",
                      f"/config/{s}", f"/mode/{s}"]
            paths += [f"/subjects/{s}/versions/{v}?deleted=true" for v in range(1, 6)]
        paths += [f"/schemas/ids/{i}" for i in ids]
        for p in paths:
            r = http.get(p)
            out[p] = (r.status_code, r.json())
    return out


def test_fresh_registry_rebuilds_the_same_state_after_compaction(
    kafka_settings: Settings, tmp_path: Path, unique: str
) -> None:
    topic = f"_schemas.compact.{unique}"
    ensure_topics(admin_client(kafka_settings),
                  [TopicSpec(topic, 1, (*SCHEMAS_TOPIC_CONFIG, *FORCE_COMPACTION))])
    first = RegistryProcess(bootstrap=kafka_settings.bootstrap_servers, topic=topic,
                            log_file=tmp_path / "first.log").start()
    subjects = [f"s{i}-{unique}" for i in range(12)]
    ids: list[int] = []
    try:
        c = SchemaRegistryClient({"url": first.url})
        c.set_compatibility(None, "BACKWARD")
        for rnd in range(4):  # four versions per subject, settings rewritten every round
            for i, s in enumerate(subjects):
                ids.append(c.register_schema(s, Schema(rec(f"R{i}", rnd + 1), "AVRO")))
                c.set_compatibility(s, ("FULL", "NONE", "FORWARD", "BACKWARD")[(rnd + i) % 4])
        for i, s in enumerate(subjects):
            if i % 3 == 0:  # soft delete one version
                c.delete_version(s, 2)
            elif i % 3 == 2:  # soft delete the subject, then hard delete it (tombstones); the
                # last subject is one of them, so the highest id issued is hard-deleted
                c.delete_subject(s)
                c.delete_subject(s, permanent=True)
            if i % 4 == 0:
                c.update_mode(s, "READONLY")
                c.update_mode(s, "READWRITE")
        c.set_compatibility(None, "FULL")
        before = snapshot(first.url, subjects, ids)
        issued = max(ids)

        # each write after 100 ms rolls a segment, so the cleaner can take all but the last;
        # wait until it has dropped at least half of what was written
        def compacted() -> bool:
            httpx.get(f"{first.url}/subjects", timeout=5)
            c.set_compatibility(None, "FULL")  # an update of one key: rolls a segment
            count, end = read_log(kafka_settings, topic)
            return count < end // 2

        assert wait_until(compacted, timeout_s=120, interval_s=2), \
            f"not compacted: {read_log(kafka_settings, topic)}"
        count, end = read_log(kafka_settings, topic)
        print(f"\n_schemas compaction: {count} records left of {end} written")
        assert snapshot(first.url, subjects, ids) == before
    finally:
        assert first.stop() == 0

    fresh = RegistryProcess(bootstrap=kafka_settings.bootstrap_servers, topic=topic,
                            log_file=tmp_path / "fresh.log").start()
    try:
        assert snapshot(fresh.url, subjects, ids) == before
        # ids are never issued twice, even those of hard-deleted schemas
        c2 = SchemaRegistryClient({"url": fresh.url})
        new_id = c2.register_schema(f"new-{unique}", Schema(rec("New", 7), "AVRO"))
        assert new_id > issued
    finally:
        assert fresh.stop() == 0
