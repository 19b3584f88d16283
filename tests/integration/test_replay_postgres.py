"""Re-delivery into a PostgreSQL sink that already holds part of the window.

A real chain worker (``start_chain``), the real PostgreSQL sink loop (connectors/sinks) on a real
server (``postgres`` fixture), and ``shulian replay deliver --to-sink`` run through the CLI:

    batch A1, A2 -> chain -> egress.tax.business_licence -> sink loop -> table (A1 + A2)
    batch B      -> chain -> egress (the sink is stopped: the table lacks B)
    replay deliver --from <first A2 egress record> --to <last B egress record> --to-sink CONFIG

The window overlaps what the sink has (A2) and goes beyond it (B). Afterwards every record is in
the table exactly once by key with the values of its egress view, the replay is audited as
kind "replay" in audit.replay.business_licence, and ``audit verify`` still passes.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from click.testing import CliRunner

from shulian.audit.check import audit_entries
from shulian.audit.redeliver import replay_audit_topic
from shulian.chain.messages import InMessage
from shulian.chain.topology import Topology
from shulian.chain.wire import decode_body, split_wire
from shulian.cli.main import cli
from shulian.connectors.sinks.build import build_sink_loop
from shulian.connectors.sinks.config import PostgresSinkConfig
from shulian.connectors.sinks.loop import run_until
from shulian.io.publish import AgencyPublisher
from shulian.io.reader import read_topics
from shulian.serde import SchemaCache
from shulian.settings import Settings
from tests.fixtures.chain import MASTER_KEY, StartChain

PROVIDER, DATASET, CONSUMER = "amr", "business_licence", "tax"
DSN_ENV = "SHULIAN_TEST_REPLAY_PG_DSN"


def _egress(settings: Settings, topic: str) -> list[InMessage]:
    return sorted((m for ms in read_topics(settings, [topic]).values() for m in ms),
                  key=lambda m: (m.timestamp_ms, m.partition, m.offset))


def _audits(settings: Settings, topic: str) -> list[dict[str, Any]]:
    return [e.record for ms in read_topics(settings, [topic]).values()
            for e in audit_entries(ms)]


def _wait_chain(settings: Settings, topology: Topology, *, egress: int, audits: int,
                log: Path) -> list[InMessage]:
    """Wait until the egress topic holds ``egress`` records and the audit ``audits``."""
    deadline = time.monotonic() + 120
    seen: tuple[int, int] = (0, 0)
    while time.monotonic() < deadline:
        out = _egress(settings, topology.egress(CONSUMER, DATASET))
        seen = (len(out), len(_audits(settings, topology.audit(DATASET))))
        if seen[0] >= egress and seen[1] >= audits:
            assert seen == (egress, audits)
            return out
        time.sleep(0.3)
    raise AssertionError(f"egress/audit records {seen} != {(egress, audits)}; worker log:\n"
                         + log.read_text("utf-8", "replace")[-3000:])


def _table_rows(dsn: str, schema: str, table: str) -> list[dict[str, Any]]:
    with psycopg.connect(dsn) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        exists = cur.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = %s "
                             "AND table_name = %s", (schema, table)).fetchone()
        if exists is None:
            return []
        return list(cur.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall())


def _pos(m: InMessage) -> tuple[int, int]:
    return (m.partition, m.offset)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def test_redelivery_to_a_postgres_sink_holding_part_of_the_window(
    start_chain: StartChain, pg_dsn: str, unique: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = start_chain()
    settings, catalog, topology = env.settings, env.catalog, env.topology
    egress_topic = topology.egress(CONSUMER, DATASET)
    pair = (PROVIDER, DATASET)
    per_record = sum(1 for e in catalog.current_list.entries if (e.provider, e.dataset) == pair)
    publisher = AgencyPublisher(settings, catalog, topology)
    valid = 0

    def batch(n: int, seed: int) -> list[InMessage]:
        nonlocal valid
        valid += publisher.publish(pair, n, rng=random.Random(seed)).valid[pair]
        publisher.flush()
        return _wait_chain(settings, topology, egress=valid, audits=valid * per_record,
                           log=env.worker.log_path)

    a1 = {_pos(m) for m in batch(8, 11)}
    a2 = {_pos(m) for m in batch(8, 12)} - a1

    # the consumer's PostgreSQL sink consumes what the egress topic holds now (A1 + A2)
    monkeypatch.setenv(DSN_ENV, pg_dsn)
    # the operator re-delivering holds the chain's master key and signing key (dev key here)
    monkeypatch.setenv("SHULIAN_HMAC_MASTER_KEY", MASTER_KEY)
    monkeypatch.setenv("SHULIAN_ALLOW_DEV_KEYS", "1")
    db_schema, table = f"r{unique}", f"{CONSUMER}_{DATASET}"
    config_path = tmp_path / "sink.yaml"
    config_path.write_text(yaml.safe_dump({
        "name": f"tax-pg-{unique}", "type": "postgres", "topics": [egress_topic],
        "dsn_env": DSN_ENV, "db_schema": db_schema, "table": "{consumer}_{dataset}",
        "batch_size": 5}), encoding="utf-8")
    config = PostgresSinkConfig.model_validate(yaml.safe_load(config_path.read_text("utf-8")))
    loop = build_sink_loop(config, settings)
    loop.start()
    try:
        assert run_until(loop, lambda: len(_table_rows(pg_dsn, db_schema, table)) == len(
            a1) + len(a2), timeout_s=60), "the sink did not load the first batches"
    finally:
        loop.shutdown()
    before = {r["_record_key"]: r for r in _table_rows(pg_dsn, db_schema, table)}

    everything = batch(8, 13)  # the sink is stopped: these never reached the table
    b = {_pos(m) for m in everything} - a1 - a2
    start_ms = min(m.timestamp_ms for m in everything if _pos(m) in a2)
    end_ms = max(m.timestamp_ms for m in everything if _pos(m) in b)
    window = {_pos(m) for m in everything if start_ms <= m.timestamp_ms <= end_ms}
    # the window overlaps what the sink has (A2) and goes beyond it (B); A1 lies before it
    assert a2 | b == window and a1 and a2 and b

    result = CliRunner().invoke(cli, [
        "replay", "deliver", "--bootstrap", settings.bootstrap_servers,
        "--registry-url", settings.registry_url, "--namespace", env.namespace,
        "--consumer", CONSUMER, "--dataset", DATASET,
        "--from", _iso(start_ms), "--to", _iso(end_ms), "--to-sink", str(config_path)])
    assert result.exit_code == 0, result.output
    assert f"re-delivered {len(window)} record(s) to sink:{config.name}" in result.output

    # every record exactly once by key, with the values of its egress view
    schemas = SchemaCache(settings.registry_url)
    views: dict[str, dict[str, Any]] = {}
    for m in everything:
        wire = split_wire(m.value or b"")
        assert isinstance(wire, tuple)
        view = decode_body(schemas.parsed(wire[0]), wire[1])
        assert isinstance(view, dict)
        views[view["_record_key"]] = {**view, "_kafka_topic": m.topic,
                                      "_kafka_partition": m.partition,
                                      "_kafka_offset": m.offset}
    assert len(views) == len(everything), "record keys repeat: the test needs unique keys"
    rows = _table_rows(pg_dsn, db_schema, table)
    assert sorted(r["_record_key"] for r in rows) == sorted(views)
    for r in rows:
        got = {k: v for k, v in r.items() if k != "_loaded_at"}
        assert got == views[r["_record_key"]]
    # what the sink had outside the window is untouched
    by_pos = {(v["_kafka_partition"], v["_kafka_offset"]): k for k, v in views.items()}
    for pos in a1:
        key = by_pos[pos]
        assert before[key] == next(r for r in rows if r["_record_key"] == key)

    # the replay is audited as a replay, one record per re-delivered record
    replays = _audits(settings, replay_audit_topic(topology, DATASET))
    assert len(replays) == len(window)
    assert {r["kind"] for r in replays} == {"replay"}
    assert {r["replay"]["target"] for r in replays} == {f"sink:{config.name}"}
    assert all(r["egress_topic"] is None and r["consumer"] == CONSUMER for r in replays)
    delivered = {(r["record_key"], r["record_digest"]) for r in
                 _audits(settings, topology.audit(DATASET))
                 if r["decision"] == "deliver" and r["consumer"] == CONSUMER}
    assert {(r["record_key"], r["record_digest"]) for r in replays} <= delivered
    assert len({r["record_key"] for r in replays}) == len(window)

    verify = CliRunner().invoke(cli, ["audit", "verify", "--bootstrap",
                                      settings.bootstrap_servers, "--namespace", env.namespace])
    assert verify.exit_code == 0, verify.output
    assert "OK: every chain intact" in verify.output

