"""How a sink write fails, and the sink dead-letter topic ``deadletter.sink.<connector>``.

Dead letters keep the original key, value bytes and headers untouched (headers prefixed
``orig.``) and add ``shulian.reason`` (a :class:`SinkFailure`), ``shulian.detail``,
``shulian.sink.connector``, ``shulian.sink.batch`` (first-last offsets of the failed batch) and
``shulian.source.topic/.partition/.offset/.timestamp``, like the chain's own dead letters.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Protocol

from connectors.sinks.records import SinkRecord
from shulian.errors import SinkError

__all__ = [
    "DeadLetter",
    "PermanentSinkError",
    "RetryableSinkError",
    "SinkFailure",
    "deadletter_headers",
    "deadletter_topic",
]


class RetryableSinkError(SinkError):
    """The target failed in a way that may pass (down, timeout, 5xx, 429): retry the batch."""


class PermanentSinkError(SinkError):
    """The target refused the batch for good (a 4xx, a constraint): dead-letter it."""


class SinkFailure(StrEnum):
    """Closed set of reasons a sink dead-letters records."""

    BAD_WIRE_FORMAT = "bad_wire_format"
    UNKNOWN_SCHEMA_ID = "unknown_schema_id"
    DECODE_ERROR = "decode_error"
    BAD_SIGNATURE = "bad_signature"  # not signed by the chain, or edited since (a forgery)
    REJECTED = "rejected"  # the target refused the batch permanently
    RETRIES_EXHAUSTED = "retries_exhausted"  # the retry policy ran out


def deadletter_topic(connector: str) -> str:
    return f"deadletter.sink.{connector}"


def deadletter_headers(
    rec: SinkRecord, *, connector: str, reason: SinkFailure, detail: str, first: int, last: int
) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = [
        ("shulian.reason", reason.value.encode()),
        ("shulian.detail", detail[:1000].encode("utf-8", "replace")),
        ("shulian.sink.connector", connector.encode()),
        ("shulian.sink.batch", f"{first}-{last}".encode()),
        ("shulian.source.topic", rec.topic.encode()),
        ("shulian.source.partition", str(rec.partition).encode()),
        ("shulian.source.offset", str(rec.offset).encode()),
    ]
    if rec.timestamp_ms is not None:
        out.append(("shulian.source.timestamp", str(rec.timestamp_ms).encode()))
    out.extend((f"orig.{k}", v if v is not None else b"") for k, v in rec.headers)
    return out


class DeadLetter(Protocol):
    """Where the loop sends records it cannot deliver (raises BrokerError when it cannot)."""

    def setup(self) -> None: ...

    def send(
        self, records: Sequence[SinkRecord], *, reason: SinkFailure, detail: str,
        first: int, last: int,
    ) -> None: ...

    def close(self) -> None: ...


