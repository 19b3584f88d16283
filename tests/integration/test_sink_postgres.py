"""PostgreSQL sink end to end: real broker, registry and PostgreSQL server (the helpers the
sink tests share are in tests/fixtures/sinks.py)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from shulian.catalog.keys import load_private_key
from shulian.catalog.load import load_catalog
from shulian.connectors.sinks.backoff import RetryPolicy
from shulian.connectors.sinks.build import build_sink_loop
from shulian.connectors.sinks.config import PostgresSinkConfig
from shulian.embedded.net import free_port, wait_until
from shulian.errors import SinkError
from shulian.io.kafka import producer_config
from tests.fixtures.postgres import PgServer
from tests.fixtures.registry import RegistryProcess
from tests.fixtures.signing import DEV_KEYS, chain_signer, egress_headers
from tests.fixtures.sinks import (
    VIEW_V1,
    make_topic,
    metric,
    produce_views,
    running,
    sink_settings,
    view_record,
)

pytestmark = pytest.mark.integration

VIEW_V2: dict[str, Any] = {
    **VIEW_V1,
    "fields": [*VIEW_V1["fields"][:5],
               {"name": "region", "type": ["null", "string"], "default": None},
               *VIEW_V1["fields"][5:]],
}














# ---------------------------------------------------------------------------- PostgreSQL


def pg_config(unique: str, topic: str, **kw: Any) -> PostgresSinkConfig:
    return PostgresSinkConfig(name=f"pg-{unique}", topics=(topic,), dsn_env=f"PG_DSN_{unique}",
                              retry=RetryPolicy(initial_backoff_s=0.1, max_backoff_s=1.0), **kw)


def rows(dsn: str, table: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            f'SELECT _record_key, _kafka_offset FROM "{table}" ORDER BY _record_key').fetchall()


def count(dsn: str, table: str) -> int:
    try:
        return len(rows(dsn, table))
    except psycopg.Error:
        return -1


def test_upsert_end_to_end_idempotent_and_evolving(
    postgres: PgServer, bootstrap: str, registry: RegistryProcess, unique: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = sink_settings(bootstrap, registry)
    monkeypatch.setenv(f"PG_DSN_{unique}", postgres.dsn)
    topic = make_topic(settings, unique)
    table = f"c{unique}_business_licence"
    produce_views(settings, registry.url, topic, [view_record(i) for i in range(40)])
    with running(pg_config(unique, topic), settings):
        assert wait_until(lambda: count(postgres.dsn, table) == 40, timeout_s=30)
        # a new list version: the view gains `region`; a record is updated, others added
        produce_views(settings, registry.url, topic,
                      [view_record(i, version=2) for i in range(35, 50)], schema=VIEW_V2)
        assert wait_until(lambda: count(postgres.dsn, table) == 50, timeout_s=30)
    with psycopg.connect(postgres.dsn) as conn:
        cols: dict[str, str] = dict(conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = %s", (table,)).fetchall())
        assert cols["issued_on"] == "date"
        assert cols["updated_at"] == "timestamp with time zone"
        assert cols["capital_fen"] == "bigint"
        assert cols["region"] == "text"  # added by ALTER TABLE, existing rows untouched
        r = conn.execute(f'SELECT issued_on, legal_rep, region, _list_version FROM "{table}" '
                         "WHERE _record_key = 'K00036'").fetchone()
        assert r == (dt.date(2024, 2, 6), "rep36", "110101", 2)
        assert conn.execute(f'SELECT region FROM "{table}" WHERE _record_key = %s',
                            ("K00001",)).fetchone() == (None,)
    before = rows(postgres.dsn, table)
    # the same records delivered again (a new group reads the topic from the start): one row each
    again = pg_config(unique, topic, group_id=f"pg-again-{unique}")
    with running(again, settings) as loop:
        assert wait_until(lambda: metric(loop, "shulian_sink_records_out") == 55, timeout_s=30)
    assert rows(postgres.dsn, table) == before
    assert len({k for k, _ in before}) == 50


def test_forged_egress_records_are_dead_lettered_never_written(
    postgres: PgServer, bootstrap: str, registry: RegistryProcess, unique: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An insider with write access to the egress topic, with the real serializer and the
    registered view schema: an unsigned record for an existing key, one signed with an existing
    but non-chain key (the tax bureau's), a genuine record copied under a new key, and one with
    its value edited after signing. None is written; each is dead-lettered as bad_signature."""
    settings = sink_settings(bootstrap, registry)
    monkeypatch.setenv(f"PG_DSN_{unique}", postgres.dsn)
    topic = make_topic(settings, unique, partitions=1)
    table = f"c{unique}_business_licence"
    produce_views(settings, registry.url, topic, [view_record(i) for i in range(5)])
    catalog = load_catalog(settings.catalog_dir, schemas_dir=settings.schemas_dir)
    ser = AvroSerializer(SchemaRegistryClient({"url": registry.url}), json.dumps(VIEW_V1))
    key = b"K00001"
    real = ser(view_record(1), SerializationContext(topic, MessageField.VALUE))
    forged = ser({**view_record(1), "capital_fen": 1},
                 SerializationContext(topic, MessageField.VALUE))
    tax = load_private_key(DEV_KEYS / "tax-dev-1.pem", catalog.keys)
    digest = hashlib.sha256(key).hexdigest()
    genuine = egress_headers(chain_signer(catalog.keys), topic=topic, key=key, value=real,
                             entry="tax-licence", list_version=1, digest=digest)
    p = Producer(producer_config(settings))
    p.produce(topic, key=key, value=forged, headers=[("shulian.entry", b"tax-licence"),
                                                     ("shulian.list.version", b"1")])
    p.produce(topic, key=key, value=forged, headers=egress_headers(
        tax, topic=topic, key=key, value=forged, entry="tax-licence", list_version=1,
        digest=digest))
    p.produce(topic, key=b"K09999", value=real, headers=genuine)  # a genuine record, new key
    p.produce(topic, key=key, value=forged, headers=genuine)  # a genuine signature, new value
    assert p.flush(30) == 0
    with running(pg_config(unique, topic), settings) as loop:
        assert wait_until(lambda: metric(loop, "shulian_sink_records_deadlettered",
                                         reason="bad_signature") == 4, timeout_s=30)
        # a batch's poison records are dead-lettered before its good ones are written
        assert wait_until(lambda: metric(loop, "shulian_sink_records_out") == 5, timeout_s=30)
    with psycopg.connect(postgres.dsn) as conn:
        assert conn.execute(f'SELECT capital_fen FROM "{table}" WHERE _record_key = %s',
                            ("K00001",)).fetchone() == (100_000,)
    assert count(postgres.dsn, table) == 5


