"""JSON Schema for the registry: validation with references, normal form, a validator.

Pure: no I/O. A schema's references are other subjects' JSON Schemas, found by the name they
are referenced by (``{"$ref": "address.json"}`` with a reference named ``address.json``), as
Confluent's JSON Schema provider and confluent-kafka's ``JSONSerializer`` do. The draft is the
one ``$schema`` names, draft 7 when it names none (Confluent's default).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import jsonschema
import jsonschema.exceptions
import jsonschema.validators
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT7

from shulian.registry import errors as e


class Ref(Protocol):
    """A resolved reference: the name it is referenced by, its type and its text."""

    @property
    def name(self) -> str: ...
    @property
    def schema_type(self) -> str: ...
    @property
    def schema(self) -> str: ...


def load(schema: str) -> Any:
    try:
        obj = json.loads(schema)
    except (json.JSONDecodeError, TypeError) as exc:
        raise e.invalid_schema(f"not JSON: {exc}") from exc
    if not isinstance(obj, dict | bool):
        raise e.invalid_schema("a JSON Schema is an object or a boolean")
    return obj


def registry(referenced: Sequence[Ref]) -> Registry[Any]:
    """The referenced schemas, each under its reference name (and its ``$id``, if it has one)."""
    reg: Registry[Any] = Registry()
    for ref in referenced:
        if ref.schema_type != "JSON":
            raise e.invalid_schema(
                f"reference {ref.name!r} is a {ref.schema_type} schema, not a JSON Schema"
            )
        contents = load(ref.schema)
        resource = Resource.from_contents(contents, default_specification=DRAFT7)
        reg = reg.with_resource(ref.name, resource)
        if isinstance(contents, dict) and isinstance(contents.get("$id"), str):
            reg = reg.with_resource(contents["$id"], resource)
    return reg


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield v
            elif k not in ("const", "enum", "default", "examples"):
                yield from _refs(v)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def validator(schema: str, referenced: Sequence[Ref]) -> jsonschema.protocols.Validator:
    """A validator for instances of ``schema`` (42201 if it is not a valid JSON Schema or a
    ``$ref`` in it resolves to nothing)."""
    obj = load(schema)
    cls = jsonschema.validators.validator_for(obj, default=jsonschema.Draft7Validator)
    try:
        cls.check_schema(obj)
    except jsonschema.exceptions.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise e.invalid_schema(f"not a valid JSON Schema at {where}: {exc.message}") from exc
    reg = registry(referenced)
    resolver = reg.resolver_with_root(Resource.from_contents(obj, default_specification=DRAFT7))
    for ref in _refs(obj):
        try:
            resolver.lookup(ref)
        except Unresolvable as exc:
            raise e.invalid_schema(f"$ref {ref!r} resolves to nothing") from exc
    return cls(obj, registry=reg)


def normal_form(schema: str) -> str:
    """Key-sorted compact JSON (Confluent compares parsed JSON trees: key order is cosmetic)."""
    return json.dumps(load(schema), separators=(",", ":"), sort_keys=True, ensure_ascii=False)
