"""Stage 1, validate + harmonise: ``raw.<agency>.<dataset>`` -> ``canonical.<dataset>``.

Every record ends in exactly one place: the canonical topic, or the agency's dead-letter topic
with its original bytes untouched and headers naming the reason and origin.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shulian.chain import headers as H
from shulian.chain.dedup import SourceMarks, origin_of
from shulian.chain.messages import InMessage, OutMessage, SchemaLookup
from shulian.chain.topology import Topology, subject_of
from shulian.chain.wire import decode_body, encode_wire, split_wire
from shulian.log import get_logger
from shulian.logic.harmonise import Harmoniser
from shulian.logic.result import Accepted, Reason, Rejected

log = get_logger(__name__)

TailLoader = Callable[[Sequence[tuple[str, int]]], Mapping[tuple[str, int], InMessage | None]]
"""Reads the last message of each (topic, partition) given (None: the partition is empty)."""


@dataclass(frozen=True, slots=True)
class _RawTopic:
    agency: str
    dataset: str
    subject: str
    canonical: str
    provider_header: tuple[str, bytes]
    topic_header: tuple[str, bytes]


@dataclass(frozen=True, slots=True)
class CanonicalSchema:
    schema_id: int
    parsed: Any


class IngestStage:
    """Raw message -> canonical message or dead letter. Pure given a schema lookup."""

    def __init__(
        self,
        *,
        topology: Topology,
        harmoniser: Harmoniser,
        schemas: SchemaLookup,
        canonical: dict[str, CanonicalSchema],
        deadletter_tails: TailLoader | None = None,
    ) -> None:
        """``deadletter_tails``: reads dead-letter partition tails, so that a restarted worker
        does not dead-letter a raw record twice (None: no such check)."""
        self._topology = topology
        self._harmoniser = harmoniser
        self._schemas = schemas
        self._canonical = canonical
        self._tails = deadletter_tails
        self._dead = SourceMarks()  # raw (topic, partition) -> highest offset dead-lettered
        self._topics: dict[str, _RawTopic | None] = {}

    def forget(self) -> None:
        """Read the dead-letter marks again on next use (after a rebalance), never below
        those this worker wrote (:meth:`SourceMarks.reload`)."""
        self._dead.reload()

    def process(self, msgs: Iterable[InMessage]) -> tuple[list[OutMessage], list[Rejected]]:
        """Outputs for a batch (canonical and dead letters) and the rejections, in order.

        A rejection whose dead letter the dead-letter partition already holds (a batch
        re-read after a crash) is still returned, but not written again."""
        batch = msgs if isinstance(msgs, Sequence) else list(msgs)
        if self._tails is not None:
            self._load_marks(batch)
        out: list[OutMessage] = []
        rejected: list[Rejected] = []
        skipped = 0
        for msg in batch:
            result = self._one(msg)
            if isinstance(result, Rejected):
                rejected.append(result)
                if self._dead.written(msg.topic, msg.partition, msg.offset):
                    skipped += 1
                    continue
                self._dead.note(msg.topic, msg.partition, msg.offset)
                out.append(self._deadletter(msg, result))
            else:
                out.append(result)
        if skipped:
            log.info("ingest.skipped_deadlettered", count=skipped, batch=len(batch))
        return out, rejected

    def _load_marks(self, batch: Sequence[InMessage]) -> None:
        """Dead letters of raw partition p go to dead-letter partition p, written in raw-offset
        order by its one writer: the last one names the highest raw offset dead-lettered."""
        wanted: dict[tuple[str, int], tuple[str, int]] = {}  # dead-letter tp -> raw tp
        for msg in batch:
            if self._dead.loaded(msg.topic, msg.partition):
                continue
            parsed = self._topology.parse_raw(msg.topic)
            if parsed is None:
                continue
            dlq = self._topology.deadletter(*parsed)
            for p in range(self._topology.partitions):  # the whole topic in one read
                if not self._dead.loaded(msg.topic, p):
                    wanted[(dlq, p)] = (msg.topic, p)
        if not wanted or self._tails is None:
            return
        tails = self._tails(list(wanted))
        for tp, (raw_topic, raw_partition) in wanted.items():
            last = tails.get(tp)
            origin = None if last is None else origin_of(last.headers)
            offset = (origin.offset if origin is not None and origin.topic == raw_topic
                      and origin.partition == raw_partition else None)
            self._dead.load(raw_topic, raw_partition, offset)

    def _topic(self, topic: str) -> _RawTopic | None:
        """What the hot path needs of a raw topic's name, derived once per topic."""
        try:
            return self._topics[topic]
        except KeyError:
            parsed = self._topology.parse_raw(topic)
            info = None if parsed is None else _RawTopic(
                agency=parsed[0], dataset=parsed[1],
                subject=subject_of(self._topology.unprefix(topic) or topic),
                canonical=self._topology.canonical(parsed[1]),
                provider_header=(H.PROVIDER, H.text_bytes(parsed[0])),
                topic_header=(H.SOURCE_TOPIC, H.text_bytes(topic)))
            self._topics[topic] = info
            return info

    def _one(self, msg: InMessage) -> OutMessage | Rejected:
        topic = self._topic(msg.topic)
        if topic is None:
            return Rejected(Reason.UNKNOWN_DATASET, "topic is not raw.<agency>.<dataset>")
        agency, dataset = topic.agency, topic.dataset
        if not msg.value:
            return Rejected(Reason.EMPTY_VALUE, "the record has no value")
        wire = split_wire(msg.value)
        if isinstance(wire, Rejected):
            return wire
        schema_id, body = wire
        writer = self._schemas.parsed(schema_id)
        if writer is None:
            return Rejected(Reason.UNKNOWN_SCHEMA_ID, f"schema id {schema_id} is not registered",
                            extra={"schema_id": schema_id})
        if topic.subject not in self._schemas.subjects_of(schema_id):
            return Rejected(Reason.SCHEMA_NOT_ALLOWED,
                            f"schema id {schema_id} is not registered under subject "
                            f"{topic.subject}",
                            extra={"schema_id": schema_id})
        raw = decode_body(writer, body)
        if isinstance(raw, Rejected):
            return raw
        result = self._harmoniser.harmonise(agency, dataset, raw)
        if isinstance(result, Rejected):
            return result
        assert isinstance(result, Accepted)
        harmonised = result.value
        target = self._canonical.get(dataset)
        if target is None:
            return Rejected(Reason.UNKNOWN_DATASET, f"no canonical schema for dataset {dataset}")
        try:
            value = encode_wire(target.schema_id, target.parsed, harmonised.record)
        except Exception as exc:
            return Rejected(Reason.ENCODE_ERROR, f"canonical record does not encode: "
                            f"{type(exc).__name__}")
        return OutMessage(
            topic=topic.canonical,
            key=harmonised.key.encode("utf-8"),
            value=value,
            headers=[
                topic.provider_header,
                topic.topic_header,
                (H.SOURCE_PARTITION, str(msg.partition).encode()),
                (H.SOURCE_OFFSET, str(msg.offset).encode()),
                (H.SOURCE_TIMESTAMP, str(msg.timestamp_ms).encode()),
                (H.MAPPING_VERSION, str(harmonised.mapping_version).encode()),
                (H.RAW_SCHEMA_ID, str(schema_id).encode()),
            ],
            # canonical and audit partition p are written by the one worker that owns raw
            # partition p of every raw topic of the dataset (Faust assigns topics of equal
            # partition count together): one writer per audit chain
            partition=msg.partition,
            decoded=harmonised.record,
        )

    def _deadletter(self, msg: InMessage, rej: Rejected) -> OutMessage:
        parsed_topic = self._topology.parse_raw(msg.topic)
        agency, dataset = parsed_topic if parsed_topic else ("unknown", "unknown")
        return OutMessage(
            topic=self._topology.deadletter(agency, dataset),
            key=msg.key,
            value=msg.value or b"",
            # the original headers travel along untouched, prefixed
            headers=H.rejected_headers(rej, source={
                "topic": msg.topic, "partition": msg.partition, "offset": msg.offset,
                "timestamp": msg.timestamp_ms}, original=msg.headers),
            partition=msg.partition,
        )
