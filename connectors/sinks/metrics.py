"""Prometheus metrics of one sink process, labelled by connector name.

Built explicitly on a registry the caller chooses (the CLI passes the process default so
``/metrics`` shows them; tests pass a private ``CollectorRegistry``): no import-time side effects.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["SinkMetrics"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


@dataclass(frozen=True)
class SinkMetrics:
    records_in: Counter
    records_out: Counter
    deadlettered: Counter
    errors: Counter
    lag: Gauge
    write_seconds: Histogram
    delivery_latency: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> SinkMetrics:
        return cls(
            records_in=Counter(
                "shulian_sink_records_in", "Records consumed from egress topics",
                ["connector"], registry=registry,
            ),
            records_out=Counter(
                "shulian_sink_records_out", "Records delivered to the target",
                ["connector"], registry=registry,
            ),
            deadlettered=Counter(
                "shulian_sink_records_deadlettered", "Records sent to the sink dead-letter topic",
                ["connector", "reason"], registry=registry,
            ),
            errors=Counter(
                "shulian_sink_errors", "Failed write attempts and other errors",
                ["connector", "kind"], registry=registry,
            ),
            lag=Gauge(
                "shulian_sink_lag_records", "High watermark minus committed offset",
                ["connector", "topic", "partition"], registry=registry,
            ),
            write_seconds=Histogram(
                "shulian_sink_write_seconds", "Time to write one batch, retries included",
                ["connector"], buckets=_LATENCY_BUCKETS, registry=registry,
            ),
            delivery_latency=Histogram(
                "shulian_sink_delivery_latency_seconds",
                "From the egress record's timestamp to its offset being committed",
                ["connector"], buckets=_LATENCY_BUCKETS, registry=registry,
            ),
        )
