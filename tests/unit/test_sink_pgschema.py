"""Consumer-view schema -> PostgreSQL DDL and upsert SQL."""

from __future__ import annotations

from typing import Any

import pytest

from shulian.connectors.sinks.pgschema import (
    Column,
    add_column_sql,
    avro_sql_type,
    create_table_sql,
    plan_evolution,
    quote_ident,
    table_for_topic,
    upsert_sql,
    view_columns,
)

VIEW: dict[str, Any] = {
    "type": "record", "name": "BusinessLicenceView_tax", "fields": [
        {"name": "credit_code", "type": "string"},
        {"name": "capital_fen", "type": "long"},
        {"name": "issued_on", "type": {"type": "int", "logicalType": "date"}},
        {"name": "updated_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "legal_rep", "type": ["null", "string"], "default": None},
        {"name": "closed_on", "type": ["null", {"type": "int", "logicalType": "date"}]},
        {"name": "_record_key", "type": "string"},
        {"name": "_entry_id", "type": "string"},
        {"name": "_list_version", "type": "int"},
    ],
}


@pytest.mark.parametrize(("avro", "expected"), [
    ("string", ("text", False)),
    ("long", ("bigint", False)),
    ("int", ("integer", False)),
    ("boolean", ("boolean", False)),
    ("double", ("double precision", False)),
    ({"type": "int", "logicalType": "date"}, ("date", False)),
    ({"type": "long", "logicalType": "timestamp-millis"}, ("timestamptz", False)),
    (["null", "string"], ("text", True)),
    (["null", {"type": "long", "logicalType": "timestamp-millis"}], ("timestamptz", True)),
    (["null", "string", "long"], ("jsonb", True)),
    ({"type": "array", "items": "string"}, ("jsonb", False)),
    ({"type": "enum", "name": "E", "symbols": ["A"]}, ("text", False)),
])
def test_avro_to_sql_types(avro: Any, expected: tuple[str, bool]) -> None:
    assert avro_sql_type(avro) == expected


def test_view_columns_and_create_table() -> None:
    cols = view_columns(VIEW)
    assert [c.name for c in cols][:3] == ["credit_code", "capital_fen", "issued_on"]
    by = {c.name: c for c in cols}
    assert by["issued_on"] == Column("issued_on", "date", False)
    assert by["updated_at"].sql_type == "timestamptz"
    assert by["legal_rep"].nullable and by["closed_on"].nullable
    sql = create_table_sql(table="tax_business_licence", schema="public", columns=cols)
    assert sql.startswith('CREATE TABLE IF NOT EXISTS "public"."tax_business_licence" (')
    for frag in ['"credit_code" text NOT NULL', '"legal_rep" text,', '"_kafka_topic" text NOT NULL',
                 '"_kafka_partition" integer NOT NULL', '"_kafka_offset" bigint NOT NULL',
                 '"_loaded_at" timestamptz NOT NULL DEFAULT now()',
                 'PRIMARY KEY ("_record_key")']:
        assert frag in sql


def test_record_key_added_when_view_lacks_it() -> None:
    cols = view_columns({"type": "record", "name": "X",
                         "fields": [{"name": "a", "type": "string"}]})
    assert Column("_record_key", "text", False) in cols


def test_non_record_schema_is_refused() -> None:
    with pytest.raises(ValueError, match="record"):
        view_columns({"type": "string"})


def test_upsert_is_on_conflict_do_update_without_the_key() -> None:
    sql = upsert_sql(table="t", schema=None, columns=["_record_key", "a", "b"])
    assert sql == ('INSERT INTO "t" ("_record_key", "a", "b") VALUES (%s, %s, %s) '
                   'ON CONFLICT ("_record_key") DO UPDATE SET "a" = EXCLUDED."a", '
                   '"b" = EXCLUDED."b"')


def test_evolution_adds_nullable_columns_and_relaxes_dropped_ones() -> None:
    existing = {"_record_key": False, "a": False, "b": False, "c": True, "_kafka_offset": False}
    wanted = [Column("_record_key", "text", False), Column("a", "text", False),
              Column("c", "text", True), Column("d", "bigint", False)]
    add, relax = plan_evolution(existing=existing, wanted=wanted)
    assert add == [Column("d", "bigint", True)]
    assert relax == ["b"]  # gone from the view: keeps its data, loses NOT NULL, never dropped
    assert add_column_sql(table="t", schema="s", column=add[0]) == (
        'ALTER TABLE "s"."t" ADD COLUMN IF NOT EXISTS "d" bigint')


def test_evolution_relaxes_a_field_that_became_nullable() -> None:
    add, relax = plan_evolution(existing={"_record_key": False, "a": False},
                                wanted=[Column("_record_key", "text", False),
                                        Column("a", "text", True)])
    assert add == [] and relax == ["a"]


def test_identifiers_are_quoted() -> None:
    assert quote_ident('we"ird') == '"we""ird"'


@pytest.mark.parametrize(("topic", "template", "table"), [
    ("egress.tax.business_licence", "{consumer}_{dataset}", "tax_business_licence"),
    ("drill1.egress.tax.business_licence", "{dataset}", "business_licence"),
    ("other.topic-name", "{topic}", "other_topic_name"),
])
def test_table_for_topic(topic: str, template: str, table: str) -> None:
    assert table_for_topic(topic, template) == table


def test_table_template_that_gives_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        table_for_topic("plain", "{dataset}")
