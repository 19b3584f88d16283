"""The registry's pure layer: records -> state -> answers, and command planning."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shulian.registry import commands as c
from shulian.registry import errors as e
from shulian.registry.records import (
    Key,
    KeyType,
    Record,
    Reference,
    decode_key,
    encode_key,
    noop_record,
)
from shulian.registry.state import Mode, RegistryState


def rec(name: str, fields: list[dict[str, Any]], namespace: str = "t") -> str:
    return json.dumps({"type": "record", "name": name, "namespace": namespace, "fields": fields})


INT_A: dict[str, Any] = {"name": "a", "type": "int"}
STR_B: dict[str, Any] = {"name": "b", "type": "string"}
STR_B_DEFAULT: dict[str, Any] = {"name": "b", "type": "string", "default": "x"}
V1 = rec("R", [INT_A])


class Log:
    """The topic, in memory: every record applied in order, kept for replays."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.state = RegistryState()

    def commit(self, records: list[Record]) -> None:
        for key, value in records:
            self.records.append((key, value))
            self.state.apply(key, value)

    def register(self, subject: str, schema: str, **kw: object) -> int:
        refs = kw.pop("references", ())
        planned = c.plan_register(self.state, subject, c.Candidate(schema, "AVRO", refs), **kw)  # type: ignore[arg-type]
        self.commit(planned.records)
        return planned.schema_id

    def replay(self) -> RegistryState:
        fresh = RegistryState()
        for key, value in self.records:
            fresh.apply(key, value)
        return fresh


def code(exc: pytest.ExceptionInfo[e.ApiError]) -> tuple[int, int]:
    return exc.value.status, exc.value.error_code


@pytest.fixture
def log() -> Log:
    return Log()


def test_register_is_idempotent_and_ids_are_shared_across_subjects(log: Log) -> None:
    first = log.register("s1", V1)
    assert first == 1
    assert log.register("s1", V1) == 1
    assert len(log.records) == 1  # nothing new written for an already registered schema
    reordered = json.dumps(
        {"fields": [INT_A], "namespace": "t", "name": "R", "type": "record"}, indent=2
    )
    assert log.register("s2", reordered) == 1
    assert [v.version for v in log.state.entries("s2")] == [1]
    assert log.state.subject_names() == ["s1", "s2"]
    assert log.register("s1", rec("R", [INT_A, STR_B_DEFAULT])) == 2
    assert [v.version for v in log.state.entries("s1")] == [1, 2]
    assert log.state.entry("s1", "latest").id == 2
    assert log.state.entry("s1", "-1").id == 2
    assert log.state.lookup("s2", "AVRO", reordered, ()).version == 1


def test_record_format_matches_confluent() -> None:
    key, value = c.plan_register(RegistryState(), "sub", c.Candidate(V1)).records[0]
    assert json.loads(key) == {"keytype": "SCHEMA", "subject": "sub", "version": 1, "magic": 1}
    assert list(json.loads(key)) == ["keytype", "subject", "version", "magic"]
    assert value is not None
    body = json.loads(value)
    assert body["subject"] == "sub" and body["version"] == 1 and body["id"] == 1
    assert body["deleted"] is False and "schemaType" not in body
    assert json.loads(body["schema"]) == json.loads(V1)
    assert json.loads(encode_key(Key(KeyType.CONFIG, None))) == {
        "keytype": "CONFIG",
        "subject": None,
        "magic": 0,
    }
    assert decode_key(b"not json") is None
    assert decode_key(b'{"keytype":"SCHEMA","subject":"s"}') is None