def test_database_stopped_mid_stream_no_loss_no_duplicates(
    private_postgres: PgServer, bootstrap: str, registry: RegistryProcess, unique: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = sink_settings(bootstrap, registry)
    dsn = private_postgres.dsn
    monkeypatch.setenv(f"PG_DSN_{unique}", dsn)
    topic = make_topic(settings, unique)
    table = f"c{unique}_business_licence"
    produce_views(settings, registry.url, topic, [view_record(i) for i in range(30)])
    with running(pg_config(unique, topic, batch_size=10), settings) as loop:
        assert wait_until(lambda: count(dsn, table) == 30, timeout_s=30)
        private_postgres.stop()
        try:
            produce_views(settings, registry.url, topic, [view_record(i) for i in range(30, 80)])
            assert wait_until(lambda: metric(loop, "shulian_sink_errors", kind="retryable") >= 2,
                              timeout_s=30)
            committed_while_down = dict(loop.committed)
        finally:
            private_postgres.start()
        assert wait_until(lambda: count(dsn, table) == 80, timeout_s=60)
    keys = [k for k, _ in rows(dsn, table)]
    assert keys == [f"K{i:05d}" for i in range(80)]
    # while the database was down no offset moved past an unwritten record
    assert sum(committed_while_down.values()) <= 30


def test_unreachable_database_is_a_clear_error_at_start(
    bootstrap: str, registry: RegistryProcess, unique: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = sink_settings(bootstrap, registry)
    monkeypatch.setenv(f"PG_DSN_{unique}", f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    cfg = pg_config(unique, f"egress.c{unique}.none", connect_timeout_s=2)
    loop = build_sink_loop(cfg, settings)
    with pytest.raises(SinkError, match="PostgreSQL is unreachable"):
        loop.sink.setup()
    loop.consumer.close()
