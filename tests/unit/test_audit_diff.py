"""Replayed decisions against audited ones (pure)."""

from __future__ import annotations

from typing import Any

from shulian.audit.diff import compare_decisions, compare_views
from shulian.catalog.models import ShareType
from shulian.logic.policy import Decision, Outcome, WithholdReason


def _decision(entry: str, *, deliver: bool = True) -> Decision:
    return Decision(
        entry, "c", "p", "d", 2,
        Outcome.DELIVER if deliver else Outcome.WITHHOLD,
        None if deliver else WithholdReason.ROW_FILTER_FALSE,
        {"a": 1} if deliver else None,
        ("a",) if deliver else (),
        (("b", "drop"),) if deliver else (),
        ShareType.UNCONDITIONAL,
        "k",
    )


def _audited(entry: str, *, deliver: bool = True, digest: str = "d0") -> dict[str, Any]:
    return {
        "entry_id": entry, "decision": "deliver" if deliver else "withhold",
        "reason": None if deliver else "row_filter_false", "share_type": "unconditional",
        "fields_delivered": ["a"] if deliver else [], "fields_masked": [["b", "drop"]]
        if deliver else [], "egress_topic": "egress.c.d" if deliver else None,
        "list_version": 2, "ts": "2026-03-01T00:00:00.000Z", "record_digest": digest,
    }


def test_identical_decisions_match() -> None:
    out = compare_decisions(canonical="c[0]@1", record_key="k",
                            audited=[_audited("e1"), _audited("e2", deliver=False)],
                            replayed=[_decision("e1"), _decision("e2", deliver=False)],
                            digest="d0")
    assert out == []


def test_changed_decision_is_reported_with_both_sides() -> None:
    out = compare_decisions(canonical="c[0]@1", record_key="k",
                            audited=[_audited("e1")], replayed=[_decision("e1", deliver=False)])
    assert len(out) == 1
    m = out[0]
    assert m.entry_id == "e1" and "decision" in m.what and "reason" in m.what
    assert m.audited is not None and m.audited["decision"] == "deliver"
    assert m.replayed is not None and m.replayed["decision"] == "withhold"


def test_missing_sides_and_digest() -> None:
    out = compare_decisions(canonical="c[0]@1", record_key="k",
                            audited=[_audited("e1", digest="other"), _audited("e9")],
                            replayed=[_decision("e1"), _decision("e2")], digest="d0")
    whats = {m.entry_id: m.what for m in out}
    assert whats["e1"] == "differs in record_digest"
    assert "no decision for" in whats["e2"]
    assert "does not take" in whats["e9"]


def test_compare_views_skips_masked_without_key() -> None:
    replayed = {"a": 1, "b": "h1", "_record_key": "k"}
    delivered = {"a": 1, "b": "h2", "_record_key": "k"}
    assert compare_views(replayed, delivered, masked=frozenset({"b"}), compare_masked=False) == []
    assert compare_views(replayed, delivered, masked=frozenset({"b"}),
                         compare_masked=True) == ["b"]
    assert compare_views(replayed, {**delivered, "a": 2, "z": 0}, masked=frozenset(),
                         compare_masked=True) == ["a", "b", "z"]
