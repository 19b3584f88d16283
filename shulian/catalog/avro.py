"""Canonical Avro schemas, generated from catalogue datasets and data elements.

``schemas/canonical/<dataset>.avsc`` is :func:`canonical_schema` written by :func:`schema_text`
and committed; a unit test keeps the files equal to the generated ones, and
``shulian catalog schemas --write`` regenerates them.

The Avro type of each element type is in :data:`shulian.catalog.specs.SPECS`.

A field with ``required: false`` is ``["null", T]`` with default null. Record name: the dataset
id in CamelCase; namespace ``gov.shulian.canonical``; each field has ``doc`` and the extra
attribute ``element`` naming its data element.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from shulian.catalog.models import DataElement, Dataset, ElementId, ElementType
from shulian.catalog.specs import avro_type

__all__ = [
    "CANONICAL_NAMESPACE",
    "avro_type",
    "camel_case",
    "canonical_schema",
    "field_type",
    "schema_text",
]

CANONICAL_NAMESPACE = "gov.shulian.canonical"


def field_type(element_type: ElementType, *, required: bool) -> Any:
    """``T`` for a required field, ``["null", T]`` for an optional one."""
    t = avro_type(element_type)
    return t if required else ["null", t]


def camel_case(identifier: str) -> str:
    """``business_licence`` -> ``BusinessLicence``."""
    return "".join(part[:1].upper() + part[1:] for part in identifier.split("_") if part)


def canonical_schema(dataset: Dataset, elements: Mapping[ElementId, DataElement]) -> dict[str, Any]:
    """The canonical Avro schema of ``dataset`` (every field's element must be in ``elements``)."""
    fields: list[dict[str, Any]] = []
    for f in dataset.fields:
        element = elements[f.element]
        entry: dict[str, Any] = {
            "name": f.name,
            "type": field_type(element.type, required=f.required),
            "doc": f.doc or element.name,
            "element": element.id,
        }
        if not f.required:
            entry["default"] = None
        fields.append(entry)
    doc = dataset.name + (f": {dataset.description.strip()}" if dataset.description.strip() else "")
    return {
        "type": "record",
        "name": camel_case(dataset.id),
        "namespace": CANONICAL_NAMESPACE,
        "doc": doc,
        "shulian.dataset_version": dataset.version,
        "fields": fields,
    }


def schema_text(schema: Mapping[str, Any]) -> str:
    """The committed file form: 2-space JSON, UTF-8 text kept readable, trailing newline."""
    return json.dumps(schema, ensure_ascii=False, indent=2) + "\n"
