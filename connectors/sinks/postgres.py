"""PostgreSQL sink: one upsert transaction per batch, tables created and evolved from the view.

A lost connection (server down, restarted) is a :class:`RetryableSinkError`: the transaction
rolled back, the loop retries with backoff and reconnects, offsets stay put; since the write is
an upsert on ``_record_key``, a batch written twice leaves one row per record. Data errors
(a value the column refuses) are permanent: the batch is dead-lettered.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from shulian.connectors.sinks.backoff import RetryPolicy
from shulian.connectors.sinks.config import PostgresSinkConfig
from shulian.connectors.sinks.failures import PermanentSinkError, RetryableSinkError
from shulian.connectors.sinks.pgschema import (
    LOAD_COLUMNS,
    Column,
    add_column_sql,
    create_table_sql,
    delete_sql,
    drop_not_null_sql,
    plan_evolution,
    table_for_topic,
    upsert_sql,
    view_columns,
)
from shulian.connectors.sinks.records import SinkRecord, load_columns, record_key
from shulian.errors import SinkError
from shulian.log import get_logger

__all__ = ["PostgresSink"]

log = get_logger("shulian.sinks.postgres")

_LOAD = [c.name for c in LOAD_COLUMNS if c.name != "_loaded_at"]


class PostgresSink:
    def __init__(self, config: PostgresSinkConfig, *, dsn: str | None = None) -> None:
        self.config = config
        self.name = config.name
        self.retry: RetryPolicy = config.retry
        self._dsn = dsn if dsn is not None else config.dsn().get_secret_value()
        self._conn: psycopg.Connection[Any] | None = None
        # (table, schema id) already reconciled -> the view's columns
        self._ready: dict[tuple[str, int], list[Column]] = {}

    # ------------------------------------------------------------------ connection
    def _connect(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            self._conn = psycopg.connect(self._dsn, connect_timeout=int(
                max(1, self.config.connect_timeout_s)), autocommit=False)
        except psycopg.Error as exc:
            raise RetryableSinkError(f"cannot connect to PostgreSQL: {_first_line(exc)}") from exc
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None
        self._ready.clear()

    def setup(self) -> None:
        """Connect once: an unreachable or refusing server is a clear error at start."""
        try:
            conn = self._connect()
            with conn.transaction():
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.config.db_schema}"')
        except (RetryableSinkError, psycopg.Error) as exc:
            self._drop()
            raise SinkError(f"sink {self.name}: PostgreSQL is unreachable or refuses: "
                            f"{_first_line(exc)}") from exc
        log.info("sink.postgres.ready", connector=self.name, schema=self.config.db_schema)

    # ------------------------------------------------------------------ writing
    def write_batch(self, records: Sequence[SinkRecord]) -> None:
        conn = self._connect()
        try:
            with conn.transaction():
                for run in _runs(records):
                    self._write_run(conn, run)
        except psycopg.OperationalError as exc:
            self._drop()
            raise RetryableSinkError(f"PostgreSQL write failed: {_first_line(exc)}") from exc
        except (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError) as exc:
            self._ready.clear()
            raise PermanentSinkError(f"PostgreSQL refused the batch: {_first_line(exc)}") from exc
        except psycopg.Error as exc:
            self._drop()
            raise RetryableSinkError(f"PostgreSQL error: {_first_line(exc)}") from exc

    def _write_run(self, conn: psycopg.Connection[Any], run: list[SinkRecord]) -> None:
        first = run[0]
        table = table_for_topic(first.topic, self.config.table)
        if first.is_tombstone or first.value is None:
            # a tombstone deletes; without a schema there is no table to create
            keys = [(k,) for k in (record_key(r) for r in run) if k is not None]
            if keys and self._table_exists(conn, table):
                with conn.cursor() as cur:
                    cur.executemany(delete_sql(table=table, schema=self.config.db_schema), keys)
            return
        if first.schema is None or first.schema_id is None:
            raise PermanentSinkError("record has no writer schema")
        cols = self._ensure_table(conn, table, first.schema_id, first.schema)
        names = [c.name for c in cols] + _LOAD
        jsonb = {c.name for c in cols if c.sql_type == "jsonb"}
        rows = []
        for r in run:
            value = dict(r.value or {})
            value["_record_key"] = record_key(r)
            value.update(load_columns(r))
            rows.append(tuple(_adapt(value.get(n), n in jsonb) for n in names))
        sql = upsert_sql(table=table, schema=self.config.db_schema, columns=names)
        with conn.cursor() as cur:
            cur.executemany(sql, rows)

    def _table_exists(self, conn: psycopg.Connection[Any], table: str) -> bool:
        row = conn.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
            (self.config.db_schema, table)).fetchone()
        return row is not None

    def _ensure_table(
        self, conn: psycopg.Connection[Any], table: str, schema_id: int, schema: dict[str, Any]
    ) -> list[Column]:
        ready = self._ready.get((table, schema_id))
        if ready is not None:
            return ready
        wanted = view_columns(schema)
        existing = {
            name: nullable == "YES"
            for name, nullable in conn.execute(
                "SELECT column_name, is_nullable FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = %s",
                (self.config.db_schema, table)).fetchall()
        }
        db_schema = self.config.db_schema
        if not existing:
            conn.execute(create_table_sql(table=table, schema=db_schema, columns=wanted))
            log.info("sink.postgres.table_created", connector=self.name, table=table,
                     columns=len(wanted))
        else:
            to_add, to_relax = plan_evolution(existing=existing, wanted=wanted)
            for col in to_add:
                conn.execute(add_column_sql(table=table, schema=db_schema, column=col))
            for name in to_relax:
                conn.execute(drop_not_null_sql(table=table, schema=db_schema, column=name))
            if to_add or to_relax:
                log.info("sink.postgres.table_evolved", connector=self.name, table=table,
                         added=[c.name for c in to_add], relaxed=to_relax, schema_id=schema_id)
        self._ready[(table, schema_id)] = wanted
        return wanted

    def flush(self) -> None:
        """Nothing buffered: every batch is committed inside ``write_batch``."""

    def close(self) -> None:
        self._drop()


def _runs(records: Sequence[SinkRecord]) -> list[list[SinkRecord]]:
    """Consecutive records with the same (topic, schema id, tombstone-ness), order kept."""
    runs: list[list[SinkRecord]] = []
    for r in records:
        sig = (r.topic, r.schema_id, r.value is None)
        if runs and (runs[-1][0].topic, runs[-1][0].schema_id, runs[-1][0].value is None) == sig:
            runs[-1].append(r)
        else:
            runs.append([r])
    return runs


def _adapt(value: Any, jsonb: bool) -> Any:
    if jsonb and value is not None:
        return Jsonb(json.loads(json.dumps(value, default=str)))
    return value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
