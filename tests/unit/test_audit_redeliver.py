"""Re-delivery selection, replay audit records and drill pacing (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shulian.audit.redeliver import pace, replay_audit_record, replay_audit_topic
from shulian.chain.messages import InMessage
from shulian.chain.topology import Topology
from shulian.logic.audit import AuditChain, verify_chain


def test_replay_topic_names() -> None:
    assert replay_audit_topic(Topology(), "d") == "audit.replay.d"
    assert replay_audit_topic(Topology(namespace="drill"), "d") == "drill.audit.replay.d"


def test_replay_audit_record_chains() -> None:
    original = {"v": 1, "ts": "2026-01-01T00:00:00.000Z", "kind": "decision", "dataset": "d",
                "consumer": "c", "entry_id": "e1", "list_version": 2, "decision": "deliver",
                "record_key": "k1", "record_digest": "ab", "egress_topic": "egress.c.d",
                "worker": "w", "seq": 4, "prev_hash": "x", "hash": "y"}
    ts = datetime(2026, 3, 1, tzinfo=UTC)
    rec = replay_audit_record(original, original_position=("audit.d", 1, 7), target="sink:pg",
                              egress_topic=None, ts=ts, worker="replay")
    assert rec["kind"] == "replay" and rec["egress_topic"] is None
    assert rec["ts"] == "2026-03-01T00:00:00.000Z" and rec["record_key"] == "k1"
    assert rec["replay"] == {"of": {"topic": "audit.d", "partition": 1, "offset": 7},
                             "target": "sink:pg"}
    assert "hash" not in rec and "seq" not in rec
    chain = AuditChain()
    assert verify_chain([(0, chain.seal(rec))]) == []


def test_pace() -> None:
    assert pace([1000, 1000, 3000, 2000, 5000], 2) == [0.0, 0.0, 1.0, 1.0, 2.0]
    assert pace([], 10) == []
    with pytest.raises(ValueError):
        pace([1], 0)


def test_selection_picks_audited_deliveries_never_egress_bytes() -> None:
    from shulian.audit.check import AuditEntry
    from shulian.audit.rederive import select_deliveries

    audit = {"kind": "decision", "decision": "deliver", "egress_topic": "egress.c.d",
             "record_key": "k1", "entry_id": "e1", "list_version": 2, "record_digest": "dg"}
    entries = [AuditEntry("audit.d", 0, 7, audit),
               AuditEntry("audit.d", 0, 8, {**audit, "decision": "withhold"})]
    h = [("shulian.entry", b"e1"), ("shulian.list.version", b"2"), ("shulian.digest", b"dg")]
    msgs = [InMessage("egress.c.d", 0, 0, b"k1", b"genuine", 1, h),
            InMessage("egress.c.d", 0, 1, b"k1", b"forged, same headers", 2, h),
            InMessage("egress.c.d", 0, 2, b"k2", b"forged, other key", 3, h),
            InMessage("egress.c.d", 0, 3, b"k1", b"other digest", 4,
                      [*h[:2], ("shulian.digest", b"xx")]),
            InMessage("egress.c.d", 0, 4, b"k1", b"copy", 5, [*h, ("shulian.replay", b"1")])]
    chosen, unmatched = select_deliveries(msgs, entries)
    assert [(e.offset, m.offset) for e, m in chosen] == [(7, 0)]  # once, the audit record
    assert [m.offset for m in unmatched] == [2, 3]
