"""What the console shows, indexed in memory from the chain's topics.

The console's own service module (see :mod:`shulian.console.data`): the tailer
(:mod:`shulian.console.data.tail`) hands it the messages it read through :mod:`shulian.io`, in
offset order per partition; pages query it. Nothing here decodes a record's fields: dead letters
keep their original bytes only for their own agency's download, audit records name records by
key and digest.

Audit chains are verified as they arrive, partition by partition, with
:func:`shulian.logic.audit.verify_chain` continuing from the last head seen (so the whole log is
checked from its genesis once, not on every page). Thread-safe: one writer (the tailer), many
readers (requests), one lock.
"""

from __future__ import annotations

import threading
from bisect import insort
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from shulian.audit.check import AuditEntry, audit_entries
from shulian.catalog.approval import ListLedger, ListRefused
from shulian.catalog.models import SharingList
from shulian.chain.messages import InMessage, header_str
from shulian.chain.topology import Topology
from shulian.log import get_logger
from shulian.logic.audit import GENESIS, parse_audit, verify_chain

log = get_logger(__name__)

__all__ = ["DeadLetter", "PartitionCheck", "Store"]

MINUTE_MS = 60_000
_DROP = ("hash", "prev_hash", "record_digest", "worker", "v")  # not shown, not kept


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead-lettered record: where it is, why, and its original bytes."""

    topic: str
    partition: int
    offset: int
    ts_ms: int
    agency: str
    dataset: str
    reason: str
    detail: str
    field: str
    check: str
    origin: str  # raw topic[partition]@offset
    key: bytes | None
    value: bytes

    @property
    def ref(self) -> str:
        return f"{self.partition}-{self.offset}"


@dataclass
class PartitionCheck:
    """The verification state of one audit partition, checked from its genesis."""

    topic: str
    partition: int
    records: int = 0
    head: str = GENESIS
    next_seq: int = 0
    last_offset: int = -1
    breaks: list[tuple[int, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks


@dataclass(frozen=True, slots=True)
class IndexedAudit:
    ts_ms: int
    entry: AuditEntry


def parse_deadletter_topic(topology: Topology, topic: str) -> tuple[str, str] | None:
    name = topology.unprefix(topic)
    parts = None if name is None else name.split(".")
    if parts is None or len(parts) != 3 or parts[0] != "deadletter":
        return None
    return parts[1], parts[2]


class Store:
    """Counts per minute, dead letters, audit entries and chain checks, list versions."""

    def __init__(self, topology: Topology, ledger: ListLedger | None = None) -> None:
        self.topology = topology
        # judges the control topic's versions as a worker does: only accepted ones are kept
        self.ledger = ledger
        self._lock = threading.Lock()
        # (metric, agency, dataset, consumer) -> minute -> records
        self._counts: dict[tuple[str, str, str, str], Counter[int]] = defaultdict(Counter)
        self._dead: list[DeadLetter] = []
        self._audit: list[IndexedAudit] = []
        self._checks: dict[tuple[str, int], PartitionCheck] = {}
        self._origins: dict[tuple[str, int, int], str] = {}  # canonical -> raw origin
        self._lists: dict[int, SharingList] = {}
        self.updated_ms: int | None = None

    # --- writing (the tailer) -------------------------------------------------------------

    def _count(self, metric: str, agency: str, dataset: str, consumer: str, ts_ms: int) -> None:
        self._counts[(metric, agency, dataset, consumer)][ts_ms // MINUTE_MS] += 1

    def add_raw(self, msgs: Iterable[InMessage]) -> None:
        with self._lock:
            for m in msgs:
                parsed = self.topology.parse_raw(m.topic)
                if parsed is not None:
                    self._count("in", parsed[0], parsed[1], "", m.timestamp_ms)

    def add_canonical(self, msgs: Iterable[InMessage]) -> None:
        with self._lock:
            for m in msgs:
                dataset = self.topology.parse_canonical(m.topic)
                if dataset is None:
                    continue
                provider = header_str(m.headers, "shulian.provider") or "?"
                self._count("harmonised", provider, dataset, "", m.timestamp_ms)
                raw = header_str(m.headers, "shulian.source.topic")
                if raw is not None:
                    part = header_str(m.headers, "shulian.source.partition") or "?"
                    off = header_str(m.headers, "shulian.source.offset") or "?"
                    self._origins[(m.topic, m.partition, m.offset)] = f"{raw}[{part}]@{off}"

    def add_deadletters(self, msgs: Iterable[InMessage]) -> None:
        with self._lock:
            for m in msgs:
                parsed = parse_deadletter_topic(self.topology, m.topic)
                if parsed is None:
                    continue
                h = m.headers
                src = header_str(h, "shulian.source.topic") or ""
                origin = (f"{src}[{header_str(h, 'shulian.source.partition') or '?'}]"
                          f"@{header_str(h, 'shulian.source.offset') or '?'}") if src else ""
                dl = DeadLetter(
                    topic=m.topic, partition=m.partition, offset=m.offset, ts_ms=m.timestamp_ms,
                    agency=parsed[0], dataset=parsed[1],
                    reason=header_str(h, "shulian.reason") or "unknown",
                    detail=header_str(h, "shulian.detail") or "",
                    field=header_str(h, "shulian.field") or "",
                    check=header_str(h, "shulian.check") or "",
                    origin=origin, key=m.key, value=m.value or b"")
                self._dead.append(dl)
                self._count("dead", dl.agency, dl.dataset, "", dl.ts_ms)

    def add_audit(self, topic: str, partition: int, msgs: Sequence[InMessage]) -> None:
        """The next records of one audit partition, in offset order."""
        with self._lock:
            check = self._checks.setdefault((topic, partition), PartitionCheck(topic, partition))
            fresh = [m for m in msgs if m.offset > check.last_offset]
            if not fresh:
                return
            items = [(m.offset, m.value or b"") for m in fresh]
            first = check.records == 0
            found = verify_chain(items, expect_head=GENESIS if first else check.head,
                                 expect_seq=0 if first else check.next_seq)
            check.breaks.extend((b.offset, b.what) for b in found)
            check.records += len(fresh)
            check.last_offset = fresh[-1].offset
            last = parse_audit(items[-1][1])
            if last is not None:
                check.head, check.next_seq = str(last["hash"]), int(last["seq"]) + 1
            for e in audit_entries(fresh):
                rec = {k: v for k, v in e.record.items() if k not in _DROP}
                kept = AuditEntry(e.topic, e.partition, e.offset, rec)
                ts = e.ts_ms
                if self._audit and ts < self._audit[-1].ts_ms:
                    insort(self._audit, IndexedAudit(ts, kept), key=lambda a: a.ts_ms)
                else:
                    self._audit.append(IndexedAudit(ts, kept))
                self._count(str(rec.get("decision")), str(rec.get("provider")),
                            str(rec.get("dataset")), str(rec.get("consumer")), ts)

    def add_lists(self, lists: Iterable[SharingList]) -> None:
        with self._lock:
            for sl in lists:
                if self.ledger is not None:
                    verdict = self.ledger.offer(sl, now=None)
                    if isinstance(verdict, ListRefused):
                        log.info("console.list_refused", version=sl.version,
                                 reasons=len(verdict.reasons))
                        continue
                self._lists[sl.version] = sl

    def mark_updated(self, now_ms: int) -> None:
        self.updated_ms = now_ms

    # --- reading (the pages) --------------------------------------------------------------

    def counts(self, since_ms: int, until_ms: int) -> dict[tuple[str, str, str, str], int]:
        lo, hi = since_ms // MINUTE_MS, until_ms // MINUTE_MS
        with self._lock:
            return {k: n for k, c in self._counts.items()
                    if (n := sum(v for minute, v in c.items() if lo <= minute <= hi))}

    def series(self, key: tuple[str, str, str, str], *, start_ms: int, step_ms: int,
               steps: int) -> list[int]:
        """Records per step of ``step_ms`` from ``start_ms`` (``steps`` values)."""
        out = [0] * steps
        with self._lock:
            minutes = dict(self._counts.get(key, {}))
        for minute, n in minutes.items():
            i = (minute * MINUTE_MS - start_ms) // step_ms
            if 0 <= i < steps:
                out[i] += n
        return out

    def deadletters(self) -> list[DeadLetter]:
        with self._lock:
            return list(self._dead)

    def deadletter(self, topic: str, partition: int, offset: int) -> DeadLetter | None:
        with self._lock:
            return next((d for d in self._dead if (d.topic, d.partition, d.offset)
                         == (topic, partition, offset)), None)

    def audit(self) -> list[IndexedAudit]:
        """Every audit entry, in time order (a copy of the index, not of the entries)."""
        with self._lock:
            return list(self._audit)

    def checks(self) -> list[PartitionCheck]:
        with self._lock:
            return [PartitionCheck(c.topic, c.partition, c.records, c.head, c.next_seq,
                                   c.last_offset, list(c.breaks))
                    for _, c in sorted(self._checks.items())]

    def origin(self, canonical: tuple[str, int, int]) -> str:
        with self._lock:
            return self._origins.get(canonical, "")

    def lists(self) -> dict[int, SharingList]:
        with self._lock:
            return dict(self._lists)

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {"deadletters": len(self._dead), "audit": len(self._audit),
                    "partitions": len(self._checks)}
