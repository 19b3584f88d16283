"""The Kafka adapter: the registry's state is the ``_schemas`` topic (one partition), read back.

A background thread consumes the partition from the beginning and applies every record to a
:class:`RegistryState`. Writes are produced, and count as done only once the consumer has applied
them (so every instance on the topic sees one order). ``sync()`` produces a NOOP record and waits
for it: after it returns, everything written before is applied (used at start-up, where the
broker's watermarks may not yet cover what it holds). ``catch_up()`` is the cheap form for reads
that found nothing: it asks the broker for the partition's high watermark (one ListOffsets
request, about a millisecond) and waits only if this instance has not applied up to it. A write
acknowledged with ``acks=all`` is below the high watermark, so a write another instance has
answered is seen; ``catch_up`` falls back to ``sync`` if the broker does not answer.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from shulian.errors import RegistryError
from shulian.io.kafka import (
    TopicSpec,
    admin_client,
    consumer_config,
    ensure_topics,
)
from shulian.io.sender import Sender
from shulian.log import get_logger
from shulian.registry import errors as e
from shulian.registry.records import Record, noop_record
from shulian.registry.state import RegistryState
from shulian.settings import Settings

log = get_logger(__name__)
T = TypeVar("T")


SCHEMAS_TOPIC_CONFIG = (("cleanup.policy", "compact"),)
"""Like Confluent's ``_schemas``: keep the newest value per key, forever (never deleted by age)."""


class KafkaStore:
    """Owns the state; ``view`` reads it under a lock, ``commit`` writes records and waits."""

    def __init__(
        self, settings: Settings, *, topic: str | None = None, write_timeout_s: float = 15.0
    ) -> None:
        self.settings = settings
        self.topic = topic or settings.schemas_topic
        self.write_timeout_s = write_timeout_s
        self.state = RegistryState()
        self.position = 0  # next offset to apply
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sender: Sender | None = None
        self._consumer: Consumer | None = None
        self._offsets: Consumer | None = None  # only asks for watermarks (not thread-shared)
        self._offsets_lock = threading.Lock()
        self._failure: str | None = None
        self.write_lock = threading.Lock()  # one writer at a time in this process
        self.cluster_id = ""  # the Kafka cluster's id, for GET /v1/metadata/id

    # ------------------------------------------------------------ lifecycle
    def start(self, *, ready_timeout_s: float = 60.0) -> None:
        """Create the topic if needed, read it to its end, then return."""
        try:
            ensure_topics(admin_client(self.settings),
                          [TopicSpec(self.topic, 1, SCHEMAS_TOPIC_CONFIG)],
                          replication_factor=self.settings.replication_factor)
            self._sender = Sender(self.settings, conf={"linger.ms": 0})
            self._consumer = Consumer(
                consumer_config(
                    self.settings,
                    group_id=f"shulian-registry-{uuid.uuid4().hex[:8]}",
                    **{"fetch.wait.max.ms": 50, "enable.partition.eof": False},
                )
            )
            self._consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
            self._offsets = Consumer(
                consumer_config(self.settings, group_id=f"shulian-registry-{uuid.uuid4().hex[:8]}")
            )
            self.cluster_id = self._consumer.list_topics(self.topic, timeout=10).cluster_id or ""
        except KafkaException as exc:
            raise RegistryError(f"registry store cannot reach the broker: {exc}") from exc
        self._thread = threading.Thread(target=self._run, name="registry-store", daemon=True)
        self._thread.start()
        started = time.monotonic()
        self._commit([noop_record()], timeout_s=ready_timeout_s)
        log.info(
            "registry.store.ready",
            topic=self.topic,
            records=self.state.applied,
            skipped=self.state.skipped,
            schemas=len(self.state.schemas),
            seconds=round(time.monotonic() - started, 3),
        )

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._consumer is not None:
            self._consumer.close()
        if self._offsets is not None:
            self._offsets.close()
        if self._sender is not None:
            self._sender.flush(5)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._failure is None

    def _run(self) -> None:
        assert self._consumer is not None
        try:
            while not self._stop.is_set():
                # poll() returns as soon as one record is there; consume(n, t) would wait out t
                first = self._consumer.poll(0.2)
                if first is None:
                    continue
                msgs = [first, *self._consumer.consume(499, 0)]
                with self._cond:
                    for m in msgs:
                        err = m.error()
                        if err is not None:
                            if err.code() != KafkaError._PARTITION_EOF:
                                log.warning("registry.store.consume_error", error=str(err))
                            continue
                        if not self.state.apply(m.key(), m.value()):
                            log.warning("registry.store.record_skipped", offset=m.offset())
                        self.position = max(self.position, (m.offset() or 0) + 1)
                    self._cond.notify_all()
        except Exception as exc:
            self._failure = f"{type(exc).__name__}: {exc}"
            log.error("registry.store.failed", error=self._failure)
            with self._cond:
                self._cond.notify_all()

    # ------------------------------------------------------------ reads/writes
    def view(self, fn: Callable[[RegistryState], T]) -> T:
        with self._cond:
            return fn(self.state)

    def catch_up(self, *, timeout_s: float = 2.0) -> None:
        """Wait until everything below the partition's high watermark is applied here."""
        assert self._offsets is not None
        try:
            with self._offsets_lock:
                _low, high = self._offsets.get_watermark_offsets(
                    TopicPartition(self.topic, 0), timeout=timeout_s, cached=False
                )
        except KafkaException as exc:
            log.warning("registry.store.watermark_failed", error=str(exc))
            self.sync()
            return
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self.position < high and self._failure is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
        if self.position < high:
            self.sync()

    def sync(self) -> None:
        """Wait until everything written to the topic so far is applied here."""
        self.commit([self._noop()])

    def commit(self, records: list[Record]) -> None:
        """Produce ``records`` in order and wait until this instance has applied all of them.
        A batch with a tombstone (a hard delete) is followed by a NOOP carrying the highest id
        issued, so compaction cannot make a fresh instance forget it."""
        if any(value is None for _, value in records):
            records = [*records, self._noop()]
        self._commit(records, timeout_s=self.write_timeout_s)

    def _noop(self) -> Record:
        with self._cond:
            return noop_record(self.state.max_id)

    def _commit(self, records: list[Record], *, timeout_s: float) -> None:
        if not records:
            return
        assert self._sender is not None
        offsets: list[int] = []
        failures: list[str] = []

        def delivered(err: Any, msg: Any) -> None:
            if err is not None:
                failures.append(str(err))
            else:
                offsets.append(int(msg.offset()))

        try:
            for key, value in records:
                self._sender.send(self.topic, value, key, on_delivery=delivered)
            remaining = self._sender.flush(timeout_s)
        except KafkaException as exc:
            log.error("registry.store.produce_failed", error=str(exc))
            raise e.ApiError(500, e.STORE_ERROR, "Error in the backend data store") from exc
        if failures or remaining or len(offsets) != len(records):
            log.error("registry.store.produce_failed", error=failures[:1], unsent=remaining)
            raise e.ApiError(500, e.STORE_ERROR, "Error in the backend data store")
        last = max(offsets)
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self.position <= last:
                if self._failure is not None:
                    raise e.ApiError(500, e.STORE_ERROR, "Error in the backend data store")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise e.ApiError(
                        500, e.OPERATION_TIMEOUT, "Operation timed out reading back the write"
                    )
                self._cond.wait(left)
