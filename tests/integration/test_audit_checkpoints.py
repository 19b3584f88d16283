"""Checkpoints outside Kafka, on the real broker and a real PostgreSQL: the worker's role may
only INSERT; an audit topic deleted and re-created truncated (back to an earlier seal, so it
verifies on its own) or replaced by another chain is caught against the checkpoint."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Producer
from pydantic import SecretStr

from shulian.audit.verifying import Topics, catalogue_topics, run_verify
from shulian.audit.window import Window
from shulian.catalog.load import load_catalog
from shulian.io.checkpoints import FileStore, PostgresStore, create_table
from shulian.io.kafka import TopicSpec, admin_client, ensure_topics, producer_config
from shulian.io.publish import AgencyPublisher
from shulian.logic.audit import AuditChain
from shulian.logic.auditseal import build_seal
from shulian.logic.checkpoint import build_checkpoint
from shulian.settings import Settings
from tests.fixtures.chain import StartChain
from tests.fixtures.signing import chain_signer

NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)


def _chain(settings: Settings, topic: str, batches: int, tag: str) -> tuple[list[bytes],
                                                                            AuditChain]:
    signer = chain_signer(load_catalog(settings.catalog_dir,
                                       schemas_dir=settings.schemas_dir).keys)
    chain = AuditChain()
    values: list[bytes] = []
    for b in range(batches):
        for i in range(3):
            values.append(chain.seal({"v": 1, "kind": "decision", "ts": "2026-11-26T02:00:00Z",
                                      "decision": "withhold", "record_key": f"{tag}{b}.{i}"}))
        values.append(build_seal(chain, signer, topic=topic, partition=0, ts=NOW, worker="w"))
    return values, chain


def _put(settings: Settings, topic: str, values: list[bytes], *, fresh: bool) -> None:
    admin = admin_client(settings)
    if fresh:  # the insider deletes the topic and creates it again
        for f in admin.delete_topics([topic]).values():
            f.result(30)
        deadline = time.monotonic() + 30
        while topic in admin.list_topics(timeout=10).topics and time.monotonic() < deadline:
            time.sleep(0.2)
    ensure_topics(admin, [TopicSpec(topic, 1)])
    producer = Producer(producer_config(settings))
    for v in values:
        producer.produce(topic, v, b"", partition=0)
    assert producer.flush(30) == 0


def test_checkpoints_catch_truncation_and_replacement(kafka_settings: Settings, pg_dsn: str,
                                                      unique: str) -> None:
    schema, role = f"cp_{unique}", f"cp_writer_{unique}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    owner_dsn = f"{pg_dsn}?options=-csearch_path%3D{schema}"
    create_table(owner_dsn)
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        conn.execute(f"GRANT INSERT ON shulian_audit_checkpoints TO {role}")
        conn.execute(f"GRANT USAGE ON SEQUENCE shulian_audit_checkpoints_id_seq TO {role}")
    writer_dsn = owner_dsn.replace("postgresql://postgres@", f"postgresql://{role}@")

    topic = f"audit.d.{unique}"
    values, chain = _chain(kafka_settings, topic, 3, "k")
    _put(kafka_settings, topic, values, fresh=False)
    signer = chain_signer(load_catalog(kafka_settings.catalog_dir,
                                       schemas_dir=kafka_settings.schemas_dir).keys)
    PostgresStore(writer_dsn).append(build_checkpoint(
        [(topic, 0, chain.next_seq - 1, chain.head)], signer, ts=NOW, worker="w"))
    # the worker's role may not rewrite or delete what it wrote, nor read it
    with psycopg.connect(writer_dsn, autocommit=True) as conn:
        for sql in ("DELETE FROM shulian_audit_checkpoints",
                    "UPDATE shulian_audit_checkpoints SET body = '{}'::jsonb",
                    "SELECT body FROM shulian_audit_checkpoints"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)

    settings = kafka_settings.model_copy(update={"audit_checkpoint_store":
                                                 SecretStr(owner_dsn)})
    ok = run_verify(settings, Topics((topic,), (), ()), Window(), check_digests=False)
    assert ok.ok and ok.checkpoints == 1 and not ok.unsigned_tails, ok.breaks

    _put(kafka_settings, topic, values[:8], fresh=True)  # back to the second batch's seal
    cut = run_verify(settings, Topics((topic,), (), ()), Window(), check_digests=False)
    assert not cut.unsigned_tails  # on its own it looks complete and signed
    assert [(b.offset, b.what.split(":")[0]) for b in cut.breaks] == [(7, "truncated")]

    other, _ = _chain(kafka_settings, topic, 3, "x")  # even a chain sealed with the key
    _put(kafka_settings, topic, other, fresh=True)
    replaced = run_verify(settings, Topics((topic,), (), ()), Window(), check_digests=False)
    assert [b.what.split(":")[0] for b in replaced.breaks] == ["replaced"]


def test_a_running_worker_checkpoints_outside_kafka_and_on_the_audit_topic(
        start_chain: StartChain, tmp_path: Path) -> None:
    path = tmp_path / "checkpoints.jsonl"
    env = start_chain(extra_env={"SHULIAN_AUDIT_CHECKPOINT_STORE": str(path),
                                 "SHULIAN_AUDIT_CHECKPOINT_RECORDS": "5",
                                 "SHULIAN_AUDIT_CHECKPOINT_SECONDS": "1"})
    store = FileStore(path)
    publisher = AgencyPublisher(env.settings, env.catalog, env.topology)
    rng = random.Random(3)
    for pair in publisher.pairs:
        publisher.publish(pair, 10, rng=rng)
    publisher.flush()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not list(store.read()):
        assert env.worker.running, env.worker.log_text()[-2000:]
        time.sleep(0.5)
    assert list(store.read()), env.worker.log_text()[-2000:]
    topics = catalogue_topics(env.settings, env.namespace)
    settings = env.settings.model_copy(update={"audit_checkpoint_store": SecretStr(str(path))})
    # the worker writes a batch's egress before its audit records: a verify while a batch is in
    # flight sees egress without its audit yet, so wait for the chain to settle (a real break
    # stays and fails below)
    settle = time.monotonic() + 60
    outside = run_verify(settings, topics, Window(), check_digests=False)
    while not outside.ok and time.monotonic() < settle:
        time.sleep(1)
        outside = run_verify(settings, topics, Window(), check_digests=False)
    assert outside.checkpoint_source == "store" and outside.checkpoints
    assert outside.ok and not outside.unsigned_tails, outside.breaks
    inside = run_verify(env.settings, topics, Window(), check_digests=False)
    assert inside.checkpoint_source == "audit topic" and inside.checkpoints
    assert inside.ok, inside.breaks
