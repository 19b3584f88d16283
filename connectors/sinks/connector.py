"""A sink config as a runnable connector: D2's :class:`SinkLoop` in a ThreadedConnector."""

from __future__ import annotations

import threading

from shulian.connectors.base import ThreadedConnector
from shulian.connectors.metrics import ConnectorMetrics
from shulian.connectors.sinks.build import SinkConfig, build_sink_loop
from shulian.settings import Settings


class SinkConnector(ThreadedConnector):
    """Consume ``egress.<consumer>.<dataset>``, write batches, commit after each write."""

    def __init__(self, config: SinkConfig, *, settings: Settings,
                 metrics: ConnectorMetrics, file: str = "<config>") -> None:
        super().__init__(config.name)
        self._loop = build_sink_loop(config, settings, metrics=metrics.sink(), file=file)

    def setup(self) -> None:
        # a clear error for an unreachable target at start (the loop's start checks again)
        self._loop.sink.setup()

    def run(self, stop: threading.Event) -> None:
        self._loop.run(stop)
