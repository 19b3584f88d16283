"""The registry through confluent-kafka's own SchemaRegistryClient, serializers and raw HTTP."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from shulian.io.kafka import (
    TopicSpec,
    admin_client,
    consumer_config,
    ensure_topics,
    producer_config,
)
from shulian.serde import SchemaCache, decode_wire, encode_wire, split_wire
from shulian.settings import Settings
from tests.fixtures.registry import RegistryProcess

pytestmark = pytest.mark.both_engines


def rec(name: str, *fields: dict[str, Any]) -> str:
    return json.dumps(
        {"type": "record", "name": name, "namespace": "gov.test", "fields": list(fields)}
    )


A: dict[str, Any] = {"name": "a", "type": "int"}
B: dict[str, Any] = {"name": "b", "type": "string"}
B_DEF: dict[str, Any] = {"name": "b", "type": "string", "default": "x"}


@pytest.fixture
def client(registry: RegistryProcess) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": registry.url})


def fails(fn: Any, *args: Any, **kw: Any) -> tuple[int, int]:
    with pytest.raises(SchemaRegistryError) as exc:
        fn(*args, **kw)
    return exc.value.http_status_code, exc.value.error_code


def test_register_lookup_evolve_and_reject(client: SchemaRegistryClient, unique: str) -> None:
    subj, other = f"reg-{unique}-value", f"reg2-{unique}-value"
    v1_str = rec("R", A)
    v1 = Schema(v1_str, "AVRO")
    sid = client.register_schema(subj, v1)
    fresh = SchemaRegistryClient({"url": client._rest_client.base_urls[0]})  # no client cache
    assert (
        fresh.register_schema(subj, Schema(json.dumps(json.loads(v1_str), indent=4), "AVRO")) == sid
    )
    assert fresh.register_schema(other, v1) == sid  # the same schema under two subjects: one id
    found = fresh.lookup_schema(subj, v1)
    assert (found.schema_id, found.version, found.subject) == (sid, 1, subj)
    assert json.loads(fresh.get_schema(sid).schema_str or "") == json.loads(v1_str)
    assert sorted(fresh.get_subjects_by_schema_id(sid)) == sorted([subj, other])
    v2 = Schema(rec("R", A, B_DEF), "AVRO")
    assert fresh.test_compatibility(subj, v2)
    sid2 = fresh.register_schema(subj, v2)
    assert sid2 != sid and fresh.get_versions(subj) == [1, 2]
    assert fresh.get_latest_version(subj).schema_id == sid2
    bad = Schema(rec("R", A, B_DEF, {"name": "c", "type": "int"}), "AVRO")
    assert not fresh.test_compatibility(subj, bad)
    status, code = fails(fresh.register_schema, subj, bad)
    assert (status, code) == (409, 409)
    assert fresh.get_versions(subj) == [1, 2]
    assert subj in fresh.get_subjects()


@pytest.mark.parametrize(
    ("level", "history", "bad"),
    [
        ("BACKWARD", [rec("R", A)], rec("R", A, B)),
        ("FORWARD", [rec("R", A)], rec("R", B)),
        ("FULL", [rec("R", A)], rec("R", A, B)),
        ("BACKWARD_TRANSITIVE", [rec("R", A), rec("R", A, B_DEF)], rec("R", A, B)),
        ("FORWARD_TRANSITIVE", [rec("R", A, B), rec("R", A, B_DEF)], rec("R", A)),
        ("FULL_TRANSITIVE", [rec("R", A, B), rec("R", A, B_DEF)], rec("R", A)),
    ],
)
def test_rejected_under_each_level(
    client: SchemaRegistryClient, unique: str, level: str, history: list[str], bad: str
) -> None:
    subj = f"lvl-{level.lower()}-{unique}"
    assert client.set_compatibility(subj, level)["compatibility"] == level  # type: ignore[index]
    assert client.get_compatibility(subj) == level
    for schema in history:
        client.register_schema(subj, Schema(schema, "AVRO"))
    assert fails(client.register_schema, subj, Schema(bad, "AVRO")) == (409, 409)
    assert client.set_compatibility(subj, "NONE")["compatibility"] == "NONE"  # type: ignore[index]
    client.register_schema(subj, Schema(bad, "AVRO"))  # NONE accepts it
    assert len(client.get_versions(subj)) == len(history) + 1


def test_soft_and_hard_delete(client: SchemaRegistryClient, unique: str) -> None:
    subj = f"del-{unique}"
    client.register_schema(subj, Schema(rec("R", A), "AVRO"))
    client.register_schema(subj, Schema(rec("R", A, B_DEF), "AVRO"))
    assert fails(client.delete_subject, subj, permanent=True) == (404, 40405)
    assert client.delete_version(subj, 2) == 2
    assert client.get_versions(subj) == [1]
    assert client.delete_version(subj, 2, permanent=True) == 2
    assert client.delete_subject(subj) == [1]
    assert subj not in client.get_subjects()
    assert fails(client.get_versions, subj) == (404, 40401)
    assert fails(client.delete_subject, subj) == (404, 40404)
    assert client.delete_subject(subj, permanent=True) == [1]
    assert fails(client.delete_subject, subj) == (404, 40401)


def test_config_and_modes_including_import(client: SchemaRegistryClient, unique: str) -> None:
    assert client.get_compatibility() == "BACKWARD"
    subj = f"mode-{unique}"
    client.register_schema(subj, Schema(rec("R", A), "AVRO"))
    assert client.update_mode(subj, "READONLY") == "READONLY"
    assert client.get_mode(subj) == "READONLY"
    assert fails(client.register_schema, subj, Schema(rec("R", A, B_DEF), "AVRO")) == (422, 42205)
    assert client.delete_mode(subj) == "READONLY"
    assert client.get_global_mode() == "READWRITE"
    client.register_schema(subj, Schema(rec("R", A, B_DEF), "AVRO"))

    imp = f"import-{unique}"
    assert client.update_mode(imp, "IMPORT") == "IMPORT"
    url = client._rest_client.base_urls[0]
    schema = rec("Imported", A)
    r = httpx.post(
        f"{url}/subjects/{imp}/versions", json={"schema": schema, "id": 7000, "version": 3}
    )
    assert r.status_code == 200 and r.json() == {"id": 7000}
    got = client.get_version(imp, 3)
    assert (got.schema_id, got.version) == (7000, 3)
    assert json.loads(client.get_schema(7000).schema_str or "") == json.loads(schema)
    r = httpx.post(f"{url}/subjects/{imp}/versions", json={"schema": rec("Other", B), "id": 7000})
    assert (r.status_code, r.json()["error_code"]) == (422, 42205)
    r = httpx.post(f"{url}/subjects/{subj}/versions", json={"schema": rec("Other", B), "id": 7001})
    assert (r.status_code, r.json()["error_code"]) == (422, 42205)  # not in IMPORT mode
    client.delete_mode(imp)


def test_references_across_subjects(
    client: SchemaRegistryClient, registry: RegistryProcess, unique: str
) -> None:
    addr_subj, person_subj = f"addr-{unique}", f"person-{unique}"
    addr = json.dumps({"type": "record", "name": "Address", "namespace": "gov.ref", "fields": [B]})
    person = json.dumps(
        {
            "type": "record",
            "name": "Person",
            "namespace": "gov.ref",
            "fields": [{"name": "home", "type": "gov.ref.Address"}],
        }
    )
    client.register_schema(addr_subj, Schema(addr, "AVRO"))
    ref = SchemaReference("gov.ref.Address", addr_subj, 1)
    pid = client.register_schema(person_subj, Schema(person, "AVRO", [ref]))
    got = client.get_schema(pid)
    assert [(r.name, r.subject, r.version) for r in got.references or []] == [
        ("gov.ref.Address", addr_subj, 1)
    ]
    assert client.get_referenced_by(addr_subj, 1) == [pid]
    assert fails(client.delete_version, addr_subj, 1) == (422, 42206)
    # the serde cache resolves references for fastavro
    cache = SchemaCache(registry.url)
    parsed = cache.parsed(pid)
    body = encode_wire(pid, parsed, {"home": {"b": "Main St"}})
    split = split_wire(body)
    assert split is not None and split[0] == pid
    assert decode_wire(parsed, split[1]) == {"home": {"b": "Main St"}}


def test_serializer_kafka_deserializer_roundtrip(
    client: SchemaRegistryClient, registry: RegistryProcess, kafka_settings: Settings, unique: str
) -> None:
    topic = f"t.registry.{unique}"
    ensure_topics(admin_client(kafka_settings), [TopicSpec(topic, 1)])
    schema = rec("Event", A, B_DEF)
    ser = AvroSerializer(client, schema)
    ctx = SerializationContext(topic, MessageField.VALUE)
    producer = Producer(producer_config(kafka_settings))
    records = [{"a": i, "b": f"v{i}"} for i in range(20)]
    for r in records:
        producer.produce(topic, value=ser(r, ctx))
    assert producer.flush(30) == 0
    consumer = Consumer(consumer_config(kafka_settings, group_id=f"g.{unique}"))
    consumer.assign([TopicPartition(topic, 0, 0)])
    deser = AvroDeserializer(SchemaRegistryClient({"url": registry.url}))
    got: list[Any] = []
    deadline = time.monotonic() + 30
    while len(got) < len(records) and time.monotonic() < deadline:
        for m in consumer.consume(100, 0.5):
            assert m.error() is None
            got.append(deser(m.value(), ctx))
    consumer.close()
    assert got == records
    sid = client.get_latest_version(f"{topic}-value").schema_id
    assert sid is not None
    cache = SchemaCache(registry.url)
    assert cache.subjects_of(sid) == frozenset({f"{topic}-value"})
    assert cache.latest_id(f"{topic}-value") == sid
    assert cache.register(f"{topic}-value", schema) == sid
    assert cache.parsed(987654) is None and cache.schema_str(987654) is None


def test_error_cases_answer_with_confluent_codes(registry: RegistryProcess, unique: str) -> None:
    url, subj = registry.url, f"err-{unique}"
    schema = rec("R", A)
    with httpx.Client(base_url=url) as http:
        assert http.post(f"/subjects/{subj}/versions", json={"schema": schema}).status_code == 200

        def check(method: str, path: str, status: int, code: int, **kw: Any) -> None:
            r = http.request(method, path, **kw)
            assert (r.status_code, r.json()["error_code"]) == (status, code), r.text
            assert isinstance(r.json()["message"], str)

        check(
            "POST",
            f"/subjects/{subj}/versions",
            400,
            400,
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        check(
            "POST", f"/subjects/{subj}/versions", 422, 42201, json={"schema": '{"type": "record"}'}
        )
        check("POST", f"/subjects/{subj}/versions", 422, 42201, json={"schema": "not json at all"})
        check("POST", f"/subjects/{subj}/versions", 422, 42201, json={})
        # a JSON Schema under a subject whose versions are Avro: another type, incompatible
        check(
            "POST",
            f"/subjects/{subj}/versions",
            409,
            409,
            json={"schema": '{"type":"object"}', "schemaType": "JSON"},
        )
        check(
            "POST",
            f"/subjects/{subj}/versions",
            422,
            42201,
            json={"schema": 'syntax = "proto3";', "schemaType": "PROTOBUF"},
        )
        for bad in ("0", "abc", "-5"):
            check("GET", f"/subjects/{subj}/versions/{bad}", 422, 42202)
        check("PUT", f"/config/{subj}", 422, 42203, json={"compatibility": "SIDEWAYS"})
        check("PUT", f"/mode/{subj}", 422, 42204, json={"mode": "SOMETIMES"})
        check("GET", f"/subjects/nosuch-{unique}/versions", 404, 40401)
        check("GET", f"/subjects/nosuch-{unique}/versions/1", 404, 40401)
        check("GET", f"/subjects/{subj}/versions/9", 404, 40402)
        check("GET", "/schemas/ids/99999999", 404, 40403)
        check("POST", f"/subjects/{subj}", 404, 40403, json={"schema": rec("Unknown", B)})
        check("POST", f"/subjects/nosuch-{unique}", 404, 40401, json={"schema": schema})
        check("GET", f"/config/{subj}", 404, 40408)
        check("GET", f"/mode/{subj}", 404, 40409)
        assert http.put(f"/mode/{subj}", json={"mode": "READONLY"}).status_code == 200
        check("POST", f"/subjects/{subj}/versions", 422, 42205, json={"schema": rec("R", A, B_DEF)})
        check("DELETE", f"/subjects/{subj}", 422, 42205)
        assert http.delete(f"/mode/{subj}").status_code == 200
        # still serving after all of that
        assert http.get(f"/subjects/{subj}/versions").json() == [1]
        assert http.get(f"/config/{subj}", params={"defaultToGlobal": "true"}).json() == {
            "compatibilityLevel": "BACKWARD"
        }
        raw = http.get(f"/subjects/{subj}/versions/1/schema")
        assert raw.status_code == 200 and raw.json() == json.loads(schema)
        assert http.get("/schemas/types").json() == ["AVRO", "JSON"]
        assert "paths" in http.get("/openapi.json").json()
        verbose = http.post(
            f"/compatibility/subjects/{subj}/versions/latest",
            params={"verbose": "true"},
            json={"schema": rec("R", A, B)},
        ).json()
        assert verbose["is_compatible"] is False and verbose["messages"]
