"""JSON (or CSV text, or database) values -> a record of the raw schema, or why not. Pure.

Shared by every source: the gateway, the file drop and the table poll all go through
:func:`encode_checked` (coerce, validate, Confluent wire format). Rejections name the field and
the expected type and never contain the offending value (it may be personal data).

Coercions (lenient where the meaning is unambiguous):
- string: text; integers, decimals, dates and datetimes become their canonical text
- int/long: integers, integral decimals, text of an integer; range-checked
- float/double: numbers, decimals, numeric text
- boolean: true/false, and text true/false/1/0
- enum: text naming a symbol
- logical date: ISO date text or a date; timestamp-millis/micros: ISO datetime text (with
  offset; naive means UTC) or a datetime
- nullable fields: null, missing, or (CSV) one of the configured null cells -> null
- fields with a default may be missing
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import math
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import fastavro
from fastavro.validation import validate

from shulian.logic.result import Accepted, Reason, Rejected

__all__ = [
    "FieldSpec",
    "RawSchema",
    "coerce_record",
    "encode_checked",
    "field_specs",
    "record_key",
]

_INT_RE = re.compile(r"^[+-]?\d+$")
_NUM_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_RANGES = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MISSING = object()
_HEADER = struct.Struct(">bI")


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One top-level field of a raw record schema, reduced to what coercion needs."""

    name: str
    type: Any  # the non-null branch: "string", {"type": "long", "logicalType": ...}, ...
    nullable: bool
    has_default: bool
    default: Any = None


@dataclass(frozen=True)
class RawSchema:
    """A registered raw schema: id, the fastavro-parsed form and its fields."""

    subject: str
    schema_id: int
    parsed: Any
    fields: tuple[FieldSpec, ...]

    @classmethod
    def of(cls, subject: str, schema_id: int, schema: Mapping[str, Any]) -> RawSchema:
        return cls(subject, schema_id, fastavro.parse_schema(dict(schema)),
                   field_specs(schema))


def field_specs(schema: Mapping[str, Any]) -> tuple[FieldSpec, ...]:
    """The fields of a record schema (JSON form)."""
    if schema.get("type") != "record":
        raise ValueError("the raw schema must be an Avro record")
    out = []
    for f in schema["fields"]:
        t = f["type"]
        nullable = False
        if isinstance(t, list):
            branches = [b for b in t if b != "null"]
            nullable = len(branches) < len(t)
            t = branches[0] if len(branches) == 1 else branches
        out.append(FieldSpec(f["name"], t, nullable, "default" in f, f.get("default")))
    return tuple(out)


def _type_name(t: Any) -> str:
    if isinstance(t, dict):
        return str(t.get("logicalType") or t.get("type"))
    if isinstance(t, list):
        return "union"
    return str(t)


