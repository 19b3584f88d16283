"""JSON Schema in the registry's pure layer: validation, normal form, and compatibility by
Confluent's ``SchemaDiff`` rules. The CASES table is the one docs/REGISTRY.md shows."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shulian.registry import commands as c
from shulian.registry import errors as e
from shulian.registry.avro_schemas import Level
from shulian.registry.records import Reference
from shulian.registry.state import RegistryState


def obj(props: dict[str, Any], *, required: tuple[str, ...] = (), closed: bool = False,
        **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props, **extra}
    if required:
        out["required"] = list(required)
    if closed:
        out["additionalProperties"] = False
    return out


S = {"type": "string"}
I = {"type": "integer"}  # noqa: E741
N = {"type": "number"}
BASE = {"name": S, "age": I}

# (case, old, new, level, compatible in Confluent, the change types found)
CASES: list[tuple[str, Any, Any, str, bool]] = [
    ("optional property added to an open object", obj(BASE), obj({**BASE, "x": S}),
     "BACKWARD", False),
    ("optional property added to a closed object", obj(BASE, closed=True),
     obj({**BASE, "x": S}, closed=True), "BACKWARD", True),
    ("property with an empty schema added to an open object", obj(BASE), obj({**BASE, "x": {}}),
     "BACKWARD", True),
    ("required property without default added to a closed object", obj(BASE, closed=True),
     obj({**BASE, "x": S}, required=("x",), closed=True), "BACKWARD", False),
    ("required property with default added to a closed object", obj(BASE, closed=True),
     obj({**BASE, "x": {**S, "default": ""}}, required=("x",), closed=True), "BACKWARD", True),
    ("property removed from an open object", obj(BASE), obj({"name": S}), "BACKWARD", True),
    ("property removed from a closed object", obj(BASE, closed=True),
     obj({"name": S}, closed=True), "BACKWARD", False),
    ("optional property added to an open object, FORWARD", obj(BASE), obj({**BASE, "x": S}),
     "FORWARD", True),
    ("optional property added to an open object, FULL", obj(BASE), obj({**BASE, "x": S}),
     "FULL", False),
    ("property type string -> integer", obj(BASE), obj({**BASE, "name": I}), "BACKWARD", False),
    ("integer widened to number", obj(BASE), obj({**BASE, "age": N}), "BACKWARD", True),
    ("number narrowed to integer", obj({**BASE, "age": N}), obj(BASE), "BACKWARD", False),
    ("maxLength increased", obj({"name": {**S, "maxLength": 5}}),
     obj({"name": {**S, "maxLength": 9}}), "BACKWARD", True),
    ("maxLength decreased", obj({"name": {**S, "maxLength": 9}}),
     obj({"name": {**S, "maxLength": 5}}), "BACKWARD", False),
    ("pattern added", obj(BASE), obj({**BASE, "name": {**S, "pattern": "^a"}}), "BACKWARD", False),
    ("minimum decreased", obj({"age": {**I, "minimum": 5}}), obj({"age": {**I, "minimum": 0}}),
     "BACKWARD", True),
    ("enum extended", obj({"k": {"enum": ["a", "b"]}}), obj({"k": {"enum": ["a", "b", "c"]}}),
     "BACKWARD", True),
    ("enum narrowed", obj({"k": {"enum": ["a", "b"]}}), obj({"k": {"enum": ["a"]}}),
     "BACKWARD", False),
    ("required dropped", obj(BASE, required=("name",)), obj(BASE), "BACKWARD", True),
    ("required added without default", obj(BASE), obj(BASE, required=("name",)),
     "BACKWARD", False),
    ("string widened to [string, null]", obj(BASE), obj({**BASE, "name": {"type": ["string",
     "null"]}}), "BACKWARD", True),
    ("[string, null] narrowed to string", obj({**BASE, "name": {"type": ["string", "null"]}}),
     obj(BASE), "BACKWARD", False),
    ("anyOf extended", obj({"v": {"anyOf": [S]}}), obj({"v": {"anyOf": [S, I]}}),
     "BACKWARD", True),
    ("oneOf narrowed", obj({"v": {"oneOf": [S, I]}}), obj({"v": {"oneOf": [S]}}),
     "BACKWARD", False),
    ("additionalProperties: false dropped (closed -> open)", obj(BASE, closed=True), obj(BASE),
     "BACKWARD", True),
    ("additionalProperties: false added (open -> closed)", obj(BASE), obj(BASE, closed=True),
     "BACKWARD", False),
    ("title and description changed", obj(BASE, title="a", description="b"),
     obj(BASE, title="c", description="d"), "BACKWARD", True),
    ("array items type changed", obj({"l": {"type": "array", "items": S}}),
     obj({"l": {"type": "array", "items": I}}), "BACKWARD", False),
    ("maxItems increased", obj({"l": {"type": "array", "items": S, "maxItems": 1}}),
     obj({"l": {"type": "array", "items": S, "maxItems": 3}}), "BACKWARD", True),
    ("local $ref target changed", {**obj({"a": {"$ref": "#/definitions/A"}}),
     "definitions": {"A": S}}, {**obj({"a": {"$ref": "#/definitions/A"}}),
     "definitions": {"A": I}}, "BACKWARD", False),
    ("anything, level NONE", obj(BASE), obj({"name": I}), "NONE", True),
]


def register(state: RegistryState, subject: str, schema: Any,
             refs: tuple[Reference, ...] = ()) -> int:
    planned = c.plan_register(state, subject, c.Candidate(json.dumps(schema), "JSON", refs))
    for key, value in planned.records:
        state.apply(key, value)
    return planned.schema_id


@pytest.mark.parametrize(("case", "old", "new", "level", "ok"), CASES, ids=[x[0] for x in CASES])
def test_compatibility_follows_confluent(case: str, old: Any, new: Any, level: str,
                                         ok: bool) -> None:
    state = RegistryState()
    state.configs["s"] = Level.NONE
    register(state, "s", {"type": "string"})  # a version before, not compared (not transitive)
    register(state, "s", old)
    state.configs["s"] = Level(level)
    messages = c.compatibility_messages(state, "s", c.Candidate(json.dumps(new), "JSON"))
    assert (not messages) is ok, (case, messages)


def test_references_and_sameness() -> None:
    state = RegistryState()
    addr = {"type": "object", "properties": {"city": S}}
    register(state, "addr", addr)
    ref = (Reference("address.json", "addr", 1),)
    person = {"type": "object", "properties": {"home": {"$ref": "address.json"}}}
    pid = register(state, "person", person, ref)
    # key order is cosmetic: the same id, no new version
    reordered = json.dumps({"properties": {"home": {"$ref": "address.json"}}, "type": "object"})
    assert c.plan_register(state, "person", c.Candidate(reordered, "JSON", ref)).records == []
    assert state.lookup("person", "JSON", reordered, ref).id == pid
    # without the reference, the $ref resolves to nothing
    with pytest.raises(e.ApiError) as exc:
        c.plan_register(state, "other", c.Candidate(json.dumps(person), "JSON"))
    assert (exc.value.status, exc.value.error_code) == (422, 42201)
    # a change inside the referenced subject's next version is seen through the $ref
    state.configs["addr"] = Level.NONE
    register(state, "addr", {"type": "object", "properties": {"city": I}})
    ref2 = (Reference("address.json", "addr", 2),)
    msgs = c.compatibility_messages(state, "person", c.Candidate(json.dumps(person), "JSON", ref2))
    assert msgs and "TYPE_CHANGED" in msgs[0]


def test_a_subject_does_not_change_schema_type() -> None:
    state = RegistryState()
    register(state, "s", {"type": "object"})
    avro = json.dumps({"type": "record", "name": "R", "fields": []})
    msgs = c.compatibility_messages(state, "s", c.Candidate(avro, "AVRO"))
    assert msgs[0] == "Incompatible because of different schema type"
