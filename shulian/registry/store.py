"""The Kafka adapter: the registry's state is the ``_schemas`` topic (one partition), read back.

A background thread consumes the partition from the beginning and applies every record to a
:class:`RegistryState`. Writes are produced, and count as done only once the consumer has applied
them (so every instance on the topic sees one order). ``sync()`` produces a NOOP record and waits
for it: after it returns, everything written before is applied (watermarks are not trusted).
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
    Producer,
    TopicPartition,
)

from shulian.errors import RegistryError
from shulian.io.kafka import (
    TopicSpec,
    admin_client,
    consumer_config,
    ensure_topics,
    producer_config,
)
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
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None
        self._failure: str | None = None
        self.write_lock = threading.Lock()  # one writer at a time in this process

    # ------------------------------------------------------------ lifecycle
    def start(self, *, ready_timeout_s: float = 60.0) -> None:
        """Create the topic if needed, read it to its end, then return."""
        try:
            ensure_topics(admin_client(self.settings),
                          [TopicSpec(self.topic, 1, SCHEMAS_TOPIC_CONFIG)],
                          replication_factor=self.settings.replication_factor)
            self._producer = Producer(producer_config(self.settings, **{"linger.ms": 0}))
            self._consumer = Consumer(
                consumer_config(
                    self.settings,
                    group_id=f"shulian-registry-{uuid.uuid4().hex[:8]}",
                    **{"fetch.wait.max.ms": 50, "enable.partition.eof": False},
                )
            )
            self._consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
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
        if self._producer is not None:
            self._producer.flush(5)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._failure is None

    def _run(self) -> None:
        assert self._consumer is not None
        try:
            while not self._stop.is_set():
                msgs = self._consumer.consume(500, 0.2)
                if not msgs:
                    continue
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
        assert self._producer is not None
        offsets: list[int] = []
        failures: list[str] = []

        def delivered(err: Any, msg: Any) -> None:
            if err is not None:
                failures.append(str(err))
            else:
                offsets.append(int(msg.offset()))

        try:
            for key, value in records:
                self._producer.produce(self.topic, key=key, value=value, on_delivery=delivered)
            remaining = self._producer.flush(timeout_s)
        except (KafkaException, BufferError) as exc:
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
