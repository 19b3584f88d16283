"""Database table source: polls a PostgreSQL table incrementally by a cursor column.

``cursor_kind: id``: rows with ``cursor_column > last`` in cursor order (a strictly increasing
id). ``cursor_kind: timestamp`` (``updated_at``): rows with ``(cursor_column, primary_key) >
(last_ts, last_pk)`` in that order, so rows sharing a timestamp are neither skipped nor re-read.
A row updated later gets a newer timestamp and is read again (that is the point).

The position is kept in ``state_file`` (JSON, written atomically after every batch the broker
acknowledged), not in the source database: the connector needs only SELECT rights there.
A restart continues after the last acknowledged row; a crash inside a batch re-sends at most
that batch (at-least-once). Rows whose transaction commits after later timestamps were read can
be missed by any timestamp poll; ``safety_lag_s`` reads only rows older than ``now() - lag``.

Fields map to columns by ``columns`` (raw field -> column), else by the same name in any case.
Rows that do not fit the raw schema go to ``deadletter.<agency>.<dataset>`` as JSON with reason
headers and ``shulian.source.table/.cursor``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import threading
from typing import Any

import psycopg
from psycopg import sql

from shulian.connectors.base import ThreadedConnector
from shulian.connectors.coerce import RawSchema, encode_checked, record_key
from shulian.connectors.config import env_secret
from shulian.connectors.metrics import ConnectorMetrics
from shulian.connectors.sources.config import CursorKind, TableSourceConfig
from shulian.connectors.sources.plumbing import (
    Outgoing,
    RawProducer,
    RawSchemas,
    SendTo,
    deadletter_topic,
    raw_topic,
    read_state,
    send_batch,
    write_state,
)
from shulian.errors import InfrastructureError
from shulian.log import get_logger
from shulian.logic.result import Rejected
from shulian.settings import Settings

__all__ = ["TableSource", "dump_value", "load_value"]

log = get_logger(__name__)


def dump_value(v: Any) -> dict[str, Any]:
    """A cursor value as JSON that :func:`load_value` turns back into the same Python value."""
    if isinstance(v, bool) or v is None:
        return {"t": "json", "v": v}
    if isinstance(v, int):
        return {"t": "int", "v": v}
    if isinstance(v, dt.datetime):
        return {"t": "datetime", "v": v.isoformat()}
    if isinstance(v, dt.date):
        return {"t": "date", "v": v.isoformat()}
    if isinstance(v, decimal.Decimal):
        return {"t": "decimal", "v": str(v)}
    if isinstance(v, str):
        return {"t": "str", "v": v}
    raise TypeError(f"cursor values of type {type(v).__name__} are not supported")


def load_value(d: dict[str, Any]) -> Any:
    t, v = d["t"], d["v"]
    if t == "datetime":
        return dt.datetime.fromisoformat(v)
    if t == "date":
        return dt.date.fromisoformat(v)
    if t == "decimal":
        return decimal.Decimal(v)
    return v


_UNREAD = object()


class TableSource(ThreadedConnector):
    def __init__(self, config: TableSourceConfig, *, settings: Settings,
                 metrics: ConnectorMetrics) -> None:
        super().__init__(config.name)
        self.config = config
        self.metrics = metrics.source
        self.dsn = env_secret(config.dsn_env, field="dsn_env")
        self.producer = RawProducer(settings, timeout_s=config.produce_timeout_s)
        self.schemas = RawSchemas(settings.registry_url, auth=settings.registry_auth_conf())
        self.topic = raw_topic(config.agency, config.dataset)
        self.dlq = deadletter_topic(config.agency, config.dataset)
        self.send_to = SendTo(self.name, self.topic, self.dlq, self.producer, self.metrics)
        self._fields: dict[str, str] = {}  # raw field -> column
        self._conn: psycopg.Connection[Any] | None = None
        self._after: Any = _UNREAD  # (cursor, pk) of the last acknowledged row

    # ------------------------------------------------------------------ lifecycle
    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self.dsn.get_secret_value(), autocommit=True,
                                   connect_timeout=max(1, int(self.config.connect_timeout_s)))
        except psycopg.Error as exc:
            raise InfrastructureError(f"table source {self.name}: database unreachable "
                                      f"(from {self.config.dsn_env}): {_first_line(exc)}"
                                      ) from exc

    def _table(self) -> sql.Composable:
        return sql.Identifier(*self.config.table.split("."))

    def setup(self) -> None:
        schema = self.schemas.get(self.config.agency, self.config.dataset)
        self.producer.check([self.topic, self.dlq])
        with self._connect() as conn:
            try:
                cur = conn.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(self._table()))
            except psycopg.Error as exc:
                raise InfrastructureError(f"table source {self.name}: cannot read "
                                          f"{self.config.table}: {_first_line(exc)}") from exc
            columns = [d.name for d in cur.description or []]
        self._fields = self._map_fields(schema, columns)
        for needed in (self.config.cursor_column, self.config.primary_key):
            if needed is not None and needed not in columns:
                raise InfrastructureError(f"table source {self.name}: column {needed} not in "
                                          f"{self.config.table}")
        log.info("table.ready", connector=self.name, table=self.config.table, topic=self.topic)

    def _map_fields(self, schema: RawSchema, columns: list[str]) -> dict[str, str]:
        by_lower = {c.lower(): c for c in columns}
        out: dict[str, str] = {}
        for f in schema.fields:
            col = self.config.columns.get(f.name) or by_lower.get(f.name.lower())
            if col is None or col not in columns:
                if f.nullable or f.has_default:
                    continue
                raise InfrastructureError(f"table source {self.name}: no column for required "
                                          f"field {f.name} in {self.config.table}")
            out[f.name] = col
        return out

    def close(self) -> None:
        self._disconnect()
        self.producer.flush()

    # ------------------------------------------------------------------ polling
    def _state(self) -> tuple[Any, Any] | None:
        data = read_state(self.config.state_file)
        if data is None:
            return None
        pk = load_value(data["pk"]) if data.get("pk") is not None else None
        return load_value(data["cursor"]), pk

    def _query(self, after: tuple[Any, Any] | None) -> tuple[sql.Composed, list[Any]]:
        c = self.config
        cur_col = sql.Identifier(c.cursor_column)
        select = [sql.Identifier(col) for col in self._fields.values()]
        select += [cur_col]
        order: list[sql.Composable] = [cur_col]
        if c.cursor_kind is CursorKind.TIMESTAMP:
            assert c.primary_key is not None
            pk = sql.Identifier(c.primary_key)
            select.append(pk)
            order.append(pk)
        where: list[sql.Composable] = []
        params: list[Any] = []
        if after is not None:
            if c.cursor_kind is CursorKind.TIMESTAMP:
                where.append(sql.SQL("({}, {}) > (%s, %s)").format(cur_col, order[1]))
                params += [after[0], after[1]]
            else:
                where.append(sql.SQL("{} > %s").format(cur_col))
                params.append(after[0])
        if c.cursor_kind is CursorKind.TIMESTAMP and c.safety_lag_s > 0:
            where.append(sql.SQL("{} < now() - make_interval(secs => %s)").format(cur_col))
            params.append(c.safety_lag_s)
        query = sql.SQL("SELECT {} FROM {}{} ORDER BY {} LIMIT %s").format(
            sql.SQL(", ").join(select), self._table(),
            sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""),
            sql.SQL(", ").join(order))
        params.append(c.batch_size)
        return query, params

    def run(self, stop: threading.Event) -> None:
        backoff = 0.2
        try:
            while not stop.is_set():
                try:
                    n = self.step(stop)
                except (psycopg.Error, InfrastructureError) as exc:
                    self.metrics.errors.labels(self.name, "database").inc()
                    log.warning("table.poll_failed", connector=self.name,
                                error=_first_line(exc), retry_in_s=backoff)
                    self._disconnect()
                    stop.wait(backoff)
                    backoff = min(backoff * 2, 10.0)
                    continue
                backoff = 0.2
                if n < self.config.batch_size:
                    stop.wait(self.config.poll_interval_s)
        finally:
            self._disconnect()

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def step(self, stop: threading.Event) -> int:
        """Read one batch after the saved position, produce it, wait for the acks, save the
        new position; the number of rows read."""
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        if self._after is _UNREAD:
            self._after = self._state()
        query, params = self._query(self._after)
        rows = self._conn.execute(query, params).fetchall()
        if rows:
            self._after = self._send(rows, stop)
        return len(rows)

    def _send(self, rows: list[tuple[Any, ...]], stop: threading.Event) -> tuple[Any, Any]:
        """Produce one batch, wait for the acks (retrying while the broker fails), persist the
        position; returns it."""
        schema = self.schemas.get(self.config.agency, self.config.dataset)
        names = list(self._fields)
        n = len(names)
        ts = self.config.cursor_kind is CursorKind.TIMESTAMP
        last = rows[-1]
        position = (last[n], last[n + 1] if ts else None)
        batch = [self._outgoing(schema, dict(zip(names, row[:n], strict=True)), row[n])
                 for row in rows]
        sent = send_batch(self.send_to, batch, stop,
                          what=f"table source {self.name} stopped with a batch")
        write_state(self.config.state_file, {
            "cursor": dump_value(position[0]),
            "pk": None if position[1] is None else dump_value(position[1]),
            "updated": dt.datetime.now(dt.UTC).isoformat()})
        log.info("table.batch", connector=self.name, rows=len(rows), produced=sent.produced)
        return position

    def _outgoing(self, schema: RawSchema, record: dict[str, Any], cursor: Any) -> Outgoing:
        result = encode_checked(schema, record)
        if isinstance(result, Rejected):
            raw = json.dumps(record, default=str, ensure_ascii=False).encode()
            return Outgoing(result, raw=raw, source={"table": self.config.table,
                                                     "cursor": str(cursor)})
        return Outgoing(result, key=record_key(record, self.config.key_fields))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
