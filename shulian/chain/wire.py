"""The Confluent wire format (magic byte 0, 4-byte big-endian schema id, then the body: Avro
binary, or UTF-8 JSON when the schema id names a JSON Schema, as confluent-kafka's
``JSONSerializer`` writes it).

Pure: bad input becomes a :class:`Rejected` value, never an exception.
"""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass
from typing import Any

from fastavro import schemaless_reader, schemaless_writer
from jsonschema.protocols import Validator

from shulian.logic.result import Reason, Rejected

MAGIC = 0
_HEADER = struct.Struct(">bI")
HEADER_SIZE = _HEADER.size


def split_wire(value: bytes) -> tuple[int, bytes] | Rejected:
    """Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro body."""
    if len(value) < _HEADER.size:
        return Rejected(Reason.BAD_WIRE_FORMAT, f"value of {len(value)} bytes is shorter than "
                        "the 5-byte wire-format header", check="length")
    magic, schema_id = _HEADER.unpack_from(value)
    if magic != MAGIC:
        return Rejected(Reason.BAD_WIRE_FORMAT, f"magic byte {magic & 0xFF} is not 0",
                        check="magic_byte")
    return schema_id, value[_HEADER.size:]


def encode_wire(schema_id: int, parsed: Any, record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    buf.write(_HEADER.pack(MAGIC, schema_id))
    schemaless_writer(buf, parsed, record)
    return buf.getvalue()


@dataclass(frozen=True)
class JsonRecordSchema:
    """A raw JSON Schema ready to check bodies with (its references resolved)."""

    validator: Validator


def decode_json_body(schema: JsonRecordSchema, body: bytes) -> dict[str, Any] | Rejected:
    """A JSON body checked against its schema. The reason names the failing keyword and where
    (never the value: dead-letter headers and logs carry no payload)."""
    try:
        record = json.loads(bytes(body).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return Rejected(Reason.DECODE_ERROR, f"JSON body does not parse: {type(exc).__name__}",
                        check="json_parse")
    if not isinstance(record, dict):
        return Rejected(Reason.DECODE_ERROR, "the JSON value is not an object",
                        check="json_object")
    error = next(iter(sorted(schema.validator.iter_errors(record), key=lambda x: list(map(
        str, x.absolute_path)))), None)
    if error is not None:
        path = "/".join(str(p) for p in error.absolute_path)
        keyword = str(error.validator)
        field = str(error.absolute_path[0]) if error.absolute_path else None
        if keyword == "required" and field is None and isinstance(error.validator_value, list):
            field = next((str(k) for k in error.validator_value if k not in record), None)
        return Rejected(Reason.DECODE_ERROR,
                        f"JSON record does not match its schema at /{path}: '{keyword}' fails",
                        field=field, check=f"json_schema.{keyword}")
    return record


def decode_body(parsed: Any, body: bytes) -> dict[str, Any] | Rejected:
    """Decode an Avro (or JSON) body; truncated, garbled or over-long bodies are rejected,
    never raised."""
    if isinstance(parsed, JsonRecordSchema):
        return decode_json_body(parsed, body)
    bio = io.BytesIO(body)
    try:
        record = schemaless_reader(bio, parsed, None)
    except Exception as exc:
        return Rejected(Reason.DECODE_ERROR, f"Avro body does not decode: {type(exc).__name__}")
    if bio.tell() != len(body):
        return Rejected(Reason.DECODE_ERROR, f"{len(body) - bio.tell()} trailing bytes after "
                        "the Avro record")
    if not isinstance(record, dict):
        return Rejected(Reason.DECODE_ERROR, "the schema is not a record schema")
    return record
