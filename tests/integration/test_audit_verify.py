"""``audit verify`` on the real broker: tampered chains and incomplete deliveries are caught."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner
from confluent_kafka import Producer

from shulian.audit.window import Window
from shulian.catalog.models import ShareType
from shulian.cli.audit import Topics, run_verify
from shulian.cli.main import cli
from shulian.io.kafka import TopicSpec, admin_client, ensure_topics, producer_config
from shulian.logic.audit import AuditChain, build_audit, record_digest
from shulian.logic.policy import Decision, Outcome, WithholdReason
from shulian.settings import Settings

pytestmark = pytest.mark.both_engines

NOW = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)


def _record(key: str, *, egress: str | None, offset: int) -> dict[str, Any]:
    deliver = egress is not None
    d = Decision("e1", "c", "p", "d", 1, Outcome.DELIVER if deliver else Outcome.WITHHOLD,
                 None if deliver else WithholdReason.EXPIRED, None, ("a",) if deliver else (),
                 (), ShareType.UNCONDITIONAL, key)
    rec = build_audit(d, record_digest=record_digest(key.encode()),
                      source=("canonical.d", 0, offset), ts=NOW, worker="w")
    rec["egress_topic"] = egress
    return rec


def _sealed(keys: list[str], egress: str | None = None) -> list[tuple[str, bytes]]:
    chain = AuditChain()
    return [(k, chain.seal(_record(k, egress=egress, offset=i))) for i, k in enumerate(keys)]


def _produce(settings: Settings, topic: str, items: list[tuple[str, bytes]],
             headers: list[tuple[str, str | bytes | None]] | None = None) -> None:
    ensure_topics(admin_client(settings), [TopicSpec(topic, 1)])
    producer = Producer(producer_config(settings))
    for key, value in items:
        producer.produce(topic, value, key.encode(), partition=0, headers=headers or [])
    assert producer.flush(30) == 0


def test_edited_deleted_reordered_are_caught(kafka_settings: Settings, unique: str) -> None:
    sealed = _sealed([f"k{i}" for i in range(6)])
    intact, edited, deleted, reordered = (f"audit.{n}.{unique}" for n in
                                          ("intact", "edited", "deleted", "reordered"))
    _produce(kafka_settings, intact, sealed)
    tampered = list(sealed)
    tampered[3] = (tampered[3][0], tampered[3][1].replace(b'"expired"', b'"share_type_none"'))
    _produce(kafka_settings, edited, tampered)
    _produce(kafka_settings, deleted, sealed[:2] + sealed[3:])
    _produce(kafka_settings, reordered, [sealed[0], sealed[1], sealed[4], sealed[2],
                                         sealed[3], sealed[5]])
    result = run_verify(kafka_settings, Topics((intact, edited, deleted, reordered), (), ()),
                        Window())
    assert result.audit_records == {(t, 0): n for t, n in
                                    ((intact, 6), (edited, 6), (deleted, 5), (reordered, 6))}
    by_topic: dict[str, list[tuple[int, str]]] = {}
    for b in result.breaks:
        by_topic.setdefault(b.topic, []).append((b.offset, b.what))
    assert intact not in by_topic
    assert [o for o, _ in by_topic[edited]] == [3] and "edited" in by_topic[edited][0][1]
    assert by_topic[deleted][0][0] == 2 and "deleted" in by_topic[deleted][0][1]
    assert by_topic[reordered][0][0] == 2 and "reordered" in by_topic[reordered][0][1]


def test_egress_without_audit_and_reverse(kafka_settings: Settings, unique: str) -> None:
    egress = f"egress.c.d.{unique}"
    audit = f"audit.d.{unique}"
    _produce(kafka_settings, audit, _sealed(["k1", "k2", "k3"], egress=egress))
    headers: list[tuple[str, str | bytes | None]] = [("shulian.entry", b"e1"),
                                                      ("shulian.list.version", b"1")]
    # k1 delivered twice (at-least-once), k3 lost, k9 never audited
    _produce(kafka_settings, egress, [("k1", b"v"), ("k2", b"v"), ("k1", b"v"), ("k9", b"v")],
             headers)
    runner = CliRunner()
    res = runner.invoke(cli, ["audit", "verify", "--bootstrap",
                              kafka_settings.bootstrap_servers, "--audit-topic", audit,
                              "--egress-topic", egress])
    assert res.exit_code == 1, res.output
    assert "2 break(s)" in res.output
    result = run_verify(kafka_settings, Topics((audit,), (egress,), ()), Window())
    found = {(b.topic, b.offset): b.what for b in result.breaks}
    assert set(found) == {(egress, 3), (audit, 2)}
    assert "'k9'" in found[(egress, 3)] and "without a deliver audit record" in found[(egress, 3)]
    assert "'k3'" in found[(audit, 2)] and "without its egress record" in found[(audit, 2)]
    # outside the window nothing is judged, but the chain is still read in full
    assert run_verify(kafka_settings, Topics((audit,), (egress,), ()),
                      Window(0, 1000)).breaks == []


def test_complete_log_exits_zero(kafka_settings: Settings, unique: str) -> None:
    egress = f"egress.c.d.{unique}"
    audit = f"audit.d.{unique}"
    _produce(kafka_settings, audit, _sealed(["k1", "k2"], egress=egress))
    _produce(kafka_settings, egress, [("k1", b"v"), ("k2", b"v")],
             [("shulian.entry", b"e1"), ("shulian.list.version", b"1")])
    res = CliRunner().invoke(cli, ["audit", "verify", "--bootstrap",
                                   kafka_settings.bootstrap_servers, "--audit-topic", audit,
                                   "--from", "2026-03-01T11:00", "--to", "now"])
    assert res.exit_code == 0, res.output
    assert "OK: every chain intact" in res.output