LEVEL_CASES = [
    # level, history, compatible next, incompatible next
    ("BACKWARD", [V1], rec("R", [INT_A, STR_B_DEFAULT]), rec("R", [INT_A, STR_B])),
    ("FORWARD", [V1], rec("R", [INT_A, STR_B]), rec("R", [STR_B])),
    ("FULL", [V1], rec("R", [INT_A, STR_B_DEFAULT]), rec("R", [INT_A, STR_B])),
    ("NONE", [V1], rec("R", [STR_B]), None),
    (
        "BACKWARD_TRANSITIVE",
        [V1, rec("R", [INT_A, STR_B_DEFAULT])],
        rec("R", [INT_A, STR_B_DEFAULT, {"name": "c", "type": "int", "default": 0}]),
        rec("R", [INT_A, STR_B]),
    ),
    (
        "FORWARD_TRANSITIVE",
        [rec("R", [INT_A, STR_B]), rec("R", [INT_A, STR_B_DEFAULT])],
        rec("R", [INT_A, STR_B, {"name": "c", "type": "int"}]),
        rec("R", [INT_A]),
    ),
    (
        "FULL_TRANSITIVE",
        [rec("R", [INT_A, STR_B]), rec("R", [INT_A, STR_B_DEFAULT])],
        rec("R", [INT_A, STR_B_DEFAULT, {"name": "c", "type": "int", "default": 0}]),
        rec("R", [INT_A]),
    ),
]


@pytest.mark.parametrize(
    ("level", "history", "good", "bad"), LEVEL_CASES, ids=[x[0] for x in LEVEL_CASES]
)
def test_each_compatibility_level(
    log: Log, level: str, history: list[str], good: str, bad: str | None
) -> None:
    log.commit(c.plan_set_config("s", level)[1])
    for schema in history:
        log.register("s", schema)
    if bad is not None:
        with pytest.raises(e.ApiError) as exc:
            log.register("s", bad)
        assert code(exc) == (409, 409)
        assert "incompatible with an earlier schema" in exc.value.message
        assert level in exc.value.message
        assert c.compatibility_messages(log.state, "s", c.Candidate(bad))
    before = len(log.state.entries("s"))
    log.register("s", good)
    assert len(log.state.entries("s")) == before + 1


def test_transitive_levels_differ_from_plain_ones(log: Log) -> None:
    log.register("plain", V1)
    log.register("plain", rec("R", [INT_A, STR_B_DEFAULT]))
    log.register("plain", rec("R", [INT_A, STR_B]))  # BACKWARD: only the latest is compared
    assert len(log.state.entries("plain")) == 3


def test_explicit_version_compatibility_check(log: Log) -> None:
    log.register("s", V1)
    bad = c.Candidate(rec("R", [INT_A, STR_B]))
    assert c.compatibility_messages(log.state, "s", bad, version_spec="1")
    assert not c.compatibility_messages(log.state, "s", c.Candidate(V1), version_spec="latest")
    assert not c.compatibility_messages(log.state, "unknown", bad)
    with pytest.raises(e.ApiError) as exc:
        c.compatibility_messages(log.state, "unknown", bad, version_spec="1")
    assert code(exc) == (404, 40402)  # as Confluent: no version 1 (not: no subject)
    assert not c.compatibility_messages(log.state, "unknown", bad, version_spec="latest")
    with pytest.raises(e.ApiError) as exc:
        c.compatibility_messages(log.state, "s", bad, version_spec="7")
    assert code(exc) == (404, 40402)


def test_conflicting_writers_first_record_wins(log: Log) -> None:
    log.register("s", V1)
    one = c.plan_register(log.state, "s", c.Candidate(rec("R", [INT_A, STR_B_DEFAULT])))
    two = c.plan_register(log.state, "other", c.Candidate(rec("Q", [STR_B])))
    assert (one.schema_id, two.schema_id) == (2, 2)  # both instances chose the next id
    log.commit(one.records)
    log.commit(two.records)
    assert log.state.entry("s", "latest").id == 2
    assert "other" not in log.state.subjects  # the loser's record was ignored ...
    assert log.state.skipped == 1
    assert log.register("other", rec("Q", [STR_B])) == 3  # ... and its retry takes the next id


def test_same_version_race_keeps_the_first(log: Log) -> None:
    log.commit(c.plan_set_config("s", "NONE")[1])
    log.register("s", V1)
    a = c.plan_register(log.state, "s", c.Candidate(rec("R", [STR_B])))
    b = c.plan_register(log.state, "s", c.Candidate(rec("R", [INT_A, STR_B])))
    log.commit(a.records + b.records)
    assert [v.id for v in log.state.entries("s")] == [1, 2]


