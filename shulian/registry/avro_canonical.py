"""The normal form that decides when two Avro schemas are "the same schema".

Confluent's registry decides sameness on the parsed schema, not on its text: Java Avro's
``Schema.equals`` (names, types, fields, defaults, orders, custom properties) plus its own
``metaEqual`` (docs, aliases, enum defaults), and with ``normalize=true`` on
``AvroSchemaUtils.toNormalizedString``: full names, properties sorted. This module writes that
form from a schema parsed by Apache Avro's Python library, so cosmetic differences vanish:

* ``com.acme.R`` and ``name: R, namespace: com.acme``; a nested type repeating or inheriting its
  parent's namespace (every named type is written by its full name, once, then referred to);
* ``{"type": "string"}`` and ``"string"``;
* ``"order": "ascending"`` (the default) and no order;
* the order of keys, custom properties and aliases (relative aliases are qualified).

What changes behaviour stays: docs, defaults, aliases, enum defaults, logical types and custom
properties. Named types taken from references are written by name only, as Confluent does.
Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import avro.schema

_NAMED_RESERVED = {"type", "name", "namespace", "doc", "aliases", "fields", "symbols", "size",
                   "default"}
_FIELD_RESERVED = {"name", "type", "doc", "default", "order", "aliases"}


def _props(props: Mapping[str, Any], reserved: set[str]) -> list[tuple[str, Any]]:
    out = [(k, v) for k, v in sorted(props.items()) if k not in reserved]
    # a decimal's scale 0 is its default
    return [(k, v) for k, v in out if not (k == "scale" and v == 0)]


def _qualified(alias: str, namespace: str | None) -> str:
    return alias if "." in alias or not namespace else f"{namespace}.{alias}"


def _named(s: avro.schema.NamedSchema, seen: set[str]) -> Any:
    name = s.fullname
    if name in seen:
        return name
    seen.add(name)
    out: dict[str, Any] = {"name": name, "type": s.type}
    if isinstance(s, avro.schema.EnumSchema):
        out["symbols"] = list(s.symbols)
    elif isinstance(s, avro.schema.FixedSchema):
        out["size"] = s.size
    elif isinstance(s, avro.schema.RecordSchema):
        out["fields"] = [_field(f, seen) for f in s.fields]
    doc = s.props.get("doc")
    if doc:
        out["doc"] = doc
    aliases: list[str] = list(s.props.get("aliases") or [])  # type: ignore[call-overload]
    if aliases:
        out["aliases"] = sorted({_qualified(a, s.namespace) for a in aliases})
    if isinstance(s, avro.schema.EnumSchema) and s.props.get("default") is not None:
        out["default"] = s.props["default"]
    for k, v in _props(s.props, _NAMED_RESERVED):
        out[k] = v
    return out


def _field(f: avro.schema.Field, seen: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": f.name, "type": to_normal(f.type, seen)}
    order = f.props.get("order")
    if order and order != "ascending":
        out["order"] = order
    if f.props.get("doc"):
        out["doc"] = f.props["doc"]
    field_aliases: list[str] = list(f.props.get("aliases") or [])  # type: ignore[call-overload]
    if field_aliases:
        out["aliases"] = sorted(set(field_aliases))
    if f.has_default:
        out["default"] = f.default
    for k, v in _props(f.props, _FIELD_RESERVED):
        out[k] = v
    return out


def to_normal(s: avro.schema.Schema, seen: set[str]) -> Any:
    """The normal form of a parsed schema as a JSON value; ``seen`` holds full names already
    written (or taken from references), which are then written by name only."""
    if isinstance(s, avro.schema.UnionSchema):
        return [to_normal(b, seen) for b in s.schemas]
    if isinstance(s, avro.schema.NamedSchema):
        return _named(s, seen)
    if isinstance(s, avro.schema.ArraySchema):
        return {"type": "array", "items": to_normal(s.items, seen),
                **dict(_props(s.props, {"type", "items"}))}
    if isinstance(s, avro.schema.MapSchema):
        return {"type": "map", "values": to_normal(s.values, seen),
                **dict(_props(s.props, {"type", "values"}))}
    extra = _props(s.props, {"type"})
    return {"type": s.type, **dict(extra)} if extra else s.type


def normal_string(s: avro.schema.Schema, referenced_names: set[str]) -> str:
    return json.dumps(
        to_normal(s, set(referenced_names)), separators=(",", ":"), ensure_ascii=False
    )
