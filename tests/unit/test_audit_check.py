"""Chain verification over partitions and completeness matching (pure)."""

from __future__ import annotations

from typing import Any

from shulian.audit.check import (
    Delivery,
    audit_entries,
    completeness,
    deliveries_from_audit,
    deliveries_from_egress,
    digest_breaks,
    verify_partitions,
)
from shulian.audit.window import Window
from shulian.chain.messages import InMessage
from shulian.logic.audit import AuditChain, record_digest


def _audit(key: str, *, decision: str = "deliver", ts: str = "2026-03-01T00:00:00.000Z",
           offset: int = 0) -> dict[str, Any]:
    return {
        "v": 1, "ts": ts, "kind": "decision", "dataset": "d", "provider": "p", "consumer": "c",
        "entry_id": "e1", "list_version": 1, "share_type": "unconditional",
        "decision": decision, "reason": None if decision == "deliver" else "expired",
        "fields_delivered": ["a"], "fields_masked": [], "record_key": key,
        "record_digest": record_digest(key.encode()),
        "source": {"topic": "canonical.d", "partition": 0, "offset": offset},
        "egress_topic": "egress.c.d" if decision == "deliver" else None, "worker": "w",
    }


def _sealed(records: list[dict[str, Any]], topic: str = "audit.d") -> list[InMessage]:
    chain = AuditChain()
    return [InMessage(topic, 0, i, r["record_key"].encode(), chain.seal(r), 0)
            for i, r in enumerate(records)]


def test_intact_chain_has_no_breaks() -> None:
    msgs = _sealed([_audit(f"k{i}", offset=i) for i in range(4)])
    assert verify_partitions({("audit.d", 0): msgs}) == []


def test_edit_delete_reorder_are_breaks_with_position() -> None:
    msgs = _sealed([_audit(f"k{i}", offset=i) for i in range(5)])
    edited = list(msgs)
    edited[2] = InMessage("audit.d", 0, 2, b"k2",
                          (msgs[2].value or b"").replace(b'"k2"', b'"kX"'), 0)
    deleted = [m for i, m in enumerate(msgs) if i != 2]
    reordered = [msgs[0], msgs[2], msgs[1], msgs[3], msgs[4]]
    reordered = [InMessage("audit.d", 0, i, m.key, m.value, 0) for i, m in enumerate(reordered)]
    for tampered, offset in ((edited, 2), (deleted, 3), (reordered, 1)):
        breaks = verify_partitions({("audit.d", 0): tampered})
        assert breaks, tampered
        assert breaks[0].topic == "audit.d" and breaks[0].partition == 0
        assert breaks[0].offset == offset


def test_completeness_both_ways_and_duplicates() -> None:
    entries = audit_entries(_sealed([_audit("k1"), _audit("k2"), _audit("k1"),
                                     _audit("k3", decision="withhold")]))
    audited = deliveries_from_audit(entries)
    assert {d.record_key for d in audited} == {"k1", "k2"}
    headers = [("shulian.entry", b"e1"), ("shulian.list.version", b"1")]
    egress_msgs = [
        InMessage("egress.c.d", 0, 0, b"k1", b"v", 5, headers),
        InMessage("egress.c.d", 1, 0, b"k1", b"v", 5, headers),  # redelivered duplicate
        InMessage("egress.c.d", 1, 1, b"k9", b"v", 5, headers),  # no audit
        InMessage("egress.c.d", 2, 0, b"k8", b"v", 5, []),  # no headers
    ]
    egress, bad = deliveries_from_egress(egress_msgs)
    assert [(b.partition, b.offset) for b in bad] == [(2, 0)]
    breaks = completeness(egress, audited, Window())
    whats = {(b.topic, b.partition, b.offset): b.what for b in breaks}
    assert set(whats) == {("egress.c.d", 1, 1), ("audit.d", 0, 1)}
    assert "without a deliver audit record" in whats[("egress.c.d", 1, 1)]
    assert "without its egress record" in whats[("audit.d", 0, 1)]