def test_soft_and_hard_delete_subject(log: Log) -> None:
    log.register("s", V1)
    log.register("s", rec("R", [INT_A, STR_B_DEFAULT]))
    with pytest.raises(e.ApiError) as exc:
        c.plan_delete_subject(log.state, "s", permanent=True)
    assert code(exc) == (404, 40405)
    versions, records = c.plan_delete_subject(log.state, "s", permanent=False)
    assert versions == [1, 2]
    assert json.loads(records[0][0])["keytype"] == "DELETE_SUBJECT"
    log.commit(records)
    assert log.state.subject_names() == [] and log.state.subject_names(deleted=True) == ["s"]
    with pytest.raises(e.ApiError) as exc:
        log.state.entries("s")
    assert code(exc) == (404, 40401)
    assert [v.version for v in log.state.entries("s", deleted=True)] == [1, 2]
    assert log.state.schema(1).id == 1  # soft-deleted schemas still resolve by id
    with pytest.raises(e.ApiError) as exc:
        c.plan_delete_subject(log.state, "s", permanent=False)
    assert code(exc) == (404, 40404)
    versions, records = c.plan_delete_subject(log.state, "s", permanent=True)
    assert versions == [1, 2] and all(v is None for _, v in records)
    log.commit(records)
    assert log.state.subject_names(deleted=True) == []
    with pytest.raises(e.ApiError) as exc:
        log.state.schema(1)
    assert code(exc) == (404, 40403)
    with pytest.raises(e.ApiError) as exc:
        c.plan_delete_subject(log.state, "s", permanent=False)
    assert code(exc) == (404, 40401)


def test_soft_and_hard_delete_version(log: Log) -> None:
    log.register("s", V1)
    log.register("s", rec("R", [INT_A, STR_B_DEFAULT]))
    with pytest.raises(e.ApiError) as exc:
        c.plan_delete_version(log.state, "s", "1", permanent=True)
    assert code(exc) == (404, 40407)
    version, records = c.plan_delete_version(log.state, "s", "latest", permanent=False)
    assert version == 2
    log.commit(records)
    assert [v.version for v in log.state.entries("s")] == [1]
    with pytest.raises(e.ApiError) as exc:
        log.state.entry("s", "2")
    assert code(exc) == (404, 40402)
    assert log.state.entry("s", "2", deleted=True).deleted
    log.commit(c.plan_delete_version(log.state, "s", "2", permanent=True)[1])
    assert sorted(log.state.subjects["s"]) == [1]
    # a new version after a deleted one continues the numbering
    assert log.register("s", rec("R", [INT_A, {"name": "z", "type": "int", "default": 1}])) == 3
    assert log.state.entry("s", "latest").version == 2


def test_invalid_versions(log: Log) -> None:
    log.register("s", V1)
    for bad in ("0", "abc", "-2", str(2**31)):
        with pytest.raises(e.ApiError) as exc:
            log.state.entry("s", bad)
        assert code(exc) == (422, 42202)


def test_invalid_schemas_and_types(log: Log) -> None:
    for bad in (
        "{not json",
        '{"type": "record", "name": "R"}',
        '{"type": "nosuch"}',
        '"nosuchtype"',
    ):
        with pytest.raises(e.ApiError) as exc:
            log.register("s", bad)
        assert code(exc) == (422, 42201)
    with pytest.raises(e.ApiError) as exc:
        c.plan_register(log.state, "s", c.Candidate('syntax = "proto3";', "PROTOBUF"))
    assert code(exc) == (422, 42201)
    assert "PROTOBUF" in exc.value.message
    for bad_json in ('{"type": 5}', '{"$ref": "nowhere.json"}', "[1]"):
        with pytest.raises(e.ApiError) as exc:
            c.plan_register(log.state, "s", c.Candidate(bad_json, "JSON"))
        assert code(exc) == (422, 42201), bad_json
    assert log.records == []
    assert log.register("prim", '"string"') == 1


