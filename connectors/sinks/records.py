"""The record a sink writes: one consumed egress message, decoded. Pure."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["SinkRecord", "load_columns", "record_key"]


@dataclass(frozen=True, slots=True)
class SinkRecord:
    """One egress message: coordinates, raw bytes, and (once decoded) the consumer view.

    ``value`` is None for a tombstone (``raw_value`` None) or before decoding; ``schema`` is
    the writer's Avro schema as JSON (what the PostgreSQL sink turns into columns).
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    raw_value: bytes | None
    headers: Sequence[tuple[str, bytes | None]] = ()
    timestamp_ms: int | None = None
    schema_id: int | None = None
    value: dict[str, Any] | None = None
    schema: dict[str, Any] | None = None

    def decoded(
        self, *, schema_id: int, value: dict[str, Any], schema: dict[str, Any] | None
    ) -> SinkRecord:
        return dataclasses.replace(self, schema_id=schema_id, value=value, schema=schema)

    @property
    def is_tombstone(self) -> bool:
        return self.raw_value is None


def record_key(rec: SinkRecord) -> str | None:
    """The upsert key: the view's ``_record_key``, else the message key as UTF-8."""
    if rec.value is not None:
        k = rec.value.get("_record_key")
        if isinstance(k, str):
            return k
    if rec.key is None:
        return None
    return rec.key.decode("utf-8", "replace")


def load_columns(rec: SinkRecord) -> dict[str, Any]:
    """Where the record came from: ``_kafka_topic``, ``_kafka_partition``, ``_kafka_offset``."""
    return {"_kafka_topic": rec.topic, "_kafka_partition": rec.partition,
            "_kafka_offset": rec.offset}
