"""Framework-free message types passed between the agents and the stages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

Headers = Sequence[tuple[str, bytes | None]]


@dataclass(frozen=True, slots=True)
class InMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    headers: Headers = ()
    decoded: dict[str, Any] | None = None
    """The value as a record, when the stage that wrote it runs in this process (the worker's
    ingest stage for its enforce stage): equal to decoding ``value`` (a test holds the
    harmoniser's records to that), so it is not decoded again."""


@dataclass(frozen=True, slots=True)
class OutMessage:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    partition: int | None = None  # None: the producer's partitioner (murmur2 on the key)
    phase: int = 0
    """Outputs of a batch are produced phase by phase: phase 1 (audit records) only after every
    phase-0 output (egress views, dead letters) was acknowledged, so an audit record on the
    broker implies that its egress view is there too (see shulian.chain.dedup)."""
    decoded: dict[str, Any] | None = None
    """The record ``value`` encodes (canonical records), for a stage in the same process; never
    produced."""


def read_back(out: OutMessage, *, offset: int) -> InMessage:
    """An output as the next stage reads it, written at ``offset`` (the worker hands its
    canonical records to its enforce stage this way, with the record they encode)."""
    return InMessage(topic=out.topic, partition=out.partition or 0, offset=offset, key=out.key,
                     value=out.value, timestamp_ms=0, headers=out.headers, decoded=out.decoded)


class SchemaLookup(Protocol):
    """What the stages need from the schema registry (satisfied by shulian.serde.SchemaCache)."""

    def parsed(self, schema_id: int) -> Any | None: ...

    def subjects_of(self, schema_id: int) -> frozenset[str]: ...


def header(headers: Headers, name: str) -> bytes | None:
    for k, v in headers:
        if k == name:
            return v
    return None


def header_str(headers: Headers, name: str) -> str | None:
    raw = header(headers, name)
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
