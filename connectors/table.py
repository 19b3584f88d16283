"""The explicit connector table: config ``type`` -> the class that runs it.

Each class is built as ``cls(config, settings=settings, metrics=metrics)`` and satisfies
:class:`connectors.base.Connector`. Add a type here with one line, next to its config model in
:data:`connectors.config.ConnectorConfig`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connectors.base import Connector
from connectors.metrics import ConnectorMetrics
from connectors.sinks.connector import SinkConnector
from connectors.sources.filedrop import FileDropSource
from connectors.sources.gateway import GatewaySource
from connectors.sources.table import TableSource
from shulian.settings import Settings

__all__ = ["CONNECTORS", "build_connector"]

CONNECTORS: dict[str, Callable[..., Connector]] = {
    "http_gateway": GatewaySource,
    "file_drop": FileDropSource,
    "postgres_table": TableSource,
    "postgres": SinkConnector,
    "webhook": SinkConnector,
    "files": SinkConnector,
    "kafka_bridge": SinkConnector,
}


def build_connector(config: Any, *, settings: Settings, metrics: ConnectorMetrics) -> Connector:
    """The connector for one validated config (secrets are read from the environment here)."""
    cls = CONNECTORS[config.type]
    return cls(config, settings=settings, metrics=metrics)
