"""``audit verify`` on the real broker: tampered chains and incomplete deliveries are caught."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner
from confluent_kafka import Producer

from shulian.audit.verifying import Topics, run_verify
from shulian.audit.window import Window
from shulian.catalog.load import load_catalog
from shulian.catalog.models import ShareType
from shulian.cli.main import cli
from shulian.io.kafka import TopicSpec, admin_client, ensure_topics, producer_config
from shulian.logic.audit import AuditChain, build_audit, record_digest
from shulian.logic.auditseal import build_seal
from shulian.logic.policy import Decision, Outcome, WithholdReason
from shulian.settings import Settings
from tests.fixtures.signing import chain_signer, egress_headers

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
             headers: list[tuple[str, str | bytes | None]] | None = None, *,
             signed: bool = False) -> None:
    """``signed``: each record carries the chain's signature (as the enforce stage writes)."""
    ensure_topics(admin_client(settings), [TopicSpec(topic, 1)])
    producer = Producer(producer_config(settings))
    signer = chain_signer(load_catalog(settings.catalog_dir,
                                       schemas_dir=settings.schemas_dir).keys)
    for key, value in items:
        extra = egress_headers(signer, topic=topic, key=key.encode(), value=value, entry="e1",
                               list_version=1, digest=record_digest(key.encode()))
        producer.produce(topic, value, key.encode(), partition=0,
                         headers=extra if signed else (headers or []))
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
    # k1 delivered twice (at-least-once), k3 lost, k9 never audited
    _produce(kafka_settings, egress, [("k1", b"v"), ("k2", b"v"), ("k1", b"v"), ("k9", b"v")],
             signed=True)
    # an insider's forgery with an existing key, entry and version (a matching deliver audit
    # record exists): not signed by the chain
    _produce(kafka_settings, egress, [("k2", b"forged")],
             [("shulian.entry", b"e1"), ("shulian.list.version", b"1")])
    runner = CliRunner()
    res = runner.invoke(cli, ["audit", "verify", "--bootstrap",
                              kafka_settings.bootstrap_servers, "--audit-topic", audit,
                              "--egress-topic", egress])
    assert res.exit_code == 1, res.output
    assert "3 break(s)" in res.output
    assert "egress records: 5 (1 forged, 1 without a deliver audit record)" in res.output
    result = run_verify(kafka_settings, Topics((audit,), (egress,), ()), Window())
    found = {(b.topic, b.offset): b.what for b in result.breaks}
    assert set(found) == {(egress, 3), (egress, 4), (audit, 2)}
    assert "'k9'" in found[(egress, 3)] and "without a deliver audit record" in found[(egress, 3)]
    assert "forged egress record: not signed by the chain" in found[(egress, 4)]
    assert "'k3'" in found[(audit, 2)] and "without its egress record" in found[(audit, 2)]
    # outside the window nothing is judged, but the chain is still read in full
    assert run_verify(kafka_settings, Topics((audit,), (egress,), ()),
                      Window(0, 1000)).breaks == []


def _with_seal(items: list[tuple[str, bytes]], topic: str, settings: Settings
               ) -> list[tuple[str, bytes]]:
    """``items`` (one chain) followed by the chain key's signed seal, as the worker ends a
    batch."""
    chain = AuditChain.resume(items[-1][1])
    signer = chain_signer(load_catalog(settings.catalog_dir,
                                       schemas_dir=settings.schemas_dir).keys)
    return [*items, ("", build_seal(chain, signer, topic=topic, partition=0, ts=NOW,
                                    worker="w"))]


def test_complete_log_exits_zero(kafka_settings: Settings, unique: str) -> None:
    egress = f"egress.c.d.{unique}"
    audit = f"audit.d.{unique}"
    _produce(kafka_settings, audit, _with_seal(_sealed(["k1", "k2"], egress=egress), audit,
                                               kafka_settings))
    _produce(kafka_settings, egress, [("k1", b"v"), ("k2", b"v")], signed=True)
    res = CliRunner().invoke(cli, ["audit", "verify", "--bootstrap",
                                   kafka_settings.bootstrap_servers, "--audit-topic", audit,
                                   "--from", "2026-03-01T11:00", "--to", "now"])
    assert res.exit_code == 0, res.output
    assert "OK: every chain intact" in res.output


def test_unsigned_tail_is_a_warning_and_a_forgery_is_named(kafka_settings: Settings,
                                                            unique: str) -> None:
    """The attacker appends a correctly linked record (hash computed as the worker does):
    alone it is an unsigned tail (exit 4, never OK); once the worker's next sealed batch
    follows, the forgery is named at its offset (exit 1)."""
    audit = f"audit.d.{unique}"
    genuine = _with_seal(_sealed(["k1", "k2"]), audit, kafka_settings)
    _produce(kafka_settings, audit, genuine)
    attacker = AuditChain.resume(genuine[-1][1])
    _produce(kafka_settings, audit, [("k9", attacker.seal(_record("k9", egress=None,
                                                                  offset=9)))])
    args = ["audit", "verify", "--bootstrap", kafka_settings.bootstrap_servers,
            "--audit-topic", audit, "--no-digests"]
    res = CliRunner().invoke(cli, args, env={"COLUMNS": "200"})
    assert res.exit_code == 4, res.output
    assert "unsigned tail, 1 record(s)" in res.output and "OK:" not in res.output
    worker = AuditChain.resume(genuine[-1][1])  # the worker's head: its own seal
    more = [("k3", worker.seal(_record("k3", egress=None, offset=3)))]
    _produce(kafka_settings, audit, _with_seal(more, audit, kafka_settings))
    res = CliRunner().invoke(cli, args, env={"COLUMNS": "200"})
    assert res.exit_code == 1, res.output
    result = run_verify(kafka_settings, Topics((audit,), (), ()), Window(), check_digests=False)
    assert result.breaks[0].offset == 3 and "not vouched for" in result.breaks[0].what
    assert not result.unsigned_tails
