"""Re-delivery selection, replay audit records and drill pacing (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shulian.audit.redeliver import pace, pick_redeliveries, replay_audit_record, replay_audit_topic
from shulian.chain.messages import InMessage
from shulian.chain.topology import Topology
from shulian.logic.audit import AuditChain, verify_chain


def test_replay_topic_names() -> None:
    assert replay_audit_topic(Topology(), "d") == "audit.replay.d"
    assert replay_audit_topic(Topology(namespace="drill"), "d") == "drill.audit.replay.d"


def test_pick_redeliveries_refuses_unaudited() -> None:
    h = [("shulian.entry", b"e1"), ("shulian.list.version", b"2")]
    msgs = [InMessage("egress.c.d", 0, 0, b"k1", b"v", 1, h),
            InMessage("egress.c.d", 0, 1, b"k2", b"v", 1, h),
            InMessage("egress.c.d", 0, 2, b"k1", b"v", 1, [("shulian.entry", b"e1")])]
    delivers = {("egress.c.d", "k1", "e1", 2): (("audit.d", 1, 7), {"record_key": "k1"})}
    ok, unaudited = pick_redeliveries(msgs, delivers)
    assert [c.message.offset for c in ok] == [0] and ok[0].audit_position == ("audit.d", 1, 7)
    assert [m.offset for m in unaudited] == [1, 2]


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
