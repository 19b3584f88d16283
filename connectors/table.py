"""The one connector table: config ``type`` -> (config model, factory).

Config loading (:mod:`shulian.connectors.config`) builds its discriminated union from this table,
and
:func:`build_connector` and :func:`shulian.connectors.sinks.build.build_sink` build from it: a new
connector type is one line here (plus its config model and its class). A factory is named
``"module:Class"`` and imported only when a connector of that type is built, so reading and
checking configs does not load every connector's libraries (FastAPI, psycopg, ...).

A source's factory is its :class:`~shulian.connectors.base.Connector` class, built as
``cls(config, settings=settings, metrics=metrics)``. A sink's factory is its
:class:`~shulian.connectors.sinks.loop.BatchSink` class, built as ``cls(config)`` and run by the one
:class:`~shulian.connectors.sinks.connector.SinkConnector` loop.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from shulian.connectors.sinks.config import (
    FileSinkConfig,
    KafkaBridgeSinkConfig,
    PostgresSinkConfig,
    WebhookSinkConfig,
)
from shulian.connectors.sources.config import FileDropConfig, GatewayConfig, TableSourceConfig
from shulian.errors import ConfigError, ConfigIssue

if TYPE_CHECKING:
    from shulian.connectors.base import Connector
    from shulian.connectors.metrics import ConnectorMetrics
    from shulian.settings import Settings

__all__ = ["CONNECTORS", "ConnectorType", "build_connector", "connector_type"]


@dataclass(frozen=True, slots=True)
class ConnectorType:
    """One connector type: its config model and the class that runs it."""

    config: type[BaseModel]
    factory: str  # "module:Class"
    role: Literal["source", "sink"]

    def load(self) -> Any:
        """The factory's class (imported on first use)."""
        module, _, attr = self.factory.partition(":")
        return getattr(importlib.import_module(module), attr)


CONNECTORS: dict[str, ConnectorType] = {
    "http_gateway": ConnectorType(GatewayConfig, "shulian.connectors.sources.gateway:GatewaySource",
                                  "source"),
    "file_drop": ConnectorType(FileDropConfig, "shulian.connectors.sources.filedrop:FileDropSource",
                               "source"),
    "postgres_table": ConnectorType(TableSourceConfig,
                                    "shulian.connectors.sources.table:TableSource", "source"),
    "postgres": ConnectorType(PostgresSinkConfig, "shulian.connectors.sinks.postgres:PostgresSink",
                              "sink"),
    "webhook": ConnectorType(WebhookSinkConfig, "shulian.connectors.sinks.webhook:WebhookSink",
    "sink"), "files": ConnectorType(FileSinkConfig, "shulian.connectors.sinks.files:FilesSink",
    "sink"), "kafka_bridge": ConnectorType(KafkaBridgeSinkConfig,
                                  "shulian.connectors.sinks.kafka_bridge:KafkaBridgeSink", "sink"),
}


def connector_type(config: Any, *, file: str = "<config>",
                   role: Literal["source", "sink"] | None = None) -> ConnectorType:
    """The table's entry for ``config.type``; ConfigError naming ``file`` and the ``type``
    field when the type is unknown (or not of ``role``): never a fallback."""
    kind = getattr(config, "type", None)
    entry = CONNECTORS.get(kind) if isinstance(kind, str) else None
    if entry is None or (role is not None and entry.role != role):
        expected = sorted(t for t, e in CONNECTORS.items() if role is None or e.role == role)
        what = f"{role} " if role else ""
        raise ConfigError([ConfigIssue(file, "type", f"unknown {what}connector type {kind!r}; "
                                       f"expected one of {expected}")])
    return entry


def build_connector(config: Any, *, settings: Settings, metrics: ConnectorMetrics,
                    file: str = "<config>") -> Connector:
    """The connector for one validated config (secrets are read from the environment here).

    It connects as its own principal, ``source.<name>`` or ``sink.<name>``, when the settings
    name a folder of principal secrets (:meth:`Settings.for_principal`); otherwise as the
    process's principal."""
    entry = connector_type(config, file=file)
    settings = settings.for_principal(f"{entry.role}.{config.name}")
    if entry.role == "sink":
        from shulian.connectors.sinks.connector import SinkConnector

        return SinkConnector(config, settings=settings, metrics=metrics, file=file)
    connector: Connector = entry.load()(config, settings=settings, metrics=metrics)
    return connector
