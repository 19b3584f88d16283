"""Avro schemas for the registry: parsing (with references), normal form, compatibility.

Pure: no Kafka, no HTTP. Compatibility is judged by Apache Avro's own
``avro.compatibility.ReaderWriterCompatibilityChecker``, never by hand-written rules.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import avro.errors
import avro.name
import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from shulian.registry.errors import invalid_schema


class Level(StrEnum):
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    NONE = "NONE"

    @property
    def transitive(self) -> bool:
        return self.value.endswith("_TRANSITIVE")

    @property
    def backward(self) -> bool:
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def forward(self) -> bool:
        return self.value.startswith(("FORWARD", "FULL"))


def load_json(schema_str: str) -> object:
    try:
        return json.loads(schema_str)
    except (json.JSONDecodeError, TypeError) as exc:
        raise invalid_schema(f"not JSON: {exc}") from exc


def compact(schema_str: str) -> str:
    """The schema as compact JSON (what the registry stores and returns)."""
    return json.dumps(load_json(schema_str), separators=(",", ":"), ensure_ascii=False)


def parse(schema_str: str, *, referenced: Sequence[str] = ()) -> avro.schema.Schema:
    """Parse an Avro schema; ``referenced`` are the schemas it references, dependencies first.

    Raises ApiError(42201) when the schema (or a referenced one) is not valid Avro.
    """
    names = avro.name.Names(validate_names=True)
    try:
        for ref in referenced:
            avro.schema.make_avsc_object(load_json(ref), names)
        return avro.schema.make_avsc_object(load_json(schema_str), names)
    except (avro.errors.AvroException, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise invalid_schema(str(exc) or type(exc).__name__) from exc


@dataclass(frozen=True)
class Existing:
    """A registered version compared against."""

    version: int
    schema_str: str
    parsed: avro.schema.Schema


def _pair_messages(reader: avro.schema.Schema, writer: avro.schema.Schema) -> list[str]:
    result = ReaderWriterCompatibilityChecker().get_compatibility(  # type: ignore[no-untyped-call]
        reader, writer
    )
    if result.compatibility is not SchemaCompatibilityType.incompatible:
        return []
    kinds = ",".join(sorted({t.name.upper() for t in result.incompatibilities}))
    out = []
    for message in sorted(result.messages):
        out.append(
            f"{{errorType:'{kinds}', description:'{message}', "
            f"additionalInfo:'at {', '.join(sorted(result.locations))}'}}"
        )
    return out


def incompatibilities(
    level: Level, new: avro.schema.Schema, existing: Sequence[Existing]
) -> list[str]:
    """Why ``new`` may not follow ``existing`` (oldest first) under ``level``; [] when it may.

    Non-transitive levels compare with the latest version only.
    """
    if level is Level.NONE or not existing:
        return []
    against = list(existing) if level.transitive else [existing[-1]]
    messages: list[str] = []
    for old in reversed(against):
        found: list[str] = []
        if level.backward:
            found += _pair_messages(new, old.parsed)
        if level.forward:
            found += _pair_messages(old.parsed, new)
        if found:
            messages += found
            messages.append(f"{{oldSchemaVersion: {old.version}}}")
            messages.append(f"{{oldSchema: '{old.schema_str}'}}")
            messages.append(f"{{compatibility: '{level.value}'}}")
            break
    return messages
