"""Per-record outcomes as values: ``Accepted | Rejected``; agents route them, nothing raises."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Reason(StrEnum):
    """Closed set of reasons a record is dead-lettered."""

    EMPTY_VALUE = "empty_value"
    BAD_WIRE_FORMAT = "bad_wire_format"  # no/wrong magic byte, too short
    UNKNOWN_SCHEMA_ID = "unknown_schema_id"
    SCHEMA_NOT_ALLOWED = "schema_not_allowed"  # schema id not registered under the topic's subject
    DECODE_ERROR = "decode_error"  # body does not decode with the schema
    ELEMENT_CHECK_FAILED = "element_check_failed"  # a data element check failed
    MAPPING_ERROR = "mapping_error"  # a mapping step could not be applied
    MISSING_FIELD = "missing_field"  # a required canonical field is absent
    UNKNOWN_DATASET = "unknown_dataset"  # topic names no known (agency, dataset) mapping
    ENCODE_ERROR = "encode_error"  # canonical record does not encode (should not happen)


@dataclass(frozen=True, slots=True)
class Accepted(Generic[T]):
    value: T


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: Reason
    detail: str  # human text; never contains the offending value itself
    field: str | None = None  # canonical or raw field concerned
    check: str | None = None  # which check failed (e.g. "check_digit", "length")
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


Result = Accepted[T] | Rejected
