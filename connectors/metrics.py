"""Prometheus metrics of the connectors in one process, labelled by connector name.

Built explicitly on a registry the caller chooses (``shulian connect run`` uses the process
default and serves it on ``--metrics-port``; tests pass a private ``CollectorRegistry``).
Every connector of a process shares one :class:`ConnectorMetrics`: a family can be registered
only once per registry.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shulian.connectors.sinks.metrics import SinkMetrics

__all__ = ["ConnectorMetrics", "SourceMetrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass(frozen=True)
class SourceMetrics:
    records_in: Counter  # records received/read from the agency system
    records_out: Counter  # records acknowledged by the broker on the raw topic
    rejected: Counter  # records refused (reply) or dead-lettered, by reason
    errors: Counter  # infrastructure errors, by kind
    lag: Gauge  # records read but not yet acknowledged, or known to be waiting
    delivery_latency: Histogram  # from receipt/read to the broker's acknowledgement

    @classmethod
    def create(cls, registry: CollectorRegistry) -> SourceMetrics:
        return cls(
            records_in=Counter("shulian_source_records_in", "Records received from agencies",
                               ["connector"], registry=registry),
            records_out=Counter("shulian_source_records_out",
                                "Records acknowledged by the broker on raw topics",
                                ["connector", "topic"], registry=registry),
            rejected=Counter("shulian_source_records_rejected",
                             "Records refused or dead-lettered", ["connector", "reason"],
                             registry=registry),
            errors=Counter("shulian_source_errors", "Infrastructure errors",
                           ["connector", "kind"], registry=registry),
            lag=Gauge("shulian_source_lag_records",
                      "Records read but not yet acknowledged or still waiting in the source",
                      ["connector"], registry=registry),
            delivery_latency=Histogram(
                "shulian_source_delivery_latency_seconds",
                "From receiving or reading a record to the broker's acknowledgement",
                ["connector"], buckets=_LATENCY_BUCKETS, registry=registry),
        )


@dataclass
class ConnectorMetrics:
    """The metric families of one process; sink families are created on first use."""

    registry: CollectorRegistry
    source: SourceMetrics
    _sink: SinkMetrics | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> ConnectorMetrics:
        reg = registry if registry is not None else CollectorRegistry()
        return cls(registry=reg, source=SourceMetrics.create(reg))

    def sink(self) -> SinkMetrics:
        with self._lock:
            if self._sink is None:
                self._sink = SinkMetrics.create(self.registry)
            return self._sink
