"""The Confluent wire format (magic byte 0, 4-byte big-endian schema id, Avro body).

Pure: bad input becomes a :class:`Rejected` value, never an exception.
"""

from __future__ import annotations

import io
import struct
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

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


def decode_body(parsed: Any, body: bytes) -> dict[str, Any] | Rejected:
    """Decode an Avro body; truncated, garbled or over-long bodies are rejected, never raised."""
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
