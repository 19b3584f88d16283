"""The one consume-batch-write-commit loop every sink runs in.

    poll a batch (``Consumer.consume(n, timeout)``)
    -> verify the chain's signature (shulian.logic.egress; a forgery is dead-lettered, never
       written), then decode each value (Confluent wire format, schema by id, SchemaCache)
    -> split into units: one (topic, partition) run of consecutive offsets
    -> per unit: ``sink.write_batch`` retried per the sink's RetryPolicy
       (undecodable records, permanent failures and exhausted retries -> dead-letter topic)
    -> commit, synchronously, offset+1 of every unit handled.

Offsets move only past records that were written or dead-lettered: a unit that is still failing
blocks its partition (the loop keeps retrying with backoff until the target recovers or the
loop is asked to stop; then it stops without committing that unit, which is redelivered).
Sinks implement ``setup``/``write_batch``/``flush``/``close`` only.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from shulian.catalog.keys import Keyring
from shulian.connectors.sinks.backoff import RetryPolicy
from shulian.connectors.sinks.failures import (
    DeadLetter,
    PermanentSinkError,
    RetryableSinkError,
    SinkFailure,
)
from shulian.connectors.sinks.metrics import SinkMetrics
from shulian.connectors.sinks.records import SinkRecord
from shulian.errors import BrokerError, RegistryError
from shulian.log import get_logger
from shulian.logic.egress import verify_egress
from shulian.serde import decode_wire, split_wire

__all__ = ["BatchSink", "SinkLoop", "Unit", "decode_record", "split_units"]

log = get_logger("shulian.sinks.loop")


class BatchSink(Protocol):
    """What the loop needs from a sink."""

    name: str
    retry: RetryPolicy

    def setup(self) -> None: ...

    def write_batch(self, records: Sequence[SinkRecord]) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class Schemas(Protocol):
    def parsed(self, schema_id: int) -> Any | None: ...

    def schema_str(self, schema_id: int) -> str | None: ...


@dataclass
class Unit:
    """Consecutive records of one partition, written (or dead-lettered) together."""

    topic: str
    partition: int
    records: list[SinkRecord] = field(default_factory=list)
    poison: list[tuple[SinkRecord, SinkFailure, str]] = field(default_factory=list)

    @property
    def first(self) -> int:
        return min(r.offset for r in [*self.records, *(p[0] for p in self.poison)])

    @property
    def last(self) -> int:
        return max(r.offset for r in [*self.records, *(p[0] for p in self.poison)])


def split_units(items: Sequence[SinkRecord | tuple[SinkRecord, SinkFailure, str]]) -> list[Unit]:
    """Group decoded records (and poison tuples) by (topic, partition), in order of arrival."""
    units: dict[tuple[str, int], Unit] = {}
    for item in items:
        rec = item[0] if isinstance(item, tuple) else item
        unit = units.setdefault((rec.topic, rec.partition), Unit(rec.topic, rec.partition))
        if isinstance(item, tuple):
            unit.poison.append(item)
        else:
            unit.records.append(item)
    return list(units.values())


class SinkLoop:
    """Runs one sink: ``run(stop)`` until ``stop`` is set, then flushes, commits and closes."""

    def __init__(
        self,
        *,
        sink: BatchSink,
        consumer: Consumer,
        topics: Sequence[str],
        schemas: Schemas,
        deadletter: DeadLetter,
        metrics: SinkMetrics,
        keys: Keyring,
        batch_size: int = 500,
        poll_timeout_s: float = 0.5,
        rng: random.Random | None = None,
    ) -> None:
        self.sink = sink
        self.consumer = consumer
        self.topics = list(topics)
        self.schemas = schemas
        self.deadletter = deadletter
        self.metrics = metrics
        self.keys = keys
        self.batch_size = batch_size
        self.poll_timeout_s = poll_timeout_s
        self._rng = rng or random.Random()
        self._stop = threading.Event()
        self.committed: dict[tuple[str, int], int] = {}

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Check the target (``sink.setup``: a clear error when unreachable) and subscribe."""
        self.sink.setup()
        self.deadletter.setup()
        self.consumer.subscribe(self.topics)
        log.info("sink.started", connector=self.sink.name, topics=self.topics)

    def run(self, stop: threading.Event | None = None) -> None:
        """``start`` then loop until ``stop`` is set; always shuts down cleanly."""
        if stop is not None:
            self._stop = stop
        self.start()
        try:
            while not self._stop.is_set():
                self.step()
        finally:
            self.shutdown()

    def request_stop(self) -> None:
        self._stop.set()

    def shutdown(self) -> None:
        """Flush the sink and close the consumer (uncommitted units are redelivered later)."""
        try:
            self.sink.flush()
        finally:
            self.sink.close()
            self.deadletter.close()
            self.consumer.close()
        log.info("sink.stopped", connector=self.sink.name)

    # ------------------------------------------------------------------ one batch
    def step(self) -> int:
        """Poll one batch and handle it; returns how many records were committed."""
        try:
            msgs = self.consumer.consume(self.batch_size, self.poll_timeout_s)
        except KafkaException as exc:
            raise BrokerError(f"consume failed: {exc}") from exc
        good: list[Message] = []
        for m in msgs:
            err = m.error()
            if err is None:
                good.append(m)
            elif err.code() != KafkaError._PARTITION_EOF:
                self.metrics.errors.labels(self.sink.name, "consume").inc()
                log.warning("sink.consume_error", connector=self.sink.name, error=str(err))
                if err.fatal():
                    raise BrokerError(f"fatal consumer error: {err}")
        if not good:
            return 0
        self.metrics.records_in.labels(self.sink.name).inc(len(good))
        items = self._decode_all(good)
        if items is None:
            return 0
        handled: list[Unit] = []
        for unit in split_units(items):
            if not self._deliver(unit):
                break
            handled.append(unit)
        self._commit(handled)
        return sum(len(u.records) + len(u.poison) for u in handled)

    def _decode_all(
        self, msgs: list[Message]
    ) -> list[SinkRecord | tuple[SinkRecord, SinkFailure, str]] | None:
        attempt = 0
        while True:
            try:
                return [self._decode(m) for m in msgs]
            except RegistryError as exc:
                attempt += 1
                self.metrics.errors.labels(self.sink.name, "registry").inc()
                log.warning("sink.registry_unavailable", connector=self.sink.name,
                            attempt=attempt, error=str(exc))
                if self._wait(self.sink.retry.delay(attempt, rng=self._rng)):
                    return None

    def _decode(self, m: Message) -> SinkRecord | tuple[SinkRecord, SinkFailure, str]:
        ts_type, ts = m.timestamp()
        rec = SinkRecord(
            topic=str(m.topic()), partition=int(m.partition() or 0), offset=int(m.offset() or 0),
            key=m.key(), raw_value=m.value(), headers=_headers(m),
            timestamp_ms=ts if ts_type and ts > 0 else None,
        )
        return decode_record(rec, schemas=self.schemas, keys=self.keys)

    def _deliver(self, unit: Unit) -> bool:
        """Write one unit (retrying per policy) or dead-letter it; False when asked to stop."""
        name = self.sink.name
        for rec, reason, detail in unit.poison:
            if not self._dead_letter([rec], reason, detail, unit):
                return False
        if not unit.records:
            return True
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                self.sink.write_batch(unit.records)
            except PermanentSinkError as exc:
                self.metrics.errors.labels(name, "permanent").inc()
                log.error("sink.batch_rejected", connector=name, topic=unit.topic,
                          partition=unit.partition, first=unit.first, last=unit.last,
                          error=str(exc))
                return self._dead_letter(unit.records, SinkFailure.REJECTED, str(exc), unit)
            except RetryableSinkError as exc:
                self.metrics.errors.labels(name, "retryable").inc()
                log.warning("sink.write_failed", connector=name, topic=unit.topic,
                            partition=unit.partition, first=unit.first, last=unit.last,
                            attempt=attempt, error=str(exc))
                if self.sink.retry.exhausted(attempt):
                    return self._dead_letter(
                        unit.records, SinkFailure.RETRIES_EXHAUSTED,
                        f"{attempt} attempts failed; last: {exc}", unit,
                    )
                if self._wait(self.sink.retry.delay(attempt, rng=self._rng)):
                    return False
                continue
            self.metrics.write_seconds.labels(name).observe(time.monotonic() - started)
            self.metrics.records_out.labels(name).inc(len(unit.records))
            return True

    def _dead_letter(
        self, records: list[SinkRecord], reason: SinkFailure, detail: str, unit: Unit
    ) -> bool:
        attempt = 0
        while True:
            try:
                self.deadletter.send(records, reason=reason, detail=detail,
                                     first=unit.first, last=unit.last)
            except BrokerError as exc:
                attempt += 1
                self.metrics.errors.labels(self.sink.name, "deadletter").inc()
                log.warning("sink.deadletter_failed", connector=self.sink.name, error=str(exc))
                if self._wait(self.sink.retry.delay(attempt, rng=self._rng)):
                    return False
                continue
            self.metrics.deadlettered.labels(self.sink.name, reason.value).inc(len(records))
            log.warning("sink.deadlettered", connector=self.sink.name, topic=unit.topic,
                        partition=unit.partition, records=len(records), reason=reason.value)
            return True

    def _commit(self, units: list[Unit]) -> None:
        if not units:
            return
        offsets = [TopicPartition(u.topic, u.partition, u.last + 1) for u in units]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # membership lost (e.g. a retry outlasted max.poll.interval.ms): the units are
            # redelivered to whoever owns the partitions now; every sink tolerates that
            self.metrics.errors.labels(self.sink.name, "commit").inc()
            log.warning("sink.commit_failed", connector=self.sink.name, error=str(exc))
            return
        now_ms = time.time() * 1000
        for u in units:
            self.committed[(u.topic, u.partition)] = u.last + 1
            for r in u.records:
                if r.timestamp_ms is not None:
                    self.metrics.delivery_latency.labels(self.sink.name).observe(
                        max(0.0, (now_ms - r.timestamp_ms) / 1000))
            self._record_lag(u)

    def _record_lag(self, u: Unit) -> None:
        try:
            marks = self.consumer.get_watermark_offsets(
                TopicPartition(u.topic, u.partition), timeout=0.1, cached=True)
        except KafkaException:
            return
        if marks is not None and marks[1] >= 0:
            self.metrics.lag.labels(self.sink.name, u.topic, str(u.partition)).set(
                max(0, marks[1] - (u.last + 1)))

    def _wait(self, seconds: float) -> bool:
        """Back off for ``seconds``; True when a stop was requested meanwhile."""
        return self._stop.wait(seconds)


