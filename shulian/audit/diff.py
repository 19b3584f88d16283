"""``shulian replay decisions``, the pure part: replayed decisions against audited ones.

For one canonical record the audit holds one decision per list entry, taken at ``ts`` under
``list_version`` (twice or more after an at-least-once re-emission: each emission is judged on
its own). The replay re-decides with the same version and ``now = ts`` and compares, per entry:
decision, reason, share type, fields delivered, fields masked, the egress topic, the record
digest, and, when the delivered view is at hand, the view's values (masked values only when the
HMAC master key is known, since keyed hashes cannot be recomputed without it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shulian.logic.policy import Decision, Outcome
from shulian.logic.views import META_FIELDS

__all__ = ["Mismatch", "audited_summary", "compare_decisions", "compare_views", "replayed_summary"]


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A replayed decision that differs from the audited one (either side may be missing)."""

    canonical: str  # topic[partition]@offset
    record_key: str
    entry_id: str
    what: str
    audited: dict[str, Any] | None
    replayed: dict[str, Any] | None


def audited_summary(rec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "decision": rec.get("decision"),
        "reason": rec.get("reason"),
        "share_type": rec.get("share_type"),
        "fields_delivered": list(rec.get("fields_delivered") or []),
        "fields_masked": [list(x) for x in (rec.get("fields_masked") or [])],
        "delivered_to_egress": bool(rec.get("egress_topic")),
        "list_version": rec.get("list_version"),
        "ts": rec.get("ts"),
    }


def replayed_summary(d: Decision, *, ts: str | None = None) -> dict[str, Any]:
    return {
        "decision": d.outcome.value,
        "reason": None if d.reason is None else d.reason.value,
        "share_type": d.share_type.value,
        "fields_delivered": list(d.fields_delivered),
        "fields_masked": [[f, m] for f, m in d.fields_masked],
        "delivered_to_egress": d.outcome is Outcome.DELIVER,
        "list_version": d.list_version,
        "ts": ts,
    }


_COMPARED = ("decision", "reason", "share_type", "fields_delivered", "fields_masked",
             "delivered_to_egress")


def compare_decisions(
    *,
    canonical: str,
    record_key: str,
    audited: Sequence[Mapping[str, Any]],
    replayed: Sequence[Decision],
    digest: str | None = None,
) -> list[Mismatch]:
    """Compare one emission's audit records (same record, ``ts`` and list version) with the
    decisions replayed for it. ``digest``: SHA-256 of the canonical record read now."""
    out: list[Mismatch] = []
    by_entry: dict[str, Mapping[str, Any]] = {}
    for rec in audited:
        by_entry.setdefault(str(rec.get("entry_id")), rec)
    ts = str(audited[0].get("ts")) if audited else None
    seen: set[str] = set()
    for d in replayed:
        seen.add(d.entry_id)
        new = replayed_summary(d, ts=ts)
        found = by_entry.get(d.entry_id)
        if found is None:
            out.append(Mismatch(canonical, record_key, d.entry_id,
                                "replay decides for an entry the audit has no decision for",
                                None, new))
            continue
        old = audited_summary(found)
        diffs = [k for k in _COMPARED if old[k] != new[k]]
        if digest is not None and found.get("record_digest") != digest:
            diffs.append("record_digest")
        if diffs:
            out.append(Mismatch(canonical, record_key, d.entry_id,
                                "differs in " + ", ".join(diffs), old, new))
    for entry_id, rec in by_entry.items():
        if entry_id not in seen:
            out.append(Mismatch(canonical, record_key, entry_id,
                                "the audit has a decision the replay does not take",
                                audited_summary(rec), None))
    return out


def compare_views(
    replayed: Mapping[str, Any],
    delivered: Mapping[str, Any],
    *,
    masked: frozenset[str],
    compare_masked: bool,
) -> list[str]:
    """Fields whose delivered value differs from the replayed view (metadata fields included;
    masked fields only when ``compare_masked``)."""
    diffs: list[str] = []
    for name in sorted(set(replayed) | set(delivered)):
        if name in masked and not compare_masked:
            continue
        if name not in META_FIELDS and name not in replayed:
            diffs.append(name)
            continue
        if replayed.get(name) != delivered.get(name):
            diffs.append(name)
    return diffs