def test_config(log: Log) -> None:
    assert log.state.compatibility(None) == "BACKWARD"
    with pytest.raises(e.ApiError) as exc:
        log.state.compatibility("s")
    assert code(exc) == (404, 40408)
    assert log.state.compatibility("s", default_to_global=True) == "BACKWARD"
    log.commit(c.plan_set_config(None, "full")[1])
    log.commit(c.plan_set_config("s", "NONE")[1])
    assert (log.state.compatibility(None), log.state.compatibility("s")) == ("FULL", "NONE")
    for bad in ("SIDEWAYS", 7, None):
        with pytest.raises(e.ApiError) as exc:
            c.plan_set_config("s", bad)
        assert code(exc) == (422, 42203)
    level, records = c.plan_delete_config(log.state, "s")
    assert level == "NONE"
    log.commit(records)
    assert log.state.compatibility("s", default_to_global=True) == "FULL"
    log.commit(c.plan_delete_config(log.state, None)[1])
    assert log.state.compatibility(None) == "BACKWARD"


def test_modes(log: Log) -> None:
    log.register("s", V1)
    log.commit(c.plan_set_mode(log.state, "s", "READONLY", force=False)[1])
    with pytest.raises(e.ApiError) as exc:
        log.register("s", rec("R", [INT_A, STR_B_DEFAULT]))
    assert code(exc) == (422, 42205)
    with pytest.raises(e.ApiError) as exc:
        c.plan_delete_subject(log.state, "s", permanent=False)
    assert code(exc) == (422, 42205)
    assert log.state.mode(None) == Mode.READWRITE
    with pytest.raises(e.ApiError) as exc:
        c.plan_set_mode(log.state, "s", "SOMETIMES", force=False)
    assert code(exc) == (422, 42204)
    with pytest.raises(e.ApiError) as exc:
        c.plan_set_mode(log.state, "s", "IMPORT", force=False)
    assert code(exc) == (422, 42205)  # a subject with schemas goes to IMPORT only with force
    with pytest.raises(e.ApiError) as exc:
        log.state.mode("t")
    assert code(exc) == (404, 40409)
    log.commit(c.plan_delete_mode(log.state, "s")[1])
    assert log.state.mode("s", default_to_global=True) == Mode.READWRITE


def test_import_mode_takes_explicit_ids_and_versions(log: Log) -> None:
    with pytest.raises(e.ApiError) as exc:
        log.register("imp", V1, explicit_id=100)
    assert code(exc) == (422, 42205)
    log.commit(c.plan_set_mode(log.state, "imp", "IMPORT", force=False)[1])
    assert log.register("imp", V1, explicit_id=100, explicit_version=5) == 100
    assert log.state.entry("imp", "latest").version == 5
    # incompatible schemas are accepted in IMPORT mode (history is imported as it was)
    assert log.register("imp", rec("R", [STR_B]), explicit_id=101, explicit_version=6) == 101
    with pytest.raises(e.ApiError) as exc:
        log.register("imp", rec("Other", [STR_B]), explicit_id=100, explicit_version=7)
    assert code(exc) == (422, 42205)
    # ids keep counting after the imported ones
    log.commit(c.plan_delete_mode(log.state, "imp")[1])
    assert log.register("fresh", rec("F", [INT_A])) == 102


def test_references_across_subjects(log: Log) -> None:
    addr = json.dumps({"type": "record", "name": "Address", "namespace": "gov", "fields": [STR_B]})
    person = json.dumps(
        {
            "type": "record",
            "name": "Person",
            "namespace": "gov",
            "fields": [{"name": "home", "type": "gov.Address"}],
        }
    )
    with pytest.raises(e.ApiError) as exc:
        log.register("person", person)
    assert code(exc) == (422, 42201)  # the named type is unknown without its reference
    ref = (Reference("gov.Address", "address", 1),)
    with pytest.raises(e.ApiError) as exc:
        log.register("person", person, references=ref)
    assert code(exc) == (422, 42201)  # the referenced subject does not exist yet
    assert log.register("address", addr) == 1
    assert log.register("person", person, references=ref) == 2
    assert log.state.schema(2).references == ref
    assert log.state.referenced_by("address", 1) == [2]
    parsed: Any = log.state.parsed(2)
    assert parsed.fields[0].type.name == "Address"
    with pytest.raises(e.ApiError) as exc:
        c.plan_delete_version(log.state, "address", "1", permanent=False)
    assert code(exc) == (422, 42206)
    # the same text with different references is a different schema
    assert log.state.lookup("person", "AVRO", person, ref).id == 2


