"""I/O shared by the sources: raw schemas from the registry, a producer that reports each
record's acknowledgement, reachability checks.

Every source turns an agency record into checked Avro bytes the same way:
:meth:`RawSchemas.get` then :func:`connectors.coerce.encode_checked`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from connectors.coerce import RawSchema
from shulian.chain.topology import Topology, subject_of
from shulian.errors import BrokerError, RegistryError
from shulian.io.kafka import admin_client, producer_config
from shulian.serde import SchemaCache
from shulian.settings import Settings

__all__ = [
    "Acks",
    "DeliveryCallback",
    "RawProducer",
    "RawSchemas",
    "deadletter_topic",
    "raw_subject",
    "raw_topic",
]

DeliveryCallback = Callable[[KafkaError | None, Message], None]


_TOPOLOGY = Topology()  # sources write production names (drills replay, they never ingest)


def raw_topic(agency: str, dataset: str) -> str:
    return _TOPOLOGY.raw(agency, dataset)


def deadletter_topic(agency: str, dataset: str) -> str:
    return _TOPOLOGY.deadletter(agency, dataset)


def raw_subject(agency: str, dataset: str) -> str:
    return subject_of(raw_topic(agency, dataset))


class RawSchemas:
    """The latest registered raw schema per (agency, dataset), its id cached for ``ttl_s``
    (so a newly registered version is picked up). Thread-safe."""

    def __init__(self, registry_url: str, *, ttl_s: float = 30.0,
                 auth: Mapping[str, Any] | None = None) -> None:
        self.registry_url = registry_url
        self.ttl_s = ttl_s
        self._cache = SchemaCache(registry_url, auth=auth)
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[float, RawSchema]] = {}
        self._by_id: dict[tuple[str, int], RawSchema] = {}

    def get(self, agency: str, dataset: str) -> RawSchema:
        """The latest raw schema; RegistryError when unreachable or not registered."""
        subject = raw_subject(agency, dataset)
        with self._lock:
            hit = self._latest.get(subject)
            if hit is not None and time.monotonic() - hit[0] < self.ttl_s:
                return hit[1]
            try:
                schema_id = self._cache.latest_id(subject)
            except RegistryError:
                if hit is not None:  # keep working on the last answer while the registry is down
                    return hit[1]
                raise
            if schema_id is None:
                raise RegistryError(f"subject {subject} is not registered in {self.registry_url}"
                                    " (run `shulian init`)")
            found = self._by_id.get((subject, schema_id))
            if found is None:
                text = self._cache.schema_str(schema_id)
                if text is None:
                    raise RegistryError(f"schema id {schema_id} of {subject} vanished")
                found = RawSchema.of(subject, schema_id, json.loads(text))
                self._by_id[(subject, schema_id)] = found
            self._latest[subject] = (time.monotonic(), found)
            return found


class Acks:
    """Delivery callback counting acknowledgements, keeping broker errors and the offsets
    written per (topic, partition) as (first, last)."""

    def __init__(self) -> None:
        self.ok = 0
        self.errors: list[str] = []
        self.offsets: dict[tuple[str, int], tuple[int, int]] = {}

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.errors.append(err.str())
            return
        self.ok += 1
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        if topic is None or partition is None or offset is None or offset < 0:
            return
        first, last = self.offsets.get((topic, partition), (offset, offset))
        self.offsets[(topic, partition)] = (min(first, offset), max(last, offset))


class RawProducer:
    """A confluent-kafka producer (``acks=all``) for one source; callbacks report each ack."""

    def __init__(self, settings: Settings, *, timeout_s: float = 30.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self._producer: Producer | None = None

    def check(self, topics: Iterable[str], *, timeout_s: float = 5.0) -> None:
        """BrokerError unless the broker answers and every topic exists."""
        admin = admin_client(self.settings)
        try:
            md = admin.list_topics(timeout=timeout_s)
        except KafkaException as exc:
            raise BrokerError(f"broker {self.settings.bootstrap_servers} unreachable: "
                              f"{exc.args[0] if exc.args else exc}") from exc
        missing = sorted(t for t in topics if t not in md.topics)
        if missing:
            raise BrokerError(f"topics missing on {self.settings.bootstrap_servers}: "
                              f"{', '.join(missing)} (run `shulian init`)")

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(producer_config(
                self.settings, **{"message.timeout.ms": int(self.timeout_s * 1000)}))
        return self._producer

    def produce(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes,
        on_delivery: DeliveryCallback,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        kafka_headers = list[tuple[str, str | bytes | None]](headers) or None
        while True:
            try:
                self.producer.produce(topic, value, key, headers=kafka_headers,
                                      on_delivery=on_delivery)
                return
            except BufferError:
                self.producer.poll(0.05)

    def poll(self, timeout_s: float = 0.0) -> None:
        self.producer.poll(timeout_s)

    def flush(self, timeout_s: float | None = None) -> int:
        """Wait for outstanding acknowledgements; the number still outstanding."""
        if self._producer is None:
            return 0
        return int(self._producer.flush(self.timeout_s if timeout_s is None else timeout_s))

