"""What each page asks of the :class:`Store`, filtered server-side to the principal's rights
and paginated. Audit rows are shaped by :func:`shulian.audit.report.report_rows` (the same rows
as ``shulian audit report``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shulian.audit.check import AuditEntry
from shulian.audit.report import Filter, report_rows, to_csv
from shulian.console.auth import Principal
from shulian.console.data.store import DeadLetter, IndexedAudit, Store

__all__ = ["AuditQuery", "DeadQuery", "Page", "audit_csv", "audit_page", "deadletter_page",
           "journey", "overview_rows"]

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    total: int
    page: int
    size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))


def _slice(items: Sequence[Any], page: int, size: int) -> tuple[list[Any], int]:
    page = max(1, page)
    return list(items[(page - 1) * size: page * size]), page


@dataclass(frozen=True)
class DeadQuery:
    agency: str | None = None
    dataset: str | None = None
    reason: str | None = None
    start_ms: int | None = None
    end_ms: int | None = None

    def matches(self, d: DeadLetter) -> bool:
        return ((self.agency is None or d.agency == self.agency)
                and (self.dataset is None or d.dataset == self.dataset)
                and (self.reason is None or d.reason == self.reason)
                and (self.start_ms is None or d.ts_ms >= self.start_ms)
                and (self.end_ms is None or d.ts_ms <= self.end_ms))


def deadletter_page(store: Store, who: Principal, q: DeadQuery, *, page: int = 1,
                    size: int = 50) -> tuple[Page, dict[str, list[str]]]:
    """The dead letters ``who`` may see that match ``q``, newest first; and the filter choices
    (agencies, datasets, reasons present among what ``who`` may see)."""
    mine = [d for d in store.deadletters() if who.sees_agency(d.agency)]
    facets = {"agency": sorted({d.agency for d in mine}),
              "dataset": sorted({d.dataset for d in mine}),
              "reason": sorted({d.reason for d in mine})}
    hits = [d for d in mine if q.matches(d)]
    hits.sort(key=lambda d: (d.ts_ms, d.topic, d.partition, d.offset), reverse=True)
    rows, page = _slice(hits, page, size)
    return Page(rows, len(hits), page, size), facets


@dataclass(frozen=True)
class AuditQuery:
    consumer: str | None = None
    provider: str | None = None
    dataset: str | None = None
    decision: str | None = None
    record_key: str | None = None
    start_ms: int | None = None
    end_ms: int | None = None

    def matches(self, a: IndexedAudit) -> bool:
        r = a.entry.record
        return ((self.consumer is None or r.get("consumer") == self.consumer)
                and (self.provider is None or r.get("provider") == self.provider)
                and (self.dataset is None or r.get("dataset") == self.dataset)
                and (self.decision is None or r.get("decision") == self.decision)
                and (self.record_key is None or r.get("record_key") == self.record_key)
                and (self.start_ms is None or a.ts_ms >= self.start_ms)
                and (self.end_ms is None or a.ts_ms <= self.end_ms))


def _matching(store: Store, who: Principal, q: AuditQuery) -> list[AuditEntry]:
    return [a.entry for a in store.audit() if q.matches(a)
            and who.party_to(str(a.entry.record.get("provider")),
                             str(a.entry.record.get("consumer")))]


def _headers(store: Store, entries: Sequence[AuditEntry]) -> dict[tuple[str, int, int], Any]:
    """Raw origins for :func:`report_rows`, as the headers it reads them from."""
    out: dict[tuple[str, int, int], Any] = {}
    for e in entries:
        src = e.record.get("source")
        if not isinstance(src, dict):
            continue
        where = (str(src.get("topic")), int(src.get("partition", -1)),
                 int(src.get("offset", -1)))
        origin = store.origin(where)
        if origin:
            topic, _, rest = origin.partition("[")
            part, _, off = rest.partition("]@")
            out[where] = [("shulian.source.topic", topic.encode()),
                          ("shulian.source.partition", part.encode()),
                          ("shulian.source.offset", off.encode())]
    return out


def audit_page(store: Store, who: Principal, q: AuditQuery, *, page: int = 1,
               size: int = 50) -> Page:
    """The who-got-what rows matching ``q``, newest first."""
    hits = _matching(store, who, q)
    hits.reverse()
    entries, page = _slice(hits, page, size)
    rows = report_rows(entries, Filter(), canonical_headers=_headers(store, entries))
    rows.reverse()
    return Page(rows, len(hits), page, size)


def audit_csv(store: Store, who: Principal, q: AuditQuery) -> str:
    entries = _matching(store, who, q)
    return to_csv(report_rows(entries, Filter(), canonical_headers=_headers(store, entries)))


def journey(store: Store, who: Principal, key: str) -> list[dict[str, Any]]:
    """A record's way by key: raw origin -> canonical -> each decision -> egress. An agency sees
    only the decisions it is party to; a consumer that may not see the key sees its egress
    key (pseudonym) instead."""
    entries = _matching(store, who, AuditQuery(record_key=key))
    rows = report_rows(entries, Filter(), canonical_headers=_headers(store, entries))
    for e, row in zip(entries, rows, strict=False):
        egress_key = e.record.get("egress_key")
        if who.agency is not None and who.agency != e.record.get("provider") and egress_key:
            row["record_key"] = egress_key
    return rows


def overview_rows(store: Store, who: Principal, now_ms: int) -> list[dict[str, Any]]:
    """Per (agency, dataset[, consumer]): counts over the last hour and the last day."""
    hour = store.counts(now_ms - HOUR_MS, now_ms)
    day = store.counts(now_ms - DAY_MS, now_ms)
    keys = sorted(set(day))
    out: list[dict[str, Any]] = []
    for metric, agency, dataset, consumer in keys:
        if consumer and not who.party_to(agency, consumer):
            continue
        if not consumer and not who.sees_agency(agency):
            continue
        out.append({"metric": metric, "agency": agency, "dataset": dataset,
                    "consumer": consumer, "hour": hour.get((metric, agency, dataset, consumer),
                                                           0),
                    "day": day[(metric, agency, dataset, consumer)]})
    return out
