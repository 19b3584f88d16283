"""Explicit wiring: a sink config + settings -> a ready-to-run :class:`SinkLoop`."""

from __future__ import annotations

from confluent_kafka import Consumer
from prometheus_client import CollectorRegistry

from shulian.catalog.keys import Keyring
from shulian.connectors.sinks.config import SinkCommon
from shulian.connectors.sinks.deadletter import KafkaDeadLetter
from shulian.connectors.sinks.loop import BatchSink, SinkLoop
from shulian.connectors.sinks.metrics import SinkMetrics
from shulian.connectors.table import connector_type
from shulian.io.kafka import consumer_config
from shulian.serde import SchemaCache
from shulian.settings import Settings

__all__ = ["SinkConfig", "build_sink", "build_sink_loop"]

SinkConfig = SinkCommon  # every sink type's config (shulian.connectors.table.CONNECTORS) extends it


def build_sink(config: SinkConfig, *, file: str = "<config>") -> BatchSink:
    """The sink object for ``config`` from the connector table (secrets are read from the
    environment here); ConfigError naming ``file`` and ``type`` for a type that is no sink."""
    sink: BatchSink = connector_type(config, file=file, role="sink").load()(config)
    return sink


def chain_keys(settings: Settings) -> Keyring:
    """The catalogue's public keys: the sink verifies every record's chain signature."""
    from shulian.catalog.load import load_catalog

    return Keyring(load_catalog(settings.catalog_dir, schemas_dir=settings.schemas_dir).keys)


def build_sink_loop(
    config: SinkConfig,
    settings: Settings,
    *,
    sink: BatchSink | None = None,
    metrics: SinkMetrics | None = None,
    registry: CollectorRegistry | None = None,
    keys: Keyring | None = None,
    file: str = "<config>",
) -> SinkLoop:
    """The loop for ``config``: consumer (group ``config.consumer_group``, manual commits),
    schema cache, dead-letter producer and the sink. Nothing connects until ``start()``."""
    # a batch may be retried for minutes while the target is down and consume() is not called
    # meanwhile: give the group that long before it evicts this member
    consumer = Consumer(consumer_config(settings, group_id=config.consumer_group,
                                        **{"max.poll.interval.ms": 600_000}))
    return SinkLoop(
        sink=sink or build_sink(config, file=file),
        consumer=consumer,
        topics=config.topics,
        schemas=SchemaCache(settings.registry_url, auth=settings.registry_auth_conf()),
        deadletter=KafkaDeadLetter(settings=settings, topic=config.deadletter,
                                   connector=config.name),
        metrics=metrics or SinkMetrics.create(registry or CollectorRegistry()),
        keys=keys or chain_keys(settings),
        batch_size=config.batch_size,
        poll_timeout_s=config.poll_timeout_s,
    )