def test_replay_gives_the_same_answers(log: Log) -> None:
    log.register("a", V1)
    log.register("a", rec("R", [INT_A, STR_B_DEFAULT]))
    log.register("b", V1)
    log.commit(c.plan_set_config("b", "FULL")[1])
    log.commit(c.plan_set_mode(log.state, "b", "READONLY", force=False)[1])
    log.commit(c.plan_delete_version(log.state, "a", "1", permanent=False)[1])
    again = log.replay()
    assert again.subjects == log.state.subjects
    assert again.schemas == log.state.schemas
    assert again.configs == log.state.configs and again.modes == log.state.modes
    assert again.max_id == log.state.max_id


def test_foreign_and_malformed_records_are_skipped() -> None:
    state = RegistryState()
    assert not state.apply(None, b"{}")
    assert not state.apply(b'{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}', b"{broken")
    assert not state.apply(
        b'{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}', b'{"id":"x"}'
    )
    assert not state.apply(
        b'{"keytype":"CONFIG","subject":null,"magic":0}', b'{"compatibilityLevel":"NO"}'
    )
    assert state.apply(b'{"keytype":"NOOP","magic":0}', None)
    assert state.subjects == {} and state.skipped == 4


def test_a_writer_sees_when_its_record_lost_the_race(log: Log) -> None:
    log.commit(c.plan_set_config("s", "NONE")[1])
    mine = c.plan_register(log.state, "s", c.Candidate(rec("Mine", [INT_A])))
    theirs = c.plan_register(log.state, "s", c.Candidate(rec("Theirs", [INT_A])))
    assert (mine.schema_id, mine.version) == (theirs.schema_id, theirs.version)
    log.commit(theirs.records)
    log.commit(mine.records)
    assert theirs.applied(log.state, "s")
    assert not mine.applied(log.state, "s")  # same id and version, but not my schema
    again = c.plan_register(log.state, "s", c.Candidate(rec("Mine", [INT_A])))
    assert (again.schema_id, again.version) == (2, 2)


def test_cosmetic_duplicates_from_an_older_log_both_fold(log: Log) -> None:
    """A log written when sameness was decided on the text may hold two ids for texts that now
    normalise alike: both versions replay, and look-ups and new registrations find the first."""
    from shulian.registry.records import schema_record

    short = json.dumps({"type": "record", "name": "R", "namespace": "t", "fields": [INT_A]})
    full = json.dumps({"type": "record", "name": "t.R", "fields": [INT_A]})
    log.commit([
        schema_record(subject="s", version=1, schema_id=1, schema=short, schema_type="AVRO",
                      references=(), deleted=False),
        schema_record(subject="s", version=2, schema_id=2, schema=full, schema_type="AVRO",
                      references=(), deleted=False),
    ])
    state = log.replay()
    assert [v.id for v in state.entries("s")] == [1, 2]
    assert state.lookup("s", "AVRO", full, ()).version == 2  # the newest version holding it
    assert log.register("other", full) == 1
    assert state.schemas[1].identity == state.schemas[2].identity


def test_registering_a_cosmetic_variant_reuses_the_first_text(log: Log) -> None:
    first = log.register("s", rec("R", [{"name": "a", "type": {"type": "string"}}]))
    variant = json.dumps({"type": "record", "name": "t.R", "fields": [
        {"name": "a", "type": "string", "order": "ascending"}]})
    assert log.register("s2", variant) == first
    assert log.state.schemas[first].schema == json.dumps(
        json.loads(rec("R", [{"name": "a", "type": {"type": "string"}}])), separators=(",", ":"))
    assert [v.version for v in log.state.entries("s")] == [1]


def test_noop_carries_the_highest_id_issued() -> None:
    """On a compacted topic only the newest NOOP survives: it keeps a hard-deleted id taken."""
    state = RegistryState()
    key, value = noop_record(48)
    assert state.apply(key, value) and state.max_id == 48
    assert state.apply(*noop_record(7)) and state.max_id == 48  # never lowered
    assert noop_record()[1] is None
