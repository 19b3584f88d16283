"""Audit checkpoints, the worker's and the verification gateway's: every N records or T
seconds, between batches (when every record and seal of the last batch is acknowledged), the
heads of the audit chains it writes, signed with the chain's key, appended to the store outside
Kafka (:mod:`shulian.logic.checkpoint`, :mod:`shulian.io.checkpoints`); the worker also copies
each to the audit topic ``audit.sharing-list``.

A store that fails is logged and tried again at the next occasion: checkpoints guard the
audit log, they never stop the chain."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from shulian.catalog.keys import SigningKey
from shulian.clock import Clock
from shulian.errors import InfrastructureError
from shulian.io.checkpoints import CheckpointStore
from shulian.log import get_logger
from shulian.logic.checkpoint import Checkpoint, build_checkpoint

__all__ = ["Checkpointer"]

log = get_logger(__name__)
Heads = Callable[[], Sequence[tuple[str, int, int, str]]]


class Checkpointer:
    def __init__(self, store: CheckpointStore, signer: SigningKey, heads: Heads, *,
                 clock: Clock, worker: str, every_records: int, every_s: float,
                 monotonic: Callable[[], float] = time.monotonic,
                 also: Callable[[Checkpoint], None] | None = None) -> None:
        """``also``: where else a checkpoint goes once stored (the worker: a copy on
        ``audit.sharing-list``)."""
        self._store, self._signer, self._heads = store, signer, heads
        self._also = also
        self._clock, self._worker = clock, worker
        self._every_records, self._every_s = every_records, every_s
        self._monotonic = monotonic
        self._last: frozenset[tuple[str, int, int, str]] = frozenset()
        self._last_total = 0
        self._last_t = monotonic()

    def maybe(self) -> None:
        heads = frozenset(self._heads())
        if not heads or heads == self._last:
            return
        total = sum(seq for _, _, seq, _ in heads)
        now = self._monotonic()
        if total - self._last_total < self._every_records and now - self._last_t < self._every_s:
            return
        cp = build_checkpoint(heads, self._signer, ts=self._clock.now(), worker=self._worker)
        try:
            self._store.append(cp)
        except InfrastructureError as exc:
            log.error("audit.checkpoint_failed", error=str(exc), partitions=len(heads))
            return
        self._last, self._last_total, self._last_t = heads, total, now
        if self._also is not None:
            self._also(cp)
        log.info("audit.checkpoint", partitions=len(heads), records=total)
