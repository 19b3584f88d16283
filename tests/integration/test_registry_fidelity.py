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