def decode_record(rec: SinkRecord, *, schemas: Schemas,
                  keys: Keyring) -> SinkRecord | tuple[SinkRecord, SinkFailure, str]:
    """One consumed egress record checked and decoded the way every sink takes it: the chain's
    signature verified (shulian.logic.egress; a forgery is never written), then the value
    decoded (Confluent wire format, schema by id). A failure is the record with its reason.
    The loop and a direct write (:mod:`shulian.connectors.sinks.direct`) both call this."""
    raw = rec.raw_value
    forged = verify_egress(topic=rec.topic, key=rec.key, value=raw, headers=rec.headers,
                           keys=keys, at=_written_at(rec.timestamp_ms), now=datetime.now(UTC))
    if forged is not None:
        return rec, SinkFailure.BAD_SIGNATURE, forged
    if raw is None:
        return rec  # a tombstone: the sink deletes (or forwards) by key
    wire = split_wire(raw)
    if wire is None:
        return rec, SinkFailure.BAD_WIRE_FORMAT, "value is not in the Confluent wire format"
    schema_id, body = wire
    parsed = schemas.parsed(schema_id)
    if parsed is None:
        return rec, SinkFailure.UNKNOWN_SCHEMA_ID, f"schema id {schema_id} is unknown"
    try:
        value = decode_wire(parsed, body)
    except Exception as exc:
        return rec, SinkFailure.DECODE_ERROR, f"Avro body does not decode: {type(exc).__name__}"
    if not isinstance(value, dict):
        return rec, SinkFailure.DECODE_ERROR, "the schema is not a record schema"
    text = schemas.schema_str(schema_id)
    schema = json.loads(text) if text else None
    return rec.decoded(schema_id=schema_id, value=value, schema=schema)


def _written_at(timestamp_ms: int | None) -> datetime:
    """When a record was written (its Kafka timestamp; now when it has none): the chain key
    that signed it must have been valid then."""
    if timestamp_ms is None:
        return datetime.now(UTC)
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC)


def _headers(m: Message) -> list[tuple[str, bytes | None]]:
    raw = m.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return [(k, v.encode() if isinstance(v, str) else v) for k, v in pairs]


def run_until(loop: SinkLoop, done: Callable[[], bool], *, timeout_s: float) -> bool:
    """Drive ``loop.step()`` until ``done()`` holds or ``timeout_s`` passes (tests, tools)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if done():
            return True
        loop.step()
    return done()
