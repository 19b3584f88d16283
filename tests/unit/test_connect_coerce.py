"""The sources' pure parts: JSON -> checked Avro, bearer tokens, idempotency, JSON depth."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest

from shulian.connectors.coerce import RawSchema, coerce_record, encode_checked, record_key
from shulian.connectors.sources.gateway import json_depth
from shulian.connectors.sources.gateway_auth import (
    Authenticator,
    AuthOutcome,
    IdempotencyStore,
    token_sha256,
)
from shulian.connectors.sources.table import dump_value, load_value
from shulian.logic.result import Accepted, Reason, Rejected

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "raw"


def schema(agency: str, dataset: str, schema_id: int = 42) -> RawSchema:
    doc = json.loads((SCHEMAS / agency / f"{dataset}.avsc").read_text(encoding="utf-8"))
    return RawSchema.of(f"raw.{agency}.{dataset}-value", schema_id, doc)


TH: dict[str, Any] = {
    "CSYXZMBH": "O440106240001", "XSEXM": "张小明", "XSEXB": "1", "CSSJ": 1714550400000,
    "CSTZ": 3250, "CSYZ": 39, "CSDQ": "440106", "JSJGMC": "天河妇幼", "MQXM": "李某",
    "MQSFZH": "440106199001011234", "FQXM": None, "FQSFZH": None, "QFRQ": "2024-05-02",
    "GBF": None,
}


def decode(rs: RawSchema, wire: bytes) -> dict[str, Any]:
    assert wire[0] == 0 and int.from_bytes(wire[1:5], "big") == rs.schema_id
    out = fastavro.schemaless_reader(io.BytesIO(wire[5:]), rs.parsed, None)
    assert isinstance(out, dict)
    return out


def test_valid_record_round_trips() -> None:
    rs = schema("health_th", "birth_certificate")
    res = encode_checked(rs, TH)
    assert isinstance(res, Accepted)
    assert decode(rs, res.value) == TH


def test_text_values_are_coerced_like_csv_cells() -> None:
    rs = schema("health_th", "birth_certificate")
    cells = {k: ("" if v is None else str(v)) for k, v in TH.items()}
    res = encode_checked(rs, cells, null_values=frozenset({""}))
    assert isinstance(res, Accepted)
    assert decode(rs, res.value) == TH


def test_missing_optional_fields_become_null() -> None:
    rs = schema("health_th", "birth_certificate")
    rec = {k: v for k, v in TH.items() if v is not None and k != "CSYZ"}
    res = encode_checked(rs, rec)
    assert isinstance(res, Accepted)
    assert decode(rs, res.value)["CSYZ"] is None


@pytest.mark.parametrize(("change", "reason", "field", "check"), [
    ({"MQXM": None}, Reason.MISSING_FIELD, "MQXM", "required"),
    ({"CSTZ": "3.2kg"}, Reason.DECODE_ERROR, "CSTZ", "int"),
    ({"CSTZ": 2**40}, Reason.DECODE_ERROR, "CSTZ", "int"),
    ({"CSTZ": True}, Reason.DECODE_ERROR, "CSTZ", "int"),
    ({"MQSFZH": {"nested": 1}}, Reason.DECODE_ERROR, "MQSFZH", "string"),
    ({"MQSFZH": 1.5}, Reason.DECODE_ERROR, "MQSFZH", "string"),
    ({"SECRET_EXTRA": "440106199001011234"}, Reason.DECODE_ERROR, "SECRET_EXTRA",
     "unknown_field"),
])
def test_rejections_name_field_and_never_the_value(
    change: dict[str, Any], reason: Reason, field: str, check: str
) -> None:
    rs = schema("health_th", "birth_certificate")
    res = encode_checked(rs, {**TH, **change})
    assert isinstance(res, Rejected)
    assert (res.reason, res.field, res.check) == (reason, field, check)
    for v in change.values():
        if v is not None:
            assert str(v) not in res.detail


def test_missing_required_field() -> None:
    rs = schema("psb", "household_change")
    res = coerce_record(rs.fields, {"LSH": "1"})
    assert isinstance(res, Rejected) and res.reason is Reason.MISSING_FIELD
    assert res.field == "SFZH"


def test_not_an_object() -> None:
    rs = schema("psb", "household_change")
    res = encode_checked(rs, ["a", "list"])
    assert isinstance(res, Rejected) and res.check == "type"


def test_logical_types() -> None:
    doc = {"type": "record", "name": "L", "fields": [
        {"name": "d", "type": {"type": "int", "logicalType": "date"}},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
        {"name": "b", "type": "boolean"},
    ]}
    rs = RawSchema.of("s", 1, doc)
    res = coerce_record(rs.fields, {"d": "2024-05-01", "ts": "2024-05-01T08:00:00+08:00",
                                    "e": "B", "b": "true"})
    assert isinstance(res, Accepted)
    assert res.value == {"d": 19844, "ts": int(dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
                                                .timestamp() * 1000), "e": "B", "b": True}
    bad = coerce_record(rs.fields, {"d": "01/05/2024", "ts": 0, "e": "A", "b": True})
    assert isinstance(bad, Rejected) and bad.field == "d"
    bad = coerce_record(rs.fields, {"d": 1, "ts": 0, "e": "C", "b": True})
    assert isinstance(bad, Rejected) and bad.field == "e" and "C" not in bad.detail


def test_record_key() -> None:
    assert record_key({"a": "x", "b": 2}, ("a", "b")) == b"x|2"
    assert record_key({"a": "x"}, ()) is None


def test_authenticator_outcomes() -> None:
    auth = Authenticator({"psb": token_sha256("psb-token"), "amr": token_sha256("amr-token")},
                         {"psb": frozenset({"household_change"}),
                          "amr": frozenset({"business_licence"})})
    ok = auth.check("Bearer psb-token", agency="psb", dataset="household_change")
    assert ok is AuthOutcome.OK
    assert auth.check(None, agency="psb", dataset="household_change") is \
        AuthOutcome.UNAUTHENTICATED
    assert auth.check("Bearer wrong", agency="psb", dataset="household_change") is \
        AuthOutcome.UNAUTHENTICATED
    assert auth.check("Basic psb-token", agency="psb", dataset="household_change") is \
        AuthOutcome.UNAUTHENTICATED
    assert auth.check("Bearer amr-token", agency="psb", dataset="household_change") is \
        AuthOutcome.FORBIDDEN
    assert auth.check("Bearer psb-token", agency="psb", dataset="business_licence") is \
        AuthOutcome.FORBIDDEN


def test_idempotency_store() -> None:
    store = IdempotencyStore(ttl_s=10, max_keys=2)
    k1, k2, k3 = ("a", "d", "1"), ("a", "d", "2"), ("a", "d", "3")
    assert store.begin(k1, "h1", now=0) is None
    in_flight = store.begin(k1, "h1", now=1)
    assert in_flight is not None and in_flight.status is None
    store.finish(k1, status=200, reply=b"{}")
    again = store.begin(k1, "h1", now=2)
    assert again is not None and (again.status, again.reply) == (200, b"{}")
    other = store.begin(k1, "h2", now=2)
    assert other is not None and other.body_sha256 == "h1"
    assert store.begin(k2, "x", now=3) is None
    store.abandon(k2)
    assert store.begin(k2, "x", now=3) is None  # an abandoned key may be retried
    store.finish(k2, status=200, reply=b"{}")
    assert store.begin(k3, "y", now=4) is None
    assert len(store) <= 3
    assert store.begin(k1, "h1", now=20) is None  # expired


def test_json_depth() -> None:
    assert json_depth({"a": 1}, limit=8) == 1
    assert json_depth([{"a": [1]}], limit=8) == 3
    deep: Any = 1
    for _ in range(50):
        deep = [deep]
    assert json_depth(deep, limit=8) == 9  # counting stops just past the limit


def test_cursor_values_round_trip() -> None:
    for v in [7, dt.datetime(2024, 5, 1, 8, 0, 0, 123456, tzinfo=dt.UTC),
              dt.datetime(2024, 5, 1, 8), dt.date(2024, 5, 1), "k-1"]:
        assert load_value(json.loads(json.dumps(dump_value(v)))) == v
