"""Decoded Avro values -> JSON-serialisable values, and the JSON batch body. Pure."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["batch_body", "batch_id", "to_jsonable"]


def to_jsonable(value: Any) -> Any:
    """Dates and times -> ISO 8601 strings, Decimal/UUID -> str, bytes -> base64 text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, Sequence):
        return [to_jsonable(v) for v in value]
    if isinstance(value, tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    raise TypeError(f"value of type {type(value).__name__} is not JSON-serialisable")


def batch_id(*, connector: str, topic: str, partition: int, first: int, last: int) -> str:
    """Deterministic id of one batch: a retried batch keeps its id (the idempotency key)."""
    return f"{connector}:{topic}:{partition}:{first}-{last}"


def batch_body(*, records: Sequence[Mapping[str, Any]], batch: str) -> bytes:
    """The exact bytes a webhook POSTs (and signs): ``{"records": [...], "batch_id": ...}``."""
    return json.dumps(
        {"records": [to_jsonable(r) for r in records], "batch_id": batch},
        ensure_ascii=False, separators=(",", ":"), sort_keys=False,
    ).encode("utf-8")