def _describe(value: Any) -> str:
    """What kind of value was sent, never the value itself."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float | decimal.Decimal):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dt.datetime):
        return "a timestamp"
    if isinstance(value, dt.date):
        return "a date"
    return type(value).__name__


class _Bad(Exception):
    def __init__(self, why: str) -> None:
        self.why = why


def _to_int(value: Any, kind: str) -> int:
    if isinstance(value, bool):
        raise _Bad(f"expected an integer ({kind}), got a boolean")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str) and _INT_RE.match(value.strip()):
        n = int(value.strip())
    elif (isinstance(value, decimal.Decimal) and value == value.to_integral_value()) or (
            isinstance(value, float) and value.is_integer()):
        n = int(value)
    else:
        raise _Bad(f"expected an integer ({kind}), got {_describe(value)}"
                   + (" that is not an integer" if isinstance(value, str | float) else ""))
    lo, hi = _RANGES[kind]
    if not lo <= n <= hi:
        raise _Bad(f"integer out of range for {kind}")
    return n


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise _Bad("expected a number, got a boolean")
    if isinstance(value, int | float | decimal.Decimal):
        return float(value)
    if isinstance(value, str) and _NUM_RE.match(value.strip()):
        return float(value.strip())
    raise _Bad(f"expected a number, got {_describe(value)}")


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise _Bad("expected text, got a boolean")
    if isinstance(value, int | decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    raise _Bad(f"expected text, got {_describe(value)}")


def _to_datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        d = value
    elif isinstance(value, str):
        try:
            d = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise _Bad("expected an ISO 8601 timestamp") from None
    else:
        raise _Bad(f"expected an ISO 8601 timestamp, got {_describe(value)}")
    return d if d.tzinfo is not None else d.replace(tzinfo=dt.UTC)


def _to_date(value: Any) -> int:
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        return (value - dt.date(1970, 1, 1)).days
    if isinstance(value, str):
        try:
            return (dt.date.fromisoformat(value.strip()) - dt.date(1970, 1, 1)).days
        except ValueError:
            raise _Bad("expected an ISO 8601 date (YYYY-MM-DD)") from None
    if isinstance(value, int) and not isinstance(value, bool):
        return _to_int(value, "int")
    raise _Bad(f"expected an ISO 8601 date, got {_describe(value)}")


def _coerce(t: Any, value: Any) -> Any:
    if isinstance(t, dict):
        logical = t.get("logicalType")
        base = t.get("type")
        if logical == "date" and base == "int":
            return _to_date(value)
        if logical in ("timestamp-millis", "timestamp-micros") and base == "long":
            if isinstance(value, int | str) and not isinstance(value, bool) and (
                    isinstance(value, int) or _INT_RE.match(value.strip())):
                return _to_int(value, "long")
            delta = _to_datetime(value) - _EPOCH
            scale = 1000 if logical == "timestamp-millis" else 1_000_000
            return (delta.days * 86_400 + delta.seconds) * scale + (
                delta.microseconds * scale // 1_000_000)
        if base == "enum":
            if not isinstance(value, str):
                raise _Bad(f"expected one of the enum symbols, got {_describe(value)}")
            if value not in t.get("symbols", ()):
                raise _Bad("not one of the enum symbols")
            return value
        if isinstance(base, str) and base in ("string", "int", "long", "float", "double",
                                              "boolean"):
            return _coerce(base, value)
        return value  # records, arrays, maps, fixed: checked by fastavro below
    if t == "string":
        return _to_str(value)
    if t in ("int", "long"):
        return _to_int(value, t)
    if t in ("float", "double"):
        f = _to_float(value)
        if t == "float" and math.isfinite(f) and abs(f) > 3.4e38:
            raise _Bad("number out of range for float")
        return f
    if t == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
            return value.strip().lower() in ("true", "1")
        raise _Bad(f"expected a boolean, got {_describe(value)}")
    if t == "bytes":
        if isinstance(value, bytes):
            return value
        raise _Bad(f"expected bytes, got {_describe(value)}")
    return value


def coerce_record(
    fields: tuple[FieldSpec, ...],
    record: Any,
    *,
    null_values: frozenset[str] = frozenset(),
) -> Accepted[dict[str, Any]] | Rejected:
    """``record`` with each value coerced to its field's type, or the first problem found.

    ``null_values``: text cells read as null for nullable fields (CSV: the empty cell).
    """
    if not isinstance(record, Mapping):
        return Rejected(Reason.DECODE_ERROR, f"a record must be an object, got {_describe(record)}",
                        check="type")
    known = {f.name for f in fields}
    for k in record:
        if k not in known:
            return Rejected(Reason.DECODE_ERROR, "unknown field: not in the raw schema",
                            field=str(k)[:100], check="unknown_field")
    out: dict[str, Any] = {}
    for f in fields:
        value = record.get(f.name, _MISSING)
        if isinstance(value, str) and value in null_values and f.nullable:
            value = None
        if value is _MISSING:
            if f.has_default:
                out[f.name] = f.default
                continue
            if f.nullable:
                out[f.name] = None
                continue
            return Rejected(Reason.MISSING_FIELD, "required field is missing", field=f.name,
                            check="required")
        if value is None:
            if f.nullable:
                out[f.name] = None
                continue
            return Rejected(Reason.MISSING_FIELD, "null for a field that is not nullable",
                            field=f.name, check="required")
        try:
            out[f.name] = _coerce(f.type, value)
        except _Bad as bad:
            return Rejected(Reason.DECODE_ERROR, bad.why, field=f.name,
                            check=_type_name(f.type))
    return Accepted(out)


def _first_bad_field(parsed: Any, fields: tuple[FieldSpec, ...], record: dict[str, Any]) -> str:
    for f in fields:
        branch: Any = ["null", f.type] if f.nullable else f.type
        try:
            ok = validate(record[f.name], fastavro.parse_schema(branch) if isinstance(
                branch, dict | list) else branch, raise_errors=False)
        except Exception:
            ok = False
        if not ok:
            return f.name
    return "<record>"


def encode_checked(
    schema: RawSchema,
    record: Any,
    *,
    null_values: frozenset[str] = frozenset(),
) -> Accepted[bytes] | Rejected:
    """Coerce ``record`` to ``schema``, validate with fastavro and encode in the Confluent wire
    format (magic 0, schema id, Avro body)."""
    coerced = coerce_record(schema.fields, record, null_values=null_values)
    if isinstance(coerced, Rejected):
        return coerced
    rec = coerced.value
    if not validate(rec, schema.parsed, raise_errors=False):
        # fastavro's own messages quote the value: name the field, not the value
        name = _first_bad_field(schema.parsed, schema.fields, rec)
        return Rejected(Reason.DECODE_ERROR, "value does not fit the raw schema's type",
                        field=name, check="avro")
    buf = io.BytesIO()
    buf.write(_HEADER.pack(0, schema.schema_id))
    try:
        fastavro.schemaless_writer(buf, schema.parsed, rec)
    except Exception as exc:
        return Rejected(Reason.ENCODE_ERROR, f"record does not encode: {type(exc).__name__}")
    return Accepted(buf.getvalue())


def record_key(record: Mapping[str, Any], key_fields: tuple[str, ...]) -> bytes | None:
    """The message key: the key fields' values joined by ``|`` (None without key fields)."""
    if not key_fields:
        return None
    return "|".join("" if record.get(k) is None else str(record.get(k))
                    for k in key_fields).encode("utf-8")
