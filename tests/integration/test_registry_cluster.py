"""Registries on one topic: a restarted registry answers as before; two registries agree."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from tests.fixtures.registry import RegistryProcess

pytestmark = pytest.mark.both_engines


def rec(name: str, *fields: dict[str, Any]) -> str:
    return json.dumps(
        {"type": "record", "name": name, "namespace": "gov.cluster", "fields": list(fields)}
    )


A: dict[str, Any] = {"name": "a", "type": "int"}
B_DEF: dict[str, Any] = {"name": "b", "type": "string", "default": "x"}


def snapshot(url: str, subjects: list[str], ids: list[int]) -> dict[str, Any]:
    """Everything a client could ask about these subjects and ids, as raw answers."""
    out: dict[str, Any] = {}
    with httpx.Client(base_url=url) as http:
        paths = ["/subjects", "/subjects?deleted=true", "/config", "/mode"]
        for s in subjects:
            paths += [
                f"/subjects/{s}/versions",
                f"/subjects/{s}/versions?deleted=true",
                f"/subjects/{s}/versions/latest",
                f"/subjects/{s}/versions/1?deleted=true",
                f"/config/{s}",
                f"/mode/{s}",
            ]
        for i in ids:
            paths += [f"/schemas/ids/{i}", f"/schemas/ids/{i}/versions?deleted=true"]
        for p in paths:
            r = http.get(p)
            out[p] = (r.status_code, r.json())
    return out


def test_restart_answers_exactly_as_before(bootstrap: str, tmp_path: Path, unique: str) -> None:
    topic = f"_schemas.restart.{unique}"
    first = RegistryProcess(bootstrap=bootstrap, topic=topic, log_file=tmp_path / "r1.log").start()
    try:
        c = SchemaRegistryClient({"url": first.url})
        s1, s2 = f"a-{unique}", f"b-{unique}"
        id1 = c.register_schema(s1, Schema(rec("R", A), "AVRO"))
        id2 = c.register_schema(s1, Schema(rec("R", A, B_DEF), "AVRO"))
        assert c.register_schema(s2, Schema(rec("R", A), "AVRO")) == id1
        c.set_compatibility(s2, "FULL")
        c.update_mode(s2, "READONLY")
        c.delete_version(s1, 1)
        c.set_compatibility(None, "FORWARD")
        before = snapshot(first.url, [s1, s2], [id1, id2])
    finally:
        assert first.stop() == 0
    second = RegistryProcess(bootstrap=bootstrap, topic=topic, log_file=tmp_path / "r2.log").start()
    try:
        assert snapshot(second.url, [s1, s2], [id1, id2]) == before
        c2 = SchemaRegistryClient({"url": second.url})
        # ids keep counting from the replayed state, not from 1
        c2.set_compatibility(None, "NONE")
        id3 = c2.register_schema(f"c-{unique}", Schema(rec("Q", A), "AVRO"))
        assert id3 == max(id1, id2) + 1
    finally:
        assert second.stop() == 0


def test_two_instances_on_one_topic_agree(bootstrap: str, tmp_path: Path, unique: str) -> None:
    topic = f"_schemas.pair.{unique}"
    one = RegistryProcess(bootstrap=bootstrap, topic=topic, log_file=tmp_path / "one.log").start()
    two = RegistryProcess(bootstrap=bootstrap, topic=topic, log_file=tmp_path / "two.log").start()
    try:
        c1 = SchemaRegistryClient({"url": one.url})
        c2 = SchemaRegistryClient({"url": two.url})
        subj = f"pair-{unique}"
        id1 = c1.register_schema(subj, Schema(rec("R", A), "AVRO"))
        # registered through one, served by the other (no waiting by the client)
        assert json.loads(c2.get_schema(id1).schema_str or "") == json.loads(rec("R", A))
        assert c2.register_schema(subj, Schema(rec("R", A), "AVRO")) == id1
        # alternate writers: ids and versions stay unique and agreed
        ids = []
        for i in range(6):
            client = (c1, c2)[i % 2]
            ids.append(client.register_schema(f"{subj}-{i}", Schema(rec(f"T{i}", A), "AVRO")))
        assert len({*ids, id1}) == 7
        id2 = c2.register_schema(subj, Schema(rec("R", A, B_DEF), "AVRO"))
        assert c1.get_version(subj, 2).schema_id == id2
        # concurrent writers on both instances, one subject: the topic settles every race
        race = f"race-{unique}"
        c1.set_compatibility(race, "NONE")

        def register(i: int) -> int:
            client = SchemaRegistryClient({"url": (one.url, two.url)[i % 2]})
            return client.register_schema(race, Schema(rec(f"Race{i}", A), "AVRO"))

        with ThreadPoolExecutor(max_workers=6) as pool:
            race_ids = list(pool.map(register, range(6)))
        assert len(set(race_ids)) == 6 and not set(race_ids) & {*ids, id1, id2}
        assert c1.get_versions(race) == c2.get_versions(race) == [1, 2, 3, 4, 5, 6]
        assert sorted(c2.get_version(race, v).schema_id or 0 for v in range(1, 7)) == sorted(
            race_ids
        )
        subjects = [subj, race] + [f"{subj}-{i}" for i in range(6)]
        assert snapshot(one.url, subjects, [*ids, *race_ids, id1, id2]) == snapshot(
            two.url, subjects, [*ids, *race_ids, id1, id2]
        )
    finally:
        assert one.stop() == 0
        assert two.stop() == 0


def test_a_miss_catches_up_with_writes_through_the_other_instance(
    bootstrap: str, tmp_path: Path, unique: str
) -> None:
    """A "not found" is answered from the high watermark, not by writing a marker and reading it
    back (issue 23): every write acknowledged by one instance is still found at once by the
    other, whichever read finds it first."""
    topic = f"_schemas.miss.{unique}"
    one = RegistryProcess(bootstrap=bootstrap, topic=topic, log_file=tmp_path / "one.log").start()
    two = RegistryProcess(bootstrap=bootstrap, topic=topic, log_file=tmp_path / "two.log").start()
    try:
        c1 = SchemaRegistryClient({"url": one.url})
        with httpx.Client(base_url=two.url) as reader:
            for i in range(40):
                subj = f"miss-{unique}-{i}"
                schema = rec(f"M{i}", A)
                sid = c1.register_schema(subj, Schema(schema, "AVRO"))
                kind = i % 4
                if kind == 0:
                    got = reader.get(f"/schemas/ids/{sid}")
                elif kind == 1:
                    got = reader.get(f"/subjects/{subj}/versions/latest")
                elif kind == 2:
                    got = reader.post(f"/subjects/{subj}", json={"schema": schema})
                else:
                    got = reader.get(f"/schemas/ids/{sid}/subjects")
                assert got.status_code == 200, (i, got.text)
                # and the other way round: deleted through two, gone at once on one
                if i % 10 == 9:
                    assert reader.delete(f"/subjects/{subj}").json() == [1]
                    assert httpx.get(f"{one.url}/subjects/{subj}/versions").status_code == 404
            absent = reader.get(f"/subjects/never-{unique}/versions")
            assert (absent.status_code, absent.json()["error_code"]) == (404, 40401)
    finally:
        assert one.stop() == 0
        assert two.stop() == 0
