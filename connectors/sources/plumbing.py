"""I/O shared by the sources: raw schemas from the registry, a producer that reports each
record's acknowledgement, reachability checks, the one send loop for a batch of records, and
the state file each source keeps its position in.

Every source turns an agency record into checked Avro bytes the same way:
:meth:`RawSchemas.get` then :func:`shulian.connectors.coerce.encode_checked`.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message

from shulian.chain.headers import CONNECTOR, rejected_headers
from shulian.chain.topology import Topology, subject_of
from shulian.connectors.coerce import RawSchema
from shulian.connectors.metrics import SourceMetrics
from shulian.errors import BrokerError, InfrastructureError, RegistryError
from shulian.io.kafka import admin_client
from shulian.io.sender import DeliveryCallback, Sender
from shulian.log import get_logger
from shulian.logic.result import Accepted, Rejected
from shulian.serde import SchemaCache
from shulian.settings import Settings

__all__ = [
    "Acks",
    "DeliveryCallback",
    "Outgoing",
    "RawProducer",
    "RawSchemas",
    "Sent",
    "deadletter_topic",
    "raw_subject",
    "raw_topic",
    "read_state",
    "send_batch",
    "write_state",
]

log = get_logger(__name__)

_TOPOLOGY = Topology()  # sources write production names (drills replay, they never ingest)


def raw_topic(agency: str, dataset: str) -> str:
    return _TOPOLOGY.raw(agency, dataset)


def deadletter_topic(agency: str, dataset: str) -> str:
    return _TOPOLOGY.deadletter(agency, dataset)


def raw_subject(agency: str, dataset: str) -> str:
    return subject_of(raw_topic(agency, dataset))


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Atomically replace the state file (write, fsync, rename), readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an older tmp file may have had wider permissions
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(state, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_state(path: Path) -> dict[str, Any] | None:
    """The state file's JSON object (None when there is none); InfrastructureError when it
    cannot be read or holds no object (never a silent start from the beginning)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise InfrastructureError(f"state file {path} is unreadable: {exc}") from exc
    if not isinstance(data, dict):
        raise InfrastructureError(f"state file {path} is unreadable: not a JSON object")
    return data


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
        self._sender: Sender | None = None

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
    def sender(self) -> Sender:
        if self._sender is None:
            self._sender = Sender(self.settings,
                                  conf={"message.timeout.ms": int(self.timeout_s * 1000)})
        return self._sender

    def produce(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes,
        on_delivery: DeliveryCallback,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        self.sender.send(topic, value, key, headers=list(headers) or None,
                         on_delivery=on_delivery)

    def poll(self, timeout_s: float = 0.0) -> None:
        self.sender.poll(timeout_s)

    def flush(self, timeout_s: float | None = None) -> int:
        """Wait for outstanding acknowledgements; the number still outstanding."""
        if self._sender is None:
            return 0
        return self._sender.flush(self.timeout_s if timeout_s is None else timeout_s)



@dataclass(frozen=True, slots=True)
class Outgoing:
    """One checked source record: Avro bytes for the raw topic (``result`` Accepted, with its
    ``key``), or Rejected, dead-lettered with its original bytes ``raw`` and ``source`` (where
    it came from: file and line, table and cursor) in the headers."""

    result: Accepted[bytes] | Rejected
    key: bytes | None = None
    raw: bytes = b""
    source: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Sent:
    """An acknowledged batch: the acks, the records written to the raw topic and the
    dead-lettered ones as (index in the batch, why)."""

    acks: Acks
    produced: int
    rejected: list[tuple[int, Rejected]]


@dataclass(frozen=True, slots=True)
class SendTo:
    """Where one source sends: its name, raw topic and dead-letter topic, producer, metrics."""

    connector: str
    topic: str
    deadletter: str
    producer: RawProducer
    metrics: SourceMetrics


def _produce_all(to: SendTo, batch: Sequence[Outgoing], acks: Acks) -> Sent:
    rejected: list[tuple[int, Rejected]] = []
    for i, item in enumerate(batch):
        if isinstance(item.result, Rejected):
            rejected.append((i, item.result))
            to.producer.produce(to.deadletter, key=None, value=item.raw, on_delivery=acks,
                                headers=rejected_headers(item.result,
                                                         extra=[(CONNECTOR, to.connector)],
                                                         source=dict(item.source)))
        else:
            to.producer.produce(to.topic, key=item.key, value=item.result.value,
                                on_delivery=acks)
        to.producer.poll(0)
    return Sent(acks, len(batch) - len(rejected), rejected)


def send_batch(to: SendTo, batch: Sequence[Outgoing], stop: threading.Event, *,
               what: str) -> Sent:
    """Produce ``batch`` and wait for every acknowledgement; the whole batch is produced again
    while the broker fails (backoff 0.2 s doubling to 10 s). BrokerError naming ``what`` (the
    connector and the batch) when ``stop`` is set before it was acknowledged. The metrics count
    an acknowledged batch."""
    m = to.metrics
    backoff = 0.2
    while True:
        started = time.monotonic()
        acks = Acks()
        m.lag.labels(to.connector).set(len(batch))
        sent = _produce_all(to, batch, acks)
        left = to.producer.flush()
        m.lag.labels(to.connector).set(0)
        if left == 0 and not acks.errors and acks.ok == len(batch):
            m.records_in.labels(to.connector).inc(len(batch))
            m.records_out.labels(to.connector, to.topic).inc(sent.produced)
            if sent.rejected:
                m.rejected.labels(to.connector, "deadlettered").inc(len(sent.rejected))
            m.delivery_latency.labels(to.connector).observe(time.monotonic() - started)
            return sent
        m.errors.labels(to.connector, "broker").inc()
        why = acks.errors[0] if acks.errors else f"{left} records unacknowledged"
        log.warning("source.batch_failed", connector=to.connector, batch=what, error=why,
                    retry_in_s=backoff)
        if stop.wait(backoff):
            raise BrokerError(f"{what} unacknowledged: {why}")
        backoff = min(backoff * 2, 10.0)
