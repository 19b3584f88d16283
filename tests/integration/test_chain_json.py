"""An agency publishing JSON: confluent-kafka's JSONSerializer on a raw topic whose agency schema
is a JSON Schema, through the real registry and a real worker, to a consumer's egress view
(issue 23). Invalid records end as dead letters with their original bytes."""

from __future__ import annotations

import json
import random
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Message, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from shulian.chain.topology import subject_of
from shulian.io.kafka import consumer_config, producer_config
from shulian.io.publish import AgencyPublisher
from shulian.logic.generate import DialectGenerator
from shulian.settings import REPO_ROOT, Settings
from tests.fixtures.chain import StartChain
from tests.fixtures.registry import RegistryProcess

pytestmark = pytest.mark.integration
JSON_SCHEMA = "raw/psb/household_change.schema.json"


def read_topic(settings: Settings, topic: str, *, expect: int, quiet_s: float = 3.0,
               timeout_s: float = 120.0) -> list[Message]:
    """Every message of ``topic``: until ``expect`` arrived and nothing more came for a while."""
    consumer = Consumer(consumer_config(settings, group_id="t-json-reader",
                                        **{"enable.partition.eof": False}))
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in parts])
    out: list[Message] = []
    deadline, quiet_until = time.monotonic() + timeout_s, time.monotonic() + quiet_s
    while time.monotonic() < deadline:
        msgs = [m for m in consumer.consume(500, 0.3) if m.error() is None]
        out += msgs
        if msgs:
            quiet_until = time.monotonic() + quiet_s
        if len(out) >= expect and time.monotonic() > quiet_until:
            break
    consumer.close()
    return out


def json_catalog(tmp_path: Path) -> Path:
    """The shipped catalogue, with the psb mapping naming the JSON Schema raw schema."""
    target = tmp_path / "catalog"
    shutil.copytree(REPO_ROOT / "catalog", target)
    mapping = target / "mappings" / "psb" / "household_change.v1.yaml"
    text = mapping.read_text(encoding="utf-8")
    assert "raw_schema: raw/psb/household_change.avsc" in text
    mapping.write_text(text.replace("raw/psb/household_change.avsc", JSON_SCHEMA),
                       encoding="utf-8")
    return target


@pytest.fixture
def own_registry(bootstrap: str, tmp_path: Path) -> Iterator[RegistryProcess]:
    """A registry of this test's own: raw subjects are not namespaced, and the session registry
    holds psb's raw subject as Avro from every other chain (a subject keeps one schema type)."""
    proc = RegistryProcess(bootstrap=bootstrap, topic=f"_schemas.json.{uuid.uuid4().hex[:8]}",
                           log_file=tmp_path / "registry.log").start()
    yield proc
    proc.stop()


def test_json_serializer_records_reach_the_egress_view(start_chain: StartChain, tmp_path: Path,
                                                        own_registry: RegistryProcess) -> None:
    env = start_chain(catalog_dir=json_catalog(tmp_path), registry_url=own_registry.url)
    settings, catalog, topology = env.settings, env.catalog, env.topology
    pair = ("psb", "household_change")
    assert catalog.mappings[pair].raw_schema_type == "JSON"  # type: ignore[index]
    raw_topic = topology.raw(*pair)
    subject = subject_of(topology.unprefix(raw_topic) or raw_topic)
    client = SchemaRegistryClient({"url": settings.registry_url})
    registered = client.get_latest_version(subject)
    assert registered.schema.schema_type == "JSON"
    schema = (settings.schemas_dir / JSON_SCHEMA).read_text(encoding="utf-8")
    serializer = JSONSerializer(schema, client, conf={"auto.register.schemas": False,
                                                      "use.latest.version": True})
    ctx = SerializationContext(topology.unprefix(raw_topic) or raw_topic, MessageField.VALUE)
    gen = DialectGenerator(catalog=catalog, mapping=catalog.mappings[pair],  # type: ignore[index]
                           raw_schema=json.loads(schema))
    rng = random.Random(23)
    producer = Producer(producer_config(settings))
    sent: dict[str, dict[str, Any]] = {}
    valid = invalid = 0
    for i in range(60):
        g = gen.generate(rng, invalid_rate=0.2)
        g.raw["BDLX"] = "死亡"  # change type 04: what civil affairs' entry delivers
        value = serializer(g.raw, ctx)
        assert value is not None
        producer.produce(raw_topic, value, f"json-{i}".encode())
        if g.valid:
            sent[g.raw["LSH"]] = g.raw
            valid += 1
        else:
            invalid += 1
    # framed by hand: what a JSONSerializer with validation off could send
    sid = registered.schema_id or 0
    frame = b"\x00" + sid.to_bytes(4, "big")
    missing_name = {k: v for k, v in next(iter(sent.values())).items() if k != "XM"}
    wrong_type = {**next(iter(sent.values())), "CSRQ": 19900101}
    for body in (json.dumps(missing_name).encode(), json.dumps(wrong_type).encode(),
                 b"{not json", b"[1, 2]"):
        producer.produce(raw_topic, frame + body, b"bad")
    assert producer.flush(30) == 0
    del producer

    egress_topic = topology.egress("civil", "household_change")
    egress = read_topic(settings, egress_topic, expect=valid)
    assert len(egress) == valid, env.worker.log_text()[-3000:]
    deser = AvroDeserializer(client)
    for m in egress:
        view = deser(m.value(), SerializationContext(m.topic(), MessageField.VALUE))
        raw = sent[view["serial_no"]]
        assert view["_entry_id"] == "psb-civil-household"
        assert view["change_type"] == "04"
        assert view["name"] == raw["XM"] and view["citizen_id"] == raw["SFZH"].upper()
    dead = read_topic(settings, topology.deadletter(*pair), expect=invalid + 4)
    reasons = Counter(dict(m.headers())["shulian.reason"].decode() for m in dead)
    assert reasons == {"element_check_failed": invalid, "decode_error": 4}, reasons
    checks = Counter((dict(m.headers()).get("shulian.check") or b"").decode() for m in dead
                     if dict(m.headers())["shulian.reason"] == b"decode_error")
    assert checks == {"json_schema.required": 1, "json_schema.type": 1, "json_parse": 1,
                      "json_object": 1}, checks
    fields = {dict(m.headers()).get("shulian.field") for m in dead}
    assert {b"XM", b"CSRQ"} <= fields  # named, never the value
    originals = {m.value() for m in dead}
    assert frame + b"{not json" in originals and frame + b"[1, 2]" in originals
    # shulian's own publisher (demo, `shulian publish`) frames such a mapping with JSONSerializer
    publisher = AgencyPublisher(settings, catalog, topology)
    tally = publisher.publish(pair, 7, rng=random.Random(5))
    publisher.flush()
    assert tally.valid[pair] == 7
    canonical = read_topic(settings, topology.canonical("household_change"), expect=valid + 7)
    assert len(canonical) == valid + 7, env.worker.log_text()[-3000:]
