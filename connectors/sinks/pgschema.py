"""Consumer-view Avro schema -> PostgreSQL table: columns, DDL and the upsert statement. Pure.

Column types: ``string``/``enum`` -> text, ``long`` -> bigint, ``int`` -> integer,
``int`` + ``date`` -> date, ``long`` + ``timestamp-millis``/``-micros`` -> timestamptz,
``boolean`` -> boolean, ``float`` -> real, ``double`` -> double precision, ``bytes``/``fixed`` ->
bytea, records/arrays/maps -> jsonb. A ``["null", X]`` union is X with NULL allowed; other
fields are NOT NULL when the table is created. Columns added later (a new list version gains a
field) are always nullable, since existing rows have no value for them; a column a newer view no
longer carries loses its NOT NULL (it is never dropped).

Every table has ``_record_key`` as primary key and the load columns ``_kafka_topic``,
``_kafka_partition``, ``_kafka_offset`` and ``_loaded_at``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "LOAD_COLUMNS",
    "RECORD_KEY",
    "Column",
    "add_column_sql",
    "avro_sql_type",
    "create_table_sql",
    "delete_sql",
    "drop_not_null_sql",
    "plan_evolution",
    "quote_ident",
    "table_for_topic",
    "upsert_sql",
    "view_columns",
]

RECORD_KEY = "_record_key"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    sql_type: str
    nullable: bool


LOAD_COLUMNS: tuple[Column, ...] = (
    Column("_kafka_topic", "text", False),
    Column("_kafka_partition", "integer", False),
    Column("_kafka_offset", "bigint", False),
    Column("_loaded_at", "timestamptz", False),
)

_PRIMITIVE = {
    "string": "text",
    "long": "bigint",
    "int": "integer",
    "boolean": "boolean",
    "float": "real",
    "double": "double precision",
    "bytes": "bytea",
}
_LOGICAL = {
    ("int", "date"): "date",
    ("long", "timestamp-millis"): "timestamptz",
    ("long", "timestamp-micros"): "timestamptz",
    ("int", "time-millis"): "time",
    ("long", "time-micros"): "time",
    ("string", "uuid"): "uuid",
}


def quote_ident(name: str) -> str:
    """A PostgreSQL quoted identifier."""
    return '"' + name.replace('"', '""') + '"'


def _qualified(table: str, schema: str | None) -> str:
    return f"{quote_ident(schema)}.{quote_ident(table)}" if schema else quote_ident(table)


def avro_sql_type(avro: Any) -> tuple[str, bool]:
    """``(sql type, nullable)`` for one Avro field type (raw JSON or fastavro-parsed)."""
    if isinstance(avro, list):
        branches = [b for b in avro if b != "null"]
        nullable = len(branches) < len(avro)
        if len(branches) == 1:
            sql, inner_nullable = avro_sql_type(branches[0])
            return sql, nullable or inner_nullable
        return "jsonb", nullable
    if isinstance(avro, str):
        return _PRIMITIVE.get(avro, "jsonb" if avro != "null" else "text"), avro == "null"
    if isinstance(avro, Mapping):
        base = avro.get("type")
        logical = avro.get("logicalType")
        if isinstance(base, str) and isinstance(logical, str) and (base, logical) in _LOGICAL:
            return _LOGICAL[(base, logical)], False
        if base in ("enum",):
            return "text", False
        if base == "fixed":
            return "bytea", False
        if base in ("record", "array", "map"):
            return "jsonb", False
        return avro_sql_type(base)
    return "jsonb", True


def view_columns(schema: Mapping[str, Any]) -> list[Column]:
    """The view's own columns, in schema order (``_record_key`` is forced NOT NULL)."""
    fields = schema.get("fields")
    if schema.get("type") != "record" or not isinstance(fields, list):
        raise ValueError("a consumer view schema must be an Avro record")
    cols: list[Column] = []
    for f in fields:
        sql, nullable = avro_sql_type(f["type"])
        cols.append(Column(f["name"], sql, nullable and f["name"] != RECORD_KEY))
    if not any(c.name == RECORD_KEY for c in cols):
        cols.append(Column(RECORD_KEY, "text", False))
    return cols


