"""Prometheus metrics of the chain worker."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge

from shulian.chain.enforce import EnforceStats
from shulian.logic.result import Rejected


class ChainMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.raw_in = Counter("shulian_raw_records_total", "raw records consumed", registry=r)
        self.rejected = Counter("shulian_deadletter_records_total", "records dead-lettered",
                                ["reason"], registry=r)
        self.canonical_in = Counter("shulian_canonical_records_total",
                                    "canonical records enforced", registry=r)
        self.decisions = Counter("shulian_decisions_total", "policy decisions", ["outcome"],
                                 registry=r)
        self.list_version = Gauge("shulian_sharing_list_version", "list version in force",
                                  registry=r)

    def ingested(self, n: int, rejected: Sequence[Rejected]) -> None:
        self.raw_in.inc(n)
        for rej in rejected:
            self.rejected.labels(reason=rej.reason.value).inc()

    def enforced(self, n: int, stats: EnforceStats) -> None:
        self.canonical_in.inc(n)
        self.decisions.labels(outcome="deliver").inc(stats.delivered)
        self.decisions.labels(outcome="withhold").inc(stats.withheld)
        if stats.rejected:
            self.rejected.labels(reason="canonical").inc(stats.rejected)
