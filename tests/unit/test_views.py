"""Consumer-view schemas: shape, determinism, and fastavro encoding of the views decide() makes."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import fastavro
import pytest

from shulian.catalog.models import ElementType, ShareType
from shulian.logic.policy import Outcome
from shulian.logic.views import (
    avro_type,
    camel,
    egress_subject,
    egress_topic,
    view_schema,
)
from tests.fixtures.policy import (
    FIELD_NAMES,
    decide,
    engine,
    entry,
    make_dataset,
    make_elements,
    make_record,
    mask,
)

MASKS = {
    "citizen_id": mask(type="keep", first=6, last=4),
    "name": mask(type="name"),
    "birth_date": mask(type="truncate_date", to="month"),
    "region": mask(type="generalise_region", to="city"),
    "changed_at": mask(type="truncate_date", to="year"),
    "subsidy": mask(type="hmac"),
    "phone": mask(type="drop"),
}


def by_name(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in schema["fields"]}


def test_shape_names_and_types() -> None:
    e = entry(
        consumer="civil_affairs",
        fields=["remark", "phone", "region", "citizen_id", "household_size", "changed_at"],
        masks={"phone": mask(type="drop"), "citizen_id": mask(type="hmac")},
    )
    s = view_schema(make_dataset(), make_elements(), e)
    assert s["type"] == "record"
    assert s["name"] == "HouseholdChangeView_civil_affairs"
    assert s["namespace"] == "gov.shulian.egress"
    assert [f["name"] for f in s["fields"]] == [
        "citizen_id",
        "region",
        "changed_at",
        "remark",
        "household_size",
        "_record_key",
        "_entry_id",
        "_list_version",
    ]
    f = by_name(s)
    assert f["citizen_id"]["type"] == ["null", "string"] and f["citizen_id"]["default"] is None
    assert f["region"]["type"] == "string"
    assert f["changed_at"]["type"] == {"type": "long", "logicalType": "timestamp-millis"}
    assert f["remark"]["type"] == ["null", "string"] and f["remark"]["default"] is None
    assert f["household_size"]["type"] == "long"
    assert f["_record_key"]["type"] == "string"
    assert f["_entry_id"]["type"] == "string"
    assert f["_list_version"]["type"] == "int"
    assert "phone" not in f


def test_deterministic_and_follows_the_entry() -> None:
    e = entry(fields=["citizen_id", "name"], masks={"name": mask(type="name")})
    a = view_schema(make_dataset(), make_elements(), e)
    b = view_schema(make_dataset(), make_elements(), e.model_copy())
    assert a == b
    assert fastavro.schema.to_parsing_canonical_form(
        fastavro.parse_schema(a)
    ) == fastavro.schema.to_parsing_canonical_form(fastavro.parse_schema(b))
    changed = view_schema(make_dataset(), make_elements(), e.model_copy(update={"masks": {}}))
    assert by_name(changed)["name"]["type"] == "string"
    assert changed != a


def test_avro_types_and_names() -> None:
    assert avro_type(ElementType.DATE) == {"type": "int", "logicalType": "date"}
    assert avro_type(ElementType.MONEY_FEN) == "long"
    assert avro_type(ElementType.SEX) == "string"
    assert {type(avro_type(t)) for t in ElementType} == {str, dict}
    assert camel("household_change") == "HouseholdChange"
    assert camel("x") == "X"
    assert egress_topic("health", "household_change") == "egress.health.household_change"
    assert egress_subject("health", "household_change") == "egress.health.household_change-value"


def _roundtrip(schema: dict[str, Any], view: dict[str, Any]) -> dict[str, Any]:
    parsed = fastavro.parse_schema(schema)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, view)
    buf.seek(0)
    out = fastavro.schemaless_reader(buf, parsed, None)
    assert isinstance(out, dict)
    return out


@pytest.mark.parametrize(
    "masks",
    [{}, MASKS],
    ids=["unmasked", "masked"],
)
def test_fastavro_encodes_views_from_decide(masks: dict[str, Any]) -> None:
    e = entry(fields=FIELD_NAMES, masks=masks)
    schema = view_schema(make_dataset(), make_elements(), e)
    eng = engine(e)
    records = [
        make_record(changed_at=datetime(2026, 2, 28, 16, 30, 0, 123000, tzinfo=UTC)),
        make_record(phone=None, remark="备注", employer_code="91440101MA59XXXX1X"),
    ]
    for rec in records:
        (d,) = decide(eng, record=rec)
        assert d.outcome is Outcome.DELIVER and d.view is not None
        back = _roundtrip(schema, d.view)
        assert back == d.view
        assert set(back) == {f["name"] for f in schema["fields"]}


def test_none_entry_schema_has_only_metadata() -> None:
    e = entry(share_type=ShareType.NONE, fields=[])
    s = view_schema(make_dataset(), make_elements(), e)
    assert [f["name"] for f in s["fields"]] == ["_record_key", "_entry_id", "_list_version"]
    fastavro.parse_schema(s)
