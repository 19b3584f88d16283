"""confluent-kafka clients configured the way the chain needs them, and topic administration.

Settings chosen on purpose:
- consumers: ``enable.auto.commit=false`` (offsets are committed only after outputs are acked),
  session timeout and heartbeat per engine (:meth:`Settings.behaviour`): short on Tansu because
  its first group join waits about half of it (measured: 45 s default -> ~23 s join; 6 s ->
  ~3 s).
- producers: ``acks=all``, ``linger.ms`` and ``batch.size`` for throughput; idempotence per
  engine (on for Apache Kafka), see docs/DEPLOY.md.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from shulian.errors import BrokerError, ConfigError, ConfigIssue
from shulian.log import get_logger
from shulian.settings import Settings

_log = get_logger(__name__)

_WAIT_OUT = frozenset({
    KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError._ALL_BROKERS_DOWN,
    KafkaError.REQUEST_TIMED_OUT, KafkaError.NOT_COORDINATOR,
})

SCRAM_MECHANISM = "SCRAM-SHA-512"


def security_config(settings: Settings) -> dict[str, Any]:
    """librdkafka security settings of this process's identity (the one place they are built).

    On a SASL listener the principal (``SHULIAN_PRINCIPAL``) authenticates with SCRAM-SHA-512
    and its secret (``SHULIAN_SECRET`` / ``SHULIAN_SECRET_FILE``); on a TLS listener the broker's
    certificate is verified against ``SHULIAN_KAFKA_SSL_CA_LOCATION``. Holds a secret: never log.
    """
    conf: dict[str, Any] = {}
    protocol = settings.kafka_security_protocol.upper()
    if protocol.startswith("SASL") and settings.principal:
        secret = settings.identity_secret()
        if secret is None:
            raise ConfigError([ConfigIssue("<environment>", "SHULIAN_SECRET",
                                           f"principal {settings.principal} has no secret on a "
                                           f"{protocol} listener (set SHULIAN_SECRET or "
                                           "SHULIAN_SECRET_FILE)")])
        conf["sasl.mechanism"] = settings.kafka_sasl_mechanism or SCRAM_MECHANISM
        conf["sasl.username"] = settings.principal
        conf["sasl.password"] = secret.get_secret_value()
    if protocol in ("SSL", "SASL_SSL"):
        for key, path in (("ssl.ca.location", settings.kafka_ssl_ca_location),
                          ("ssl.certificate.location", settings.kafka_ssl_certificate_location),
                          ("ssl.key.location", settings.kafka_ssl_key_location)):
            if path is not None:
                conf[key] = str(path)
    return conf


def client_config(settings: Settings) -> dict[str, Any]:
    """Bootstrap servers plus security: what every producer, consumer and admin client starts
    from."""
    return {**settings.kafka_common(), **security_config(settings)}
BROKER_PROBE_S = 4.0  # plus start-up: the error is out within 5 s
TANSU_CLUSTER_ID = "tansu_cluster"  # what the embedded Tansu broker reports
KRAFT_CLUSTER_ID = re.compile(r"[A-Za-z0-9_-]{22}")  # 16 bytes, base64url: Apache Kafka's


class BrokerUnreachable(BrokerError):
    """No broker answered at the configured bootstrap servers."""

    def __init__(self, bootstrap: str, timeout_s: float) -> None:
        self.bootstrap = bootstrap
        super().__init__(
            f"no Kafka broker answered at {bootstrap} within {timeout_s:g} s; start one "
            "(shulian up) or point Shulian at yours with --bootstrap HOST:PORT or "
            "SHULIAN_BOOTSTRAP_SERVERS")


def require_broker(settings: Settings, *, timeout_s: float = BROKER_PROBE_S) -> None:
    """One metadata round trip before a command's real work, with librdkafka's own logging
    off: an unreachable broker is one clear error within ``timeout_s`` (not librdkafka's
    reconnect lines for as long as the command's own timeouts last)."""
    admin = AdminClient({**client_config(settings), "log_level": 0,
                         "socket.connection.setup.timeout.ms": int(timeout_s * 1000)})
    try:
        md = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise BrokerUnreachable(settings.bootstrap_servers, timeout_s) from exc
    if not md.brokers:
        raise BrokerUnreachable(settings.bootstrap_servers, timeout_s)
    why = engine_mismatch(settings.broker_engine, md.cluster_id)
    if why is not None:
        raise ConfigError([ConfigIssue("<environment>", "SHULIAN_BROKER_ENGINE",
                                       f"the broker at {settings.bootstrap_servers} {why}")])


def engine_mismatch(engine: str, cluster_id: str | None) -> str | None:
    """Why the clients' engine behaviour does not fit the broker that answered, or None.

    Pointed at Apache Kafka with the embedded engine's behaviour, producers are not idempotent
    (a retried write can be stored twice: the three-node failover test once appended 300
    refused writes twice) and Tansu-only waits apply; the other way round, Kafka's trust in
    watermarks does not hold on Tansu. Known only when the cluster id says which it is."""
    if engine == "tansu" and cluster_id and KRAFT_CLUSTER_ID.fullmatch(cluster_id):
        return (f"is Apache Kafka (KRaft cluster id {cluster_id}) but the client behaviour is "
                "the embedded broker's (no idempotent producers): set "
                "SHULIAN_BROKER_ENGINE=kafka (or --engine kafka)")
    if engine == "kafka" and cluster_id == TANSU_CLUSTER_ID:
        return ("is the embedded Tansu broker but the client behaviour is Apache Kafka's: set "
                "SHULIAN_BROKER_ENGINE=tansu")
    return None


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: tuple[tuple[str, str], ...] = ()


def consumer_config(settings: Settings, *, group_id: str, **extra: Any) -> dict[str, Any]:
    behaviour = settings.behaviour()
    conf: dict[str, Any] = {
        **client_config(settings),
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": behaviour.session_timeout_ms,
        "heartbeat.interval.ms": behaviour.heartbeat_interval_ms,
        "max.poll.interval.ms": 60000,
        "partition.assignment.strategy": "cooperative-sticky",
        "log_level": 3,
    }
    conf.update(extra)
    return conf


MAX_MESSAGE_BYTES = 17 * 1024 * 1024
"""Largest message the chain writes: a dead letter carries a raw record's original bytes (the
worker fetches up to 16 MiB) plus headers. Chain topics are created accepting it
(``max.message.bytes``), and chain producers are allowed it (librdkafka's default is ~1 MB)."""


def producer_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    conf: dict[str, Any] = {
        **client_config(settings),
        "acks": "all",
        "message.max.bytes": MAX_MESSAGE_BYTES,
        "linger.ms": 10,
        "batch.size": 1_000_000,
        "compression.type": "none",
        "queue.buffering.max.messages": 500_000,
        "log_level": 3,
    }
    if settings.behaviour().idempotence:
        conf["enable.idempotence"] = True
    conf.update(extra)
    return conf


def admin_client(settings: Settings) -> AdminClient:
    return AdminClient({**client_config(settings), "log_level": 3})


def ensure_topics(
    admin: AdminClient,
    specs: Iterable[TopicSpec],
    *,
    replication_factor: int = 1,
    timeout_s: float = 30.0,
) -> None:
    """Create missing topics with explicit partition counts; existing ones are left as they are."""
    specs = list(specs)
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as exc:
        raise BrokerError(f"cannot list topics: {exc}") from exc
    missing = [s for s in specs if s.name not in existing]
    if not missing:
        return
    futures = admin.create_topics(
        [
            NewTopic(s.name, num_partitions=s.partitions,
                     replication_factor=replication_factor, config=dict(s.config))
            for s in missing
        ],
        request_timeout=timeout_s,
    )
    for name, fut in futures.items():
        try:
            fut.result()
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" in str(exc):
                continue
            raise BrokerError(f"cannot create topic {name}: {exc}") from exc
    # metadata can lag creation on the embedded broker: wait until every topic is visible
    deadline = time.monotonic() + timeout_s
    names = {s.name for s in missing}
    while time.monotonic() < deadline:
        md = admin.list_topics(timeout=timeout_s)
        if names <= set(md.topics) and all(
            len(md.topics[n].partitions) > 0 for n in names
        ):
            return
        time.sleep(0.1)
    raise BrokerError(f"topics not visible after creation: {sorted(names)}")


BROKER_PATIENCE_S = 600.0
"""How long a read waits out a broker that is away (a leader moving, nodes restarting) before
it gives up as broken infrastructure."""


def watermarks(consumer: Any, topic: str, partition: int, *, timeout_s: float = 10.0,
               patience_s: float = BROKER_PATIENCE_S) -> tuple[int, int]:
    """``(low, high)`` of a partition. A retriable broker error (no leader, a leader moving,
    a node that is down) is waited out, with backoff, for up to ``patience_s``: a cluster that
    lost nodes makes the chain wait, not crash; anything else, or a wait past the patience,
    is a :class:`BrokerError`."""
    from confluent_kafka import TopicPartition

    deadline = time.monotonic() + patience_s
    pause = 0.5
    while True:
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                       timeout=timeout_s)
            return int(low), int(high)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            waitable = isinstance(err, KafkaError) and (err.retriable() or err.code() in _WAIT_OUT)
            if not waitable or time.monotonic() + pause > deadline:
                raise BrokerError(f"watermarks of {topic}[{partition}]: {err}") from exc
            assert isinstance(err, KafkaError)
            _log.warning("kafka.waiting_for_broker", topic=topic, partition=partition,
                         error=err.name(), retry_in_s=pause)
            time.sleep(pause)
            pause = min(pause * 2, 10.0)
