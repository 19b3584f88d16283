"""What third-party registry clients expect (issue 23), through confluent-kafka's own
``SchemaRegistryClient``, or raw HTTP where the client cannot say it."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from tests.fixtures.registry import RegistryProcess


def rec(name: str, *fields: dict[str, Any], ns: str = "gov.fidelity") -> str:
    return json.dumps({"type": "record", "name": name, "namespace": ns, "fields": list(fields)})


A: dict[str, Any] = {"name": "a", "type": "int"}


@pytest.fixture
def client(registry: RegistryProcess) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": registry.url})


def fails(fn: Any, *args: Any, **kw: Any) -> tuple[int, int]:
    with pytest.raises(SchemaRegistryError) as exc:
        fn(*args, **kw)
    return exc.value.http_status_code, exc.value.error_code


def test_trailing_slash_is_the_unslashed_path(registry: RegistryProcess, unique: str) -> None:
    subj = f"slash-{unique}"
    with httpx.Client(base_url=registry.url, follow_redirects=False) as http:
        assert http.put("/config/", json={"compatibility": "FULL"}).json() == {
            "compatibility": "FULL"
        }
        got = http.get("/config/")
        assert (got.status_code, got.json()) == (200, {"compatibilityLevel": "FULL"})
        assert http.put("/config/", json={"compatibility": "BACKWARD"}).status_code == 200
        body = {"schema": rec("S", A)}
        sid = http.post(f"/subjects/{subj}/versions/", json=body).json()["id"]
        assert subj in http.get("/subjects/").json()
        assert http.get(f"/subjects/{subj}/versions/").json() == [1]
        assert http.get(f"/schemas/ids/{sid}/").json()["schema"] == json.dumps(
            json.loads(rec("S", A)), separators=(",", ":")
        )
        assert http.get("/mode/").json() == {"mode": "READWRITE"}
        missing = http.get(f"/subjects/{subj}-absent/versions/")
        assert (missing.status_code, missing.json()["error_code"]) == (404, 40401)


def test_subject_with_slashes(client: SchemaRegistryClient, registry: RegistryProcess,
                              unique: str) -> None:
    subj = f"imports/{unique}/google/protobuf/timestamp.proto"
    sid = client.register_schema(subj, Schema(rec("T", A), "AVRO"))
    assert subj in client.get_subjects()
    assert client.get_latest_version(subj).schema_id == sid
    assert client.lookup_schema(subj, Schema(rec("T", A), "AVRO")).subject == subj
    assert client.get_subjects_by_schema_id(sid) == [subj]
    client.set_compatibility(subj, "FULL")
    assert client.get_compatibility(subj) == "FULL"
    assert client.test_compatibility(subj, Schema(rec("T", A), "AVRO"))
    # a subject literally containing "%2F" is another subject
    odd = f"odd%2F{unique}"
    odd_id = client.register_schema(odd, Schema(rec("T", A), "AVRO"))
    assert odd_id == sid and odd in client.get_subjects() and subj != odd
    assert client.get_versions(odd) == [1]
    # the slashes are not path separators: the unencoded path is another route (generic 404)
    r = httpx.get(f"{registry.url}/subjects/{subj}/versions")
    assert r.status_code == 404
    assert client.delete_subject(subj) == [1]
    assert client.delete_subject(subj, permanent=True) == [1]
    assert fails(client.get_versions, subj) == (404, 40401)


SHORT = {
    "type": "record", "name": "Person", "namespace": "com.acme",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "addr", "type": {"type": "record", "name": "Addr",
                                  "fields": [{"name": "city", "type": "string"}]}},
        {"name": "prev", "type": ["null", "Addr"], "default": None},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]},
         "aliases": ["k2", "k1"]},
    ],
}
VARIANTS = {
    "full name": {**SHORT, "name": "com.acme.Person", "namespace": None},
    "type object": {**SHORT, "fields": [{"name": "id", "type": {"type": "string"}},
                                        *SHORT["fields"][1:]]},  # type: ignore[index]
    "nested namespace repeated": {**SHORT, "fields": [
        SHORT["fields"][0],  # type: ignore[index]
        {"name": "addr", "type": {"type": "record", "name": "Addr", "namespace": "com.acme",
                                  "fields": [{"name": "city", "type": "string"}]}},
        {"name": "prev", "type": ["null", "com.acme.Addr"], "default": None},
        SHORT["fields"][3]]},  # type: ignore[index]
    "explicit ascending order": {**SHORT, "fields": [
        {"name": "id", "type": "string", "order": "ascending"}, *SHORT["fields"][1:]]},  # type: ignore[index]
    "aliases and keys reordered": {"fields": [*SHORT["fields"][:3], {  # type: ignore[index]
        "aliases": ["k1", "k2"], "type": {"symbols": ["A", "B"], "name": "Kind", "type": "enum"},
        "name": "kind"}], "namespace": "com.acme", "name": "Person", "type": "record"},
}
DIFFERENT = {
    "a doc": {**SHORT, "doc": "a person"},
    "a default": {**SHORT, "fields": [{"name": "id", "type": "string", "default": ""},
                                      *SHORT["fields"][1:]]},  # type: ignore[index]
    "descending order": {**SHORT, "fields": [
        {"name": "id", "type": "string", "order": "descending"}, *SHORT["fields"][1:]]},  # type: ignore[index]
    "a logical type": {**SHORT, "fields": [
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
        *SHORT["fields"][1:]]},  # type: ignore[index]
}


def avro(obj: dict[str, Any]) -> Schema:
    return Schema(json.dumps({k: v for k, v in obj.items() if v is not None}), "AVRO")


def test_sameness_is_decided_on_the_parsed_schema(registry: RegistryProcess, unique: str) -> None:
    subj = f"canon-{unique}"
    setup = SchemaRegistryClient({"url": registry.url})
    setup.set_compatibility(subj, "NONE")
    sid = setup.register_schema(subj, avro(SHORT))
    for why, variant in VARIANTS.items():
        fresh = SchemaRegistryClient({"url": registry.url})  # no client-side cache
        found = fresh.lookup_schema(subj, avro(variant))
        assert (found.schema_id, found.version) == (sid, 1), why
        assert fresh.register_schema(subj, avro(variant)) == sid, why
        assert fresh.register_schema(subj, avro(variant), normalize_schemas=True) == sid, why
    assert setup.get_versions(subj) == [1]
    for why, other in DIFFERENT.items():
        fresh = SchemaRegistryClient({"url": registry.url})
        assert fails(fresh.lookup_schema, subj, avro(other)) == (404, 40403), why
    # the stored text is the first one registered
    assert json.loads(setup.get_schema(sid).schema_str or "") == SHORT


def test_compatibility_of_a_subject_without_versions(client: SchemaRegistryClient,
                                                      unique: str) -> None:
    subj = f"first-{unique}"
    schema = Schema(rec("F", A), "AVRO")
    assert client.test_compatibility(subj, schema) is True  # versions/latest
    assert client.test_compatibility_all_versions(subj, schema) is True
    assert fails(client.test_compatibility, subj, schema, version=3) == (404, 40402)
    # a subject whose versions are all soft-deleted has none either
    client.register_schema(subj, schema)
    client.delete_subject(subj)
    assert client.test_compatibility(subj, Schema(rec("F", {"name": "x", "type": "int"}), "AVRO"))
    assert fails(client.test_compatibility, subj, schema, version=1) == (404, 40402)


def test_schemas_listing_metadata_contexts_and_max_id(
    client: SchemaRegistryClient, registry: RegistryProcess, unique: str
) -> None:
    pre = f"list-{unique}"
    client.set_compatibility(None, "BACKWARD")
    id1 = client.register_schema(f"{pre}-a", Schema(rec("L", A), "AVRO"))
    id2 = client.register_schema(
        f"{pre}-a", Schema(rec("L", A, {"name": "b", "type": "int", "default": 0}), "AVRO")
    )
    id3 = client.register_schema(f"{pre}-b", Schema(rec("M", A), "AVRO"))
    client.delete_subject(f"{pre}-b")
    with httpx.Client(base_url=registry.url) as http:
        def listed(**params: Any) -> list[tuple[str, int, int]]:
            got = http.get("/schemas", params={"subjectPrefix": pre, **params}).json()
            return [(x["subject"], x["version"], x["id"]) for x in got]

        assert listed() == [(f"{pre}-a", 1, id1), (f"{pre}-a", 2, id2)]
        assert listed(latestOnly="true") == [(f"{pre}-a", 2, id2)]
        assert listed(deleted="true") == [(f"{pre}-a", 1, id1), (f"{pre}-a", 2, id2),
                                          (f"{pre}-b", 1, id3)]
        assert listed(deleted="true", latestOnly="true", offset=1) == [(f"{pre}-b", 1, id3)]
        full = http.get("/schemas", params={"subjectPrefix": pre, "limit": 1}).json()
        assert full == [{"subject": f"{pre}-a", "version": 1, "id": id1,
                         "schema": client.get_schema(id1).schema_str}]
        got = http.get(f"/schemas/ids/{id1}", params={"fetchMaxId": "true"}).json()
        assert got["maxId"] >= id3 and "maxId" not in http.get(f"/schemas/ids/{id1}").json()
        meta = http.get("/v1/metadata/id").json()
        assert meta["scope"]["clusters"]["kafka-cluster"]
        assert meta["scope"]["clusters"]["schema-registry-cluster"] == registry.topic
    assert client.get_contexts() == ["."]


def test_global_mode_can_be_deleted(client: SchemaRegistryClient, registry: RegistryProcess,
                                    unique: str) -> None:
    client.update_global_mode("READONLY")
    try:
        refused = fails(client.register_schema, f"ro-{unique}", Schema(rec("Q", A), "AVRO"))
        assert refused == (422, 42205)
    finally:
        got = httpx.delete(f"{registry.url}/mode")
    assert (got.status_code, got.json()) == (200, {"mode": "READONLY"})
    assert client.get_global_mode() == "READWRITE"
    assert client.register_schema(f"ro-{unique}", Schema(rec("Q", A), "AVRO")) > 0


def test_data_contracts_are_refused_not_dropped(client: SchemaRegistryClient,
                                                unique: str) -> None:
    from confluent_kafka.schema_registry import (
        Metadata,
        MetadataProperties,
        MetadataTags,
        Rule,
        RuleKind,
        RuleMode,
        RuleSet,
    )

    subj = f"contract-{unique}"
    meta = Metadata(MetadataTags({}), MetadataProperties({"owner": "psb"}), [])
    with pytest.raises(SchemaRegistryError) as exc:
        client.register_schema(subj, Schema(rec("C", A), "AVRO", metadata=meta))
    assert (exc.value.http_status_code, exc.value.error_code) == (422, 42201)
    assert "metadata" in exc.value.error_message and "not supported" in exc.value.error_message
    rule = Rule("checkA", None, RuleKind.CONDITION, RuleMode.WRITE, "CEL", None, None,
                "message.a > 0", None, None, False)
    rules = RuleSet(None, [rule])
    assert fails(client.register_schema, subj,
                 Schema(rec("C", A), "AVRO", rule_set=rules)) == (422, 42201)
    assert fails(client.get_versions, subj) == (404, 40401)  # nothing half-registered
    empty = Metadata(MetadataTags({}), MetadataProperties({}), [])
    assert client.register_schema(subj, Schema(rec("C", A), "AVRO", metadata=empty)) > 0


def test_json_schema_registration_references_lookup_and_serializers(
    client: SchemaRegistryClient, unique: str
) -> None:
    from confluent_kafka.schema_registry import SchemaReference
    from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    assert client.get_schema_types() == ["AVRO", "JSON"]
    addr = {"type": "object", "properties": {"city": {"type": "string"}},
            "additionalProperties": False}
    addr_subject = f"addr-{unique}"
    client.register_schema(addr_subject, Schema(json.dumps(addr), "JSON"))
    person = {"$schema": "http://json-schema.org/draft-07/schema#", "title": "Person",
              "type": "object", "additionalProperties": False,
              "properties": {"name": {"type": "string"}, "home": {"$ref": "address.json"}},
              "required": ["name"]}
    refs = [SchemaReference("address.json", addr_subject, 1)]
    subj = f"person-{unique}-value"
    sid = client.register_schema(subj, Schema(json.dumps(person), "JSON", refs))
    got = client.get_schema(sid)
    assert got.schema_type == "JSON" and json.loads(got.schema_str or "") == person
    assert [r.name for r in got.references] == ["address.json"]
    # look-up by the parsed schema: key order and whitespace are cosmetic
    reordered = json.dumps(dict(reversed(list(person.items()))), indent=2)
    fresh = SchemaRegistryClient({"url": client._rest_client.base_urls[0]})
    assert fresh.lookup_schema(subj, Schema(reordered, "JSON", refs)).schema_id == sid
    assert fresh.register_schema(subj, Schema(reordered, "JSON", refs)) == sid
    # compatibility, Confluent's rules: adding an optional property to a closed model is fine,
    # making it required without a default is not; a property in an open model is not
    wider = {**person, "properties": {**person["properties"], "phone": {"type": "string"}}}
    assert fresh.test_compatibility(subj, Schema(json.dumps(wider), "JSON", refs))
    stricter = {**wider, "required": ["name", "phone"]}
    assert not fresh.test_compatibility(subj, Schema(json.dumps(stricter), "JSON", refs))
    assert fails(fresh.register_schema, subj, Schema(json.dumps(stricter), "JSON", refs)) == (
        409, 409)
    # an Avro schema under a JSON subject is another type: incompatible
    assert not fresh.test_compatibility(subj, Schema(rec("P", A), "AVRO"))
    # invalid JSON Schemas and unresolvable $refs are 42201; Protobuf stays refused
    bad = Schema(json.dumps({"type": "object", "properties": {"a": {"type": 7}}}), "JSON")
    assert fails(fresh.register_schema, f"bad-{unique}", bad) == (422, 42201)
    dangling = Schema(json.dumps({"$ref": "nowhere.json"}), "JSON")
    assert fails(fresh.register_schema, f"bad-{unique}", dangling) == (422, 42201)
    proto = Schema('syntax = "proto3"; message M { string a = 1; }', "PROTOBUF")
    with pytest.raises(SchemaRegistryError) as exc:
        fresh.register_schema(f"bad-{unique}", proto)
    assert exc.value.error_code == 42201 and "PROTOBUF" in exc.value.error_message
    # confluent-kafka's own JSONSerializer / JSONDeserializer against the registered schema
    topic = f"person-{unique}"
    ser = JSONSerializer(json.dumps(person), fresh, conf={"auto.register.schemas": False,
                                                          "use.latest.version": True})
    ctx = SerializationContext(topic, MessageField.VALUE)
    value = {"name": "张三", "home": {"city": "广州"}}
    framed = ser(value, ctx)
    assert framed is not None and framed[0] == 0 and int.from_bytes(framed[1:5], "big") == sid
    de = JSONDeserializer(None, schema_registry_client=fresh)
    assert de(framed, ctx) == value
