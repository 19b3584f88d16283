"""Schema types the registry knows, one entry point per question, dispatched on ``schemaType``.

Pure: no I/O. A schema's references arrive resolved (:class:`Resolved`, dependencies first).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import avro.errors
import avro.name
import avro.schema

from shulian.registry import errors as e
from shulian.registry import json_compat, json_schemas
from shulian.registry.avro_canonical import normal_string
from shulian.registry.avro_schemas import load_json, parse
from shulian.registry.json_diff_base import Node

SUPPORTED_TYPES = ("AVRO", "JSON")
KNOWN_TYPES = ("AVRO", "JSON", "PROTOBUF")


@dataclass(frozen=True)
class Resolved:
    """A referenced schema: the name it is referenced by, its type and its text."""

    name: str
    schema_type: str
    schema: str


def check_type(schema_type: str) -> None:
    if schema_type not in SUPPORTED_TYPES:
        raise e.ApiError(422, e.INVALID_SCHEMA, f"Invalid schema type {schema_type}")


def validate(schema_type: str, schema: str, referenced: Sequence[Resolved]) -> None:
    """42201 unless ``schema`` is a valid schema of its type with these references."""
    check_type(schema_type)
    if schema_type == "JSON":
        json_schemas.validator(schema, referenced)
    else:
        parse(schema, referenced=[r.schema for r in referenced])


def normal_form(schema_type: str, schema: str, referenced: Sequence[Resolved]) -> str:
    """The text two schemas of one type share exactly when they are "the same schema"."""
    if schema_type == "AVRO":
        names = avro.name.Names(validate_names=True)
        try:
            for ref in referenced:
                avro.schema.make_avsc_object(load_json(ref.schema), names)
        except (avro.errors.AvroException, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise e.invalid_schema(str(exc) or type(exc).__name__) from exc
        known = set(names.names)
        parsed = parse(schema, referenced=[r.schema for r in referenced])
        return normal_string(parsed, known)
    if schema_type == "JSON":
        return json_schemas.normal_form(schema)
    raise e.ApiError(422, e.INVALID_SCHEMA, f"Invalid schema type {schema_type}")


def json_node(schema: str, referenced: Sequence[Resolved]) -> Node:
    """A JSON Schema ready for the compatibility walk (its references resolvable)."""
    return json_compat.root(json_schemas.load(schema), json_schemas.registry(referenced))


def text_form(schema: str) -> str:
    """Key-sorted compact JSON of the text (how sameness was decided before normal forms)."""
    return json.dumps(load_json(schema), separators=(",", ":"), sort_keys=True, ensure_ascii=False)
