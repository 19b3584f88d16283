"""``shulian audit report``, the pure part: rows answering "who received what, withheld what and
why", and a record's history from its raw topic to every consumer."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shulian.audit.check import AuditEntry
from shulian.audit.window import Window
from shulian.chain import headers as H
from shulian.chain.messages import Headers, header_str

__all__ = ["COLUMNS", "Filter", "report_rows", "summary", "to_csv", "to_json"]

COLUMNS = (
    "ts", "kind", "dataset", "provider", "consumer", "record_key", "decision", "reason",
    "entry_id", "list_version", "fields_delivered", "fields_masked", "egress_topic",
    "canonical", "raw", "audit",
)


_ALL = Window()


@dataclass(frozen=True, slots=True)
class Filter:
    """What the report is about; unset parts match everything."""

    consumer: str | None = None
    dataset: str | None = None
    record_key: str | None = None
    window: Window = _ALL

    def matches(self, entry: AuditEntry) -> bool:
        r = entry.record
        if self.consumer is not None and r.get("consumer") != self.consumer:
            return False
        if self.dataset is not None and r.get("dataset") != self.dataset:
            return False
        if self.record_key is not None and r.get("record_key") != self.record_key:
            return False
        return self.window.contains(entry.ts_ms)


def _raw_origin(headers: Headers | None) -> str:
    if headers is None:
        return ""
    topic = header_str(headers, H.SOURCE_TOPIC)
    if topic is None:
        return ""
    part = header_str(headers, H.SOURCE_PARTITION) or "?"
    off = header_str(headers, H.SOURCE_OFFSET) or "?"
    return f"{topic}[{part}]@{off}"


def report_rows(
    entries: Iterable[AuditEntry],
    flt: Filter,
    *,
    canonical_headers: Mapping[tuple[str, int, int], Headers] | None = None,
) -> list[dict[str, Any]]:
    """One row per matching audit record, in time order (then audit position).

    ``canonical_headers`` (headers of the canonical records, by topic/partition/offset) adds the
    raw origin each canonical record was harmonised from.
    """
    rows: list[tuple[int, str, int, int, dict[str, Any]]] = []
    for e in entries:
        if not flt.matches(e):
            continue
        r = e.record
        src_any = r.get("source")
        src: dict[str, Any] = src_any if isinstance(src_any, dict) else {}
        where = (str(src.get("topic", "")), int(src.get("partition", -1)),
                 int(src.get("offset", -1)))
        canonical = f"{where[0]}[{where[1]}]@{where[2]}" if where[0] else ""
        raw = _raw_origin(None if canonical_headers is None else canonical_headers.get(where))
        row = {
            "ts": r.get("ts"),
            "kind": r.get("kind"),
            "dataset": r.get("dataset"),
            "provider": r.get("provider"),
            "consumer": r.get("consumer"),
            "record_key": r.get("record_key"),
            "decision": r.get("decision"),
            "reason": r.get("reason") or "",
            "entry_id": r.get("entry_id"),
            "list_version": r.get("list_version"),
            "fields_delivered": ",".join(r.get("fields_delivered") or []),
            "fields_masked": ",".join(f"{f}:{m}" for f, m in (r.get("fields_masked") or [])),
            "egress_topic": r.get("egress_topic") or "",
            "canonical": canonical,
            "raw": raw,
            "audit": f"{e.topic}[{e.partition}]@{e.offset}",
        }
        rows.append((e.ts_ms, e.topic, e.partition, e.offset, row))
    rows.sort(key=lambda t: t[:4])
    return [t[4] for t in rows]


def summary(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Counts per (consumer, dataset, decision, reason)."""
    counts: Counter[tuple[str, str, str, str]] = Counter(
        (str(r["consumer"]), str(r["dataset"]), str(r["decision"]), str(r["reason"]))
        for r in rows
    )
    return [
        {"consumer": c, "dataset": d, "decision": dec, "reason": why, "records": n}
        for (c, d, dec, why), n in sorted(counts.items())
    ]


def to_csv(rows: Iterable[Mapping[str, Any]], columns: Iterable[str] = COLUMNS) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(r)
    return buf.getvalue()


def to_json(rows: Iterable[Mapping[str, Any]]) -> str:
    return json.dumps(list(rows), ensure_ascii=False, indent=2)
