"""Delivery failures reported by (topic, key, value) are matched back to the OutMessages to
retry (shulian.streams.runtime: the untracked client has one callback, not one per message)."""

from __future__ import annotations

from confluent_kafka import KafkaError

from shulian.chain.messages import OutMessage
from shulian.streams.runtime import _matched


def test_each_report_matches_one_message() -> None:
    a = OutMessage(topic="egress.x.d", key=b"k1", value=b"v1", headers=[("h", b"1")])
    b = OutMessage(topic="audit.d", key=b"k1", value=b"v1", partition=2)
    twin = OutMessage(topic="egress.x.d", key=b"k1", value=b"v1", headers=[("h", b"1")])
    other = OutMessage(topic="egress.x.d", key=b"k2", value=b"v2")
    err = KafkaError(KafkaError._MSG_TIMED_OUT)
    got = _matched([a, b, twin, other], [("egress.x.d", b"k1", b"v1", err)])
    assert [m for m, _ in got] == [a]  # one report, one retry (not its twin too)
    got = _matched([a, b, twin, other], [("egress.x.d", b"k1", b"v1", err),
                                          ("egress.x.d", b"k1", b"v1", err),
                                          ("audit.d", b"k1", b"v1", err)])
    assert [m for m, _ in got] == [a, b, twin]
    assert all(e is err for _, e in got)
    assert _matched([a], [("nope", None, None, err)]) == []
