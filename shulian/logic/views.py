"""Consumer views: the Avro schema of what one list entry delivers, and where it goes.

A consumer's view of a dataset is the canonical record restricted to the entry's ``fields`` (in
the dataset's order), with dropped fields left out and masked fields turned into
``["null", "string"]`` (default null). Three metadata fields are appended so a sink can upsert
idempotently and every row can be traced back to the decision that delivered it:

- ``_record_key``  (string) the canonical record key (the dataset's ``key`` fields); a sink
                   upserts on it, so at-least-once redelivery does not duplicate rows;
- ``_entry_id``    (string) the sharing-list entry that allowed the delivery;
- ``_list_version`` (int)   the list version that entry was read from.

The schema depends only on (dataset, elements, entry), so the same entry always gives the same
schema; when an entry changes between list versions the topic's schema follows the entry in
force (registered as a new version of ``egress.<consumer>.<dataset>-value``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shulian.catalog.avro import avro_type, camel_case
from shulian.catalog.models import (
    DataElement,
    Dataset,
    DropMask,
    ElementId,
    ListEntry,
)
from shulian.chain.topology import Topology

__all__ = [
    "META_ENTRY_ID",
    "META_FIELDS",
    "META_LIST_VERSION",
    "META_RECORD_KEY",
    "VIEW_NAMESPACE",
    "avro_type",
    "camel",
    "egress_subject",
    "egress_topic",
    "view_schema",
]

VIEW_NAMESPACE = "gov.shulian.egress"
META_RECORD_KEY = "_record_key"
META_ENTRY_ID = "_entry_id"
META_LIST_VERSION = "_list_version"
META_FIELDS = (META_RECORD_KEY, META_ENTRY_ID, META_LIST_VERSION)

# one definition of element type -> Avro type and of dataset names, shared with the canonical
# schemas (re-exported here because views are built from the same types)
camel = camel_case


def egress_topic(consumer: str, dataset: str) -> str:
    return Topology().egress(consumer, dataset)


def egress_subject(consumer: str, dataset: str) -> str:
    return f"{egress_topic(consumer, dataset)}-value"


def view_schema(
    dataset: Dataset, elements: Mapping[ElementId, DataElement], entry: ListEntry
) -> dict[str, Any]:
    """The Avro record schema of ``entry``'s view of ``dataset`` (deterministic).

    Name ``<DatasetCamel>View_<consumer>``, namespace ``gov.shulian.egress``. Fields the entry
    lists but the dataset lacks are ignored here (the catalogue check rejects such entries).
    """
    allowed = set(entry.fields)
    fields: list[dict[str, Any]] = []
    for f in dataset.fields:
        if f.name not in allowed:
            continue
        mask = entry.masks.get(f.name)
        if isinstance(mask, DropMask):
            continue
        out: dict[str, Any] = {"name": f.name}
        if mask is not None:
            out["type"] = ["null", "string"]
            out["default"] = None
            out["doc"] = f"masked: {mask.type}"
        else:
            t = avro_type(elements[f.element].type)
            if f.required:
                out["type"] = t
            else:
                out["type"] = ["null", t]
                out["default"] = None
            if f.doc:
                out["doc"] = f.doc
        fields.append(out)
    fields.append(
        {"name": META_RECORD_KEY, "type": "string", "doc": "canonical record key (upsert key)"}
    )
    fields.append({"name": META_ENTRY_ID, "type": "string", "doc": "sharing-list entry id"})
    fields.append({"name": META_LIST_VERSION, "type": "int", "doc": "sharing-list version"})
    return {
        "type": "record",
        "name": f"{camel(dataset.id)}View_{entry.consumer}",
        "namespace": VIEW_NAMESPACE,
        "doc": f"{dataset.name}: view for {entry.consumer}",
        "fields": fields,
    }
