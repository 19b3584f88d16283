"""The worker's keeper of the verification changelogs (docs/VERIFY.md, "Supersession").

Canonical records reach ``changelog.verify.<dataset>`` in decision order, which is not source
order across canonical partitions. Stores fold by source order (``shulian.order``), but the
broker's compaction keeps the last record per key *by offset*. The keeper follows every
changelog of a dataset with a verify entry in the list in force (a
:class:`shulian.io.changelog.ChangelogTable` with ``repair``) and writes the newer record again
whenever an older one arrived after it, so the last record by offset is the newest at the
source and a store rebuilt after compaction still holds it. Only the chain may write the
changelogs (gateways read them), so the keeper runs in the worker; several workers rewrite
the same record, which folds in as equal.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from shulian.chain.topology import Topology
from shulian.io.changelog import ChangelogTable
from shulian.log import get_logger
from shulian.settings import Settings

__all__ = ["ChangelogKeeper"]

log = get_logger(__name__)
RETRY_S = 30.0


class ChangelogKeeper:
    """Starts a repairing table for each verified dataset as list versions bring them (called
    between batches: never blocks; the tables rebuild and follow on their own threads)."""

    def __init__(self, settings: Settings, topology: Topology,
                 datasets: Callable[[], list[str]]) -> None:
        self._settings = settings
        self._topology = topology
        self._datasets = datasets
        self.tables: dict[str, ChangelogTable] = {}
        self._retry_at: dict[str, float] = {}
        self._monotonic = time.monotonic

    def sync(self) -> None:
        now = self._monotonic()
        for dataset in self._datasets():
            if dataset in self.tables or now < self._retry_at.get(dataset, 0.0):
                continue
            table = ChangelogTable(self._settings, self._topology.verify_changelog(dataset),
                                   repair=True)
            table.start(wait_s=None)
            self.tables[dataset] = table
            log.info("keeper.following", topic=table.topic)
        for dataset, table in list(self.tables.items()):
            failure = table.failure()
            if failure is not None:  # e.g. the topic is not there yet: try again later
                log.error("keeper.failed", topic=table.topic, error=str(failure),
                          retry_s=RETRY_S)
                del self.tables[dataset]
                self._retry_at[dataset] = now + RETRY_S

    def stop(self) -> None:
        for table in self.tables.values():
            table.stop()