def create_table_sql(*, table: str, schema: str | None, columns: Sequence[Column]) -> str:
    defs = []
    for c in [*columns, *LOAD_COLUMNS]:
        d = f"{quote_ident(c.name)} {c.sql_type}"
        if not c.nullable:
            d += " NOT NULL"
        if c.name == "_loaded_at":
            d += " DEFAULT now()"
        defs.append(d)
    defs.append(f"PRIMARY KEY ({quote_ident(RECORD_KEY)})")
    return f"CREATE TABLE IF NOT EXISTS {_qualified(table, schema)} ({', '.join(defs)})"


def add_column_sql(*, table: str, schema: str | None, column: Column) -> str:
    return (f"ALTER TABLE {_qualified(table, schema)} ADD COLUMN IF NOT EXISTS "
            f"{quote_ident(column.name)} {column.sql_type}")


def drop_not_null_sql(*, table: str, schema: str | None, column: str) -> str:
    return (f"ALTER TABLE {_qualified(table, schema)} ALTER COLUMN {quote_ident(column)} "
            "DROP NOT NULL")


def plan_evolution(
    *, existing: Mapping[str, bool], wanted: Sequence[Column]
) -> tuple[list[Column], list[str]]:
    """Columns to add and columns whose NOT NULL to drop, given ``existing`` {name: nullable}.

    Columns are never dropped or retyped: a column the view no longer carries stays (nullable).
    """
    load = {c.name for c in LOAD_COLUMNS}
    wanted_names = {c.name for c in wanted}
    to_add = [Column(c.name, c.sql_type, True) for c in wanted if c.name not in existing]
    to_relax = sorted(
        name for name, nullable in existing.items()
        if not nullable and name != RECORD_KEY and name not in load
        and (name not in wanted_names or any(c.name == name and c.nullable for c in wanted))
    )
    return to_add, to_relax


def upsert_sql(*, table: str, schema: str | None, columns: Sequence[str]) -> str:
    """``INSERT ... ON CONFLICT (_record_key) DO UPDATE``: replaying a record changes nothing."""
    names = [*columns]
    cols = ", ".join(quote_ident(n) for n in names)
    params = ", ".join(["%s"] * len(names))
    updates = ", ".join(
        f"{quote_ident(n)} = EXCLUDED.{quote_ident(n)}" for n in names if n != RECORD_KEY
    )
    return (f"INSERT INTO {_qualified(table, schema)} ({cols}) VALUES ({params}) "
            f"ON CONFLICT ({quote_ident(RECORD_KEY)}) DO UPDATE SET {updates}")


def delete_sql(*, table: str, schema: str | None) -> str:
    return f"DELETE FROM {_qualified(table, schema)} WHERE {quote_ident(RECORD_KEY)} = %s"


_NON_IDENT = re.compile(r"[^a-z0-9_]+")


def table_for_topic(topic: str, template: str) -> str:
    """Table name for ``topic`` from ``template`` ({consumer}, {dataset}, {topic} placeholders).

    ``[ns.]egress.<consumer>.<dataset>`` fills consumer and dataset; other topics fill only
    ``{topic}`` (the others become empty). Result is lower-case ``[a-z0-9_]``, at most 63 chars.
    """
    parts = topic.split(".")
    consumer = dataset = ""
    if len(parts) >= 3 and parts[-3] == "egress":
        consumer, dataset = parts[-2], parts[-1]
    name = template.format(topic=topic, consumer=consumer, dataset=dataset)
    name = _NON_IDENT.sub("_", name.lower()).strip("_")
    if not name:
        raise ValueError(f"table template {template!r} gives an empty name for topic {topic!r}")
    return name[:63]
