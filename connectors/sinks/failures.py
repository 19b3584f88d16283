"""How a sink write fails, and the sink dead-letter topic ``deadletter._sink.<connector>``
(named by :meth:`~shulian.chain.topology.Topology.sink_deadletter`: an agency called ``sink``
must never read a sink's dead letters).

Dead letters keep the original key, value bytes and headers untouched (headers prefixed
``orig.``) and add ``shulian.reason`` (a :class:`SinkFailure`), ``shulian.detail``,
``shulian.sink.connector``, ``shulian.sink.batch`` (first-last offsets of the failed batch) and
``shulian.source.topic/.partition/.offset/.timestamp``, like the chain's own dead letters.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Protocol

from shulian.chain import headers as H
from shulian.chain.topology import Topology
from shulian.connectors.sinks.records import SinkRecord
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
    return Topology().sink_deadletter(connector)


def deadletter_headers(
    rec: SinkRecord, *, connector: str, reason: SinkFailure, detail: str, first: int, last: int
) -> list[tuple[str, bytes]]:
    source: dict[str, str | int] = {"topic": rec.topic, "partition": rec.partition,
                                    "offset": rec.offset}
    if rec.timestamp_ms is not None:
        source["timestamp"] = rec.timestamp_ms
    return H.deadletter_headers(
        reason=reason.value, detail=detail,
        extra=[(H.SINK_CONNECTOR, connector), (H.SINK_BATCH, f"{first}-{last}")],
        source=source, original=rec.headers)


class DeadLetter(Protocol):
    """Where the loop sends records it cannot deliver (raises BrokerError when it cannot)."""

    def setup(self) -> None: ...

    def send(
        self, records: Sequence[SinkRecord], *, reason: SinkFailure, detail: str,
        first: int, last: int,
    ) -> None: ...

    def close(self) -> None: ...


