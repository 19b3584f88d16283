"""``shulian audit report``, the pure part: rows answering "who received what, withheld what and
why", and a record's history from its raw topic to every consumer.

Times are given in one zone, the window's (Asia/Shanghai unless told otherwise); masks are
described with their parameters ("phone: first 3 / last 4 kept") when the list version that
decided is known (``mask_words``), reasons are also given in words (``why``).
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from shulian.audit.check import AuditEntry
from shulian.audit.window import DEFAULT_TZ, Window
from shulian.chain import headers as H
from shulian.chain.messages import Headers, header_str
from shulian.logic.reasons import reason_words

__all__ = ["COLUMNS", "Filter", "MaskWords", "answer_counts", "local_time", "report_rows",
           "summary", "to_csv", "to_json", "verification_columns"]

COLUMNS = (
    "ts", "kind", "dataset", "provider", "consumer", "record_key", "decision", "reason", "why",
    "entry_id", "list_version", "fields_delivered", "fields_masked", "egress_topic",
    "canonical", "raw", "audit", "answers", "key_digest",
)

MaskWords = Mapping[tuple[str, int], Mapping[str, str]]
"""(entry id, list version) -> field -> the mask in words with its parameters."""


def local_time(ts_ms: int, tz: tzinfo = DEFAULT_TZ) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz).isoformat(timespec="milliseconds")


def _masked(record: Mapping[str, Any], words: MaskWords | None) -> str:
    known: Mapping[str, str] = {}
    if words is not None:
        known = words.get((str(record.get("entry_id")), _int(record.get("list_version"))), {})
    return "; ".join(f"{f}: {known.get(f, m)}" for f, m in (record.get("fields_masked") or []))


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


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
    mask_words: MaskWords | None = None,
    tz: tzinfo = DEFAULT_TZ,
) -> list[dict[str, Any]]:
    """One row per matching audit record, in time order (then audit position), times in
    ``tz``.

    ``canonical_headers`` (headers of the canonical records, by topic/partition/offset) adds the
    raw origin each canonical record was harmonised from; ``mask_words`` describes each masked
    field's mask with its parameters (else the mask type is given).
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
            "ts": local_time(e.ts_ms, tz),
            "kind": r.get("kind"),
            "dataset": r.get("dataset"),
            "provider": r.get("provider"),
            "consumer": r.get("consumer"),
            "record_key": r.get("record_key"),
            "decision": r.get("decision"),
            "reason": r.get("reason") or "",
            "why": reason_words(str(r["reason"])).en if r.get("reason") else "",
            "entry_id": r.get("entry_id"),
            "list_version": r.get("list_version"),
            "fields_delivered": ",".join(r.get("fields_delivered") or []),
            "fields_masked": _masked(r, mask_words),
            "egress_topic": r.get("egress_topic") or "",
            "canonical": canonical,
            "raw": raw,
            "audit": f"{e.topic}[{e.partition}]@{e.offset}",
            **verification_columns(r),
        }
        rows.append((e.ts_ms, e.topic, e.partition, e.offset, row))
    rows.sort(key=lambda t: t[:4])
    return [t[4] for t in rows]


ANSWERS = ("match", "no_match", "unknown")


def verification_columns(record: Mapping[str, Any]) -> dict[str, str]:
    """A verification's claims in words, field and answer only (the claimed values are in the
    audit as keyed digests, never shown), and its key's digest; empty for a delivery."""
    if record.get("kind") != "verification":
        return {"answers": "", "key_digest": ""}
    claims = [c for c in record.get("claims") or [] if isinstance(c, list) and len(c) == 4]
    answers = "; ".join(f"{c[0]} {c[1]}: {c[2] or '-'}" for c in claims)
    return {"answers": answers, "key_digest": str(record.get("key_digest") or "")[:16]}


def answer_counts(rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """How many claims of ``rows`` were answered match, no_match, unknown."""
    counts = Counter(part.rsplit(": ", 1)[-1] for r in rows if r.get("answers")
                     for part in str(r["answers"]).split("; "))
    return {a: counts.get(a, 0) for a in ANSWERS}


def summary(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Counts per (consumer, dataset, decision, reason); verification groups add their
    claims' answer counts (``answers``)."""
    groups: dict[tuple[str, str, str, str], list[Mapping[str, Any]]] = {}
    for r in rows:
        key = (str(r["consumer"]), str(r["dataset"]), str(r["decision"]), str(r["reason"]))
        groups.setdefault(key, []).append(r)
    out: list[dict[str, Any]] = []
    for (c, d, dec, why), members in sorted(groups.items()):
        item: dict[str, Any] = {"consumer": c, "dataset": d, "decision": dec, "reason": why,
                                "records": len(members)}
        if dec == "verify":
            item["answers"] = answer_counts(members)
        out.append(item)
    return out


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