def test_completeness_judged_inside_window_only() -> None:
    a = Delivery("egress.c.d", "k", "e1", 1, "audit.d", 0, 0, 1000)
    e = Delivery("egress.c.d", "j", "e1", 1, "egress.c.d", 0, 0, 5000)
    assert len(completeness([e], [a], Window())) == 2
    assert completeness([e], [a], Window(2000, 3000)) == []
    assert [b.topic for b in completeness([e], [a], Window(4000, None))] == ["egress.c.d"]


def test_digest_breaks() -> None:
    entries = audit_entries(_sealed([_audit("k1", offset=0), _audit("k2", offset=1),
                                     _audit("k3", offset=2)]))
    canonical = {("canonical.d", 0, 0): b"k1", ("canonical.d", 0, 1): b"changed"}
    breaks = digest_breaks(entries, canonical, read_topics=frozenset({"canonical.d"}),
                           window=Window())
    assert [(b.offset, b.what.split(" ")[0]) for b in breaks] == [(1, "record_digest"),
                                                                (2, "canonical")]
    assert digest_breaks(entries, canonical, read_topics=frozenset(), window=Window()) == []


def test_pseudonymised_egress_key_is_matched() -> None:
    rec = _audit("440106199001011234")
    rec["egress_key"] = "pseudo-1"
    audited = deliveries_from_audit(audit_entries(_sealed([rec])))
    headers = [("shulian.entry", b"e1"), ("shulian.list.version", b"1")]
    egress, _ = deliveries_from_egress([InMessage("egress.c.d", 0, 0, b"pseudo-1", b"v", 5,
                                                  headers)])
    assert completeness(egress, audited, Window()) == []


def test_junk_and_a_disowned_forgery_are_each_named_and_hide_nothing() -> None:
    """An insider puts junk and then a correctly linked forgery into a sealed partition while
    the worker is down; the restarted worker disowns both with a resume seal and goes on. The
    verdict names the junk and the forgery at their offsets, and nothing else."""
    from datetime import UTC, datetime, timedelta

    from shulian.catalog.keys import CHAIN, Keyring, SigningKey
    from shulian.catalog.models import PublicKey
    from shulian.logic.audit import encode, hash_record
    from shulian.logic.auditseal import build_seal
    from shulian.logic.audittrail import TailTrust, tail_tagger, trusted_tail

    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    signer = SigningKey.generate("chain-1")
    keys = Keyring([PublicKey(id="chain-1", owner=CHAIN, public_key=signer.public_b64,
                              valid_from=t0 - timedelta(days=1))])
    tag = tail_tagger(signer, "audit.d", 0)
    chain = AuditChain(tag=tag)
    values = [chain.seal(_audit("k1")), chain.seal(_audit("k2", offset=1)),
              build_seal(chain, signer, topic="audit.d", partition=0, ts=t0, worker="w"),
              b"\x00junk"]
    forged = {**_audit("k9", offset=9), "seq": chain.next_seq, "prev_hash": chain.head}
    forged["hash"] = hash_record(forged)
    values.append(encode(forged))
    tail = trusted_tail("audit.d", 0, list(enumerate(values)), TailTrust(keys, tag))
    assert tail.disowned == [3, 4]
    resumed = tail.chain(tag)
    values += [build_seal(resumed, signer, topic="audit.d", partition=0, ts=t0, worker="w",
                          resumes=tail.resumes_hash, disowned=tail.disowned),
               resumed.seal(_audit("k3", offset=2)),
               build_seal(resumed, signer, topic="audit.d", partition=0, ts=t0, worker="w")]
    msgs = [InMessage("audit.d", 0, i, b"", v, 0) for i, v in enumerate(values)]
    unsigned: dict[tuple[str, int], int] = {}
    breaks = verify_partitions({("audit.d", 0): msgs}, keys, unsigned)
    assert [(b.offset, b.what.split(":")[0]) for b in sorted(breaks)] == [
        (3, "bad record"), (4, "disowned by the resume seal at offset 5")]
    assert unsigned == {}
