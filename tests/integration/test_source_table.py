"""PostgreSQL table source on the real broker, registry and PostgreSQL: an updated_at cursor
with ties broken by the primary key, restarted between batches without loss or duplicates."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from shulian.connectors.metrics import ConnectorMetrics
from shulian.connectors.sources.config import CursorKind, TableSourceConfig
from shulian.connectors.sources.table import TableSource
from shulian.errors import InfrastructureError
from shulian.io.kafka import TopicSpec, admin_client, ensure_topics
from shulian.settings import load_settings
from tests.fixtures.registry import RegistryProcess
from tests.fixtures.sources import household, read_topic, setup_dataset

pytestmark = pytest.mark.integration

T0 = dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.UTC)


def insert(dsn: str, table: str, ids: range, *, at: dt.datetime) -> None:
    with psycopg.connect(dsn) as conn:
        for i in ids:
            h = household(i)
            conn.execute(
                f"INSERT INTO {table} (id, lsh, sfzh, xm, xb, csrq, bdlx, bdrq, qrdq, djsj, "
                "updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (i, h["LSH"], h["SFZH"], h["XM"], h["XB"], h["CSRQ"], h["BDLX"], h["BDRQ"],
                 h["QRDQ"], dt.datetime(2024, 5, 1, 8, 0), at))


def test_timestamp_cursor_restart_without_loss_or_duplicates(
    bootstrap: str, registry: RegistryProcess, pg_dsn: str, unique: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agency = f"t{unique}"
    settings = load_settings(bootstrap_servers=bootstrap, registry_url=registry.url)
    setup_dataset(settings, agency)
    ensure_topics(admin_client(settings), [TopicSpec(f"deadletter.{agency}.household_change", 1)])
    table = f"hj_{unique}"
    with psycopg.connect(pg_dsn) as conn:
        conn.execute(f"""CREATE TABLE {table} (
            id bigint PRIMARY KEY, lsh text NOT NULL, sfzh text, xm text, xb text, csrq text,
            bdlx text, bdrq text, qrdq text, djsj timestamp, updated_at timestamptz NOT NULL)""")
    # 25 rows, many sharing one updated_at: batches of 7 end in the middle of a tie
    insert(pg_dsn, table, range(0, 10), at=T0)
    insert(pg_dsn, table, range(10, 25), at=T0 + dt.timedelta(seconds=1))
    monkeypatch.setenv(f"PG_{unique}", pg_dsn)
    cfg = TableSourceConfig(name=f"tbl-{unique}", agency=agency, dataset="household_change",
                            dsn_env=f"PG_{unique}", table=table, cursor_column="updated_at",
                            cursor_kind=CursorKind.TIMESTAMP, primary_key="id", batch_size=7,
                            poll_interval_s=0.1, state_file=tmp_path / "state.json",
                            key_fields=("LSH",))
    stop = threading.Event()

    def fresh() -> TableSource:
        src = TableSource(cfg, settings=settings,
                          metrics=ConnectorMetrics.create(CollectorRegistry()))
        src.setup()
        return src

    first = fresh()
    assert first.step(stop) == 7
    assert first.step(stop) == 7
    first.close()  # "crash" between batches: only the state file survives

    second = fresh()
    assert [second.step(stop) for _ in range(3)] == [7, 4, 0]
    # new rows, one tied with the last timestamp read, one updated row (read again)
    insert(pg_dsn, table, range(25, 27), at=T0 + dt.timedelta(seconds=1))
    with psycopg.connect(pg_dsn) as conn:
        conn.execute(f"UPDATE {table} SET updated_at = %s WHERE id = 3",
                     (T0 + dt.timedelta(seconds=2),))
    assert second.step(stop) == 3
    second.close()

    got = read_topic(settings, f"raw.{agency}.household_change", 28)
    lsh = sorted(v["LSH"] for _, v in got)
    assert lsh == sorted([f"L{i:06d}" for i in range(27)] + ["L000003"])
    assert got[0][1]["DJSJ"] == "2024-05-01T08:00:00"  # timestamp column -> string field


def test_unreachable_database_is_a_clear_error_at_setup(
    bootstrap: str, registry: RegistryProcess, unique: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agency = f"u{unique}"
    settings = load_settings(bootstrap_servers=bootstrap, registry_url=registry.url)
    setup_dataset(settings, agency)
    ensure_topics(admin_client(settings), [TopicSpec(f"deadletter.{agency}.household_change", 1)])
    monkeypatch.setenv(f"PG_{unique}", "postgresql://nobody@127.0.0.1:1/none")
    cfg = TableSourceConfig(name=f"u-{unique}", agency=agency, dataset="household_change",
                            dsn_env=f"PG_{unique}", table="t", cursor_column="id",
                            state_file=tmp_path / "s.json", connect_timeout_s=2)
    src = TableSource(cfg, settings=settings, metrics=ConnectorMetrics.create(CollectorRegistry()))
    with pytest.raises(InfrastructureError, match=f"database unreachable \\(from PG_{unique}\\)"):
        src.setup()
