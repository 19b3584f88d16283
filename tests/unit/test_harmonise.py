"""Harmonisation: every mapping construct, the shipped dialects, and never raising."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shulian.catalog.avro import canonical_schema
from shulian.catalog.load import load_catalog
from shulian.catalog.models import Catalog
from shulian.logic.harmonise import Harmonised, Harmoniser, record_key, region_name_index
from shulian.logic.result import Accepted, Reason, Rejected
from tests.fixtures.clock import EXAMPLE_CLOCK

REPO = Path(__file__).resolve().parents[2]
REGIONS = {
    "110000": "北京市", "110100": "市辖区", "110101": "东城区", "110105": "朝阳区",
    "220000": "吉林省", "220100": "长春市", "220104": "朝阳区",
    "440000": "广东省", "440100": "广州市", "440104": "越秀区", "440106": "天河区",
    "440112": "黄埔区",
}
RETIRED = {"440116": "440112", "110103": "110101"}


def make_catalog(fields: dict[str, dict[str, Any]], mapping: dict[str, dict[str, Any]],
                 *, key: list[str] | None = None) -> Catalog:
    """A one-dataset catalogue: ``fields`` maps field name -> element spec (+ required)."""
    elements = {}
    ds_fields = []
    for name, spec in fields.items():
        spec = dict(spec)
        required = spec.pop("required", True)
        elements[f"e_{name}"] = {"id": f"e_{name}", "name": name, **spec}
        ds_fields.append({"name": name, "element": f"e_{name}", "required": required})
    return Catalog.model_validate({
        "elements": elements,
        "agencies": {"ag": {"id": "ag", "name": "机构", "region_code": "440100"}},
        "datasets": {"ds": {"id": "ds", "name": "数据集", "version": 1,
                            "key": key or [next(iter(fields))], "fields": ds_fields}},
        "mappings": {("ag", "ds"): {"agency": "ag", "dataset": "ds", "version": 3,
                                    "raw_schema": "raw/ag/ds.avsc", "fields": mapping}},
        "sharing_lists": {},
        "regions": REGIONS,
        "retired_regions": RETIRED,
    })


def run(fields: dict[str, dict[str, Any]], mapping: dict[str, dict[str, Any]],
        raw: dict[str, Any]) -> Accepted[Harmonised] | Rejected:
    h = Harmoniser(make_catalog(fields, mapping), clock=EXAMPLE_CLOCK)
    return h.harmonise("ag", "ds", raw)


def value_of(fields: dict[str, dict[str, Any]], mapping: dict[str, dict[str, Any]],
             raw: dict[str, Any], name: str) -> Any:
    r = run(fields, mapping, raw)
    assert isinstance(r, Accepted), r
    return r.value.record[name]


ID = {"type": "text"}


def test_rename_key_and_mapping_version() -> None:
    r = run({"id": ID, "note": {"type": "text", "required": False}},
            {"id": {"from": "LSH"}, "note": {"from": "BZ"}}, {"LSH": " A-1 ", "other": 1})
    assert isinstance(r, Accepted)
    assert r.value == Harmonised(record={"id": "A-1", "note": None}, key="A-1", mapping_version=3)


@pytest.mark.parametrize(("raw", "want"), [("男", "1"), ("女", "2"), ("M", "1"), ("F", "2"),
                                            (1, "1"), ("2", "2"), (" 男 ", "1")])
def test_code_map_onto_gb2261(raw: object, want: str) -> None:
    codes = {"男": "1", "女": "2", "M": "1", "F": "2", "1": "1", "2": "2"}
    fields = {"id": ID, "sex": {"type": "sex"}}
    mapping = {"id": {"default": "k"}, "sex": {"from": "XB", "codes": codes}}
    assert value_of(fields, mapping, {"XB": raw}, "sex") == want


def test_code_map_miss_is_a_mapping_error_naming_field_and_source() -> None:
    r = run({"id": ID, "sex": {"type": "sex"}},
            {"id": {"default": "k"}, "sex": {"from": "XB", "codes": {"男": "1"}}}, {"XB": "雄"})
    assert isinstance(r, Rejected)
    assert (r.reason, r.field, r.check, r.extra["source"]) == (
        Reason.MAPPING_ERROR, "sex", "code_map", "XB")
    assert "雄" not in r.detail


@pytest.mark.parametrize(
    ("raw", "want"),
    [("2020年12月29日", date(2020, 12, 29)), ("20201229", date(2020, 12, 29)),
     ("2020/12/29", date(2020, 12, 29)), (20201229, date(2020, 12, 29)),
     ("2020/2/3", date(2020, 2, 3)),
     # epoch millis of 2020-12-28T16:30Z, which is 2020-12-29 00:30 in Shanghai
     (1609173000000, date(2020, 12, 29)), ("1609173000000", date(2020, 12, 29))],
)
def test_date_formats_in_order(raw: object, want: date) -> None:
    fields = {"id": ID, "dd": {"type": "date"}}
    mapping = {"id": {"default": "k"},
               "dd": {"from": "RQ", "date_formats": ["%Y年%m月%d日", "%Y%m%d", "%Y/%m/%d",
                                                    "epoch_millis"]}}
    assert value_of(fields, mapping, {"RQ": raw}, "dd") == want


def test_timestamps_from_local_text_epoch_seconds_and_strptime_fallback() -> None:
    fields = {"id": ID, "tt": {"type": "timestamp"}}
    mapping = {"id": {"default": "k"},
               "tt": {"from": "SJ", "date_formats": ["%Y-%m-%d %H:%M:%S", "epoch_seconds",
                                                    "%d %b %Y %H:%M"]}}
    want = datetime(2020, 12, 29, 2, 30, tzinfo=UTC)
    assert value_of(fields, mapping, {"SJ": "2020-12-29 10:30:00"}, "tt") == want
    assert value_of(fields, mapping, {"SJ": 1609209000}, "tt") == want
    assert value_of(fields, mapping, {"SJ": "29 Dec 2020 10:30"}, "tt") == want


@pytest.mark.parametrize("raw", ["2020-13-01", "2020年2月30日", "soon", True, 1.5, ["xx"]])
def test_unparsable_dates_are_mapping_errors(raw: object) -> None:
    r = run({"id": ID, "dd": {"type": "date"}},
            {"id": {"default": "k"}, "dd": {"from": "RQ", "date_formats": ["%Y年%m月%d日",
                                                                          "%Y-%m-%d"]}},
            {"RQ": raw})
    assert isinstance(r, Rejected)
    assert (r.reason, r.field, r.check) == (Reason.MAPPING_ERROR, "dd", "date_format")


@pytest.mark.parametrize(
    ("unit", "raw", "fen"),
    [("yuan", "15.50", 1550), ("yuan", 15.5, 1550), ("yuan", 15, 1500), ("wan_yuan", "100.5",
     100_500_000), ("wan_yuan", "0.000001", 1), ("jiao", "3", 30), ("fen", "12", 12),
     ("yuan", "1,234.56", 123456), ("yuan", "０.０１", 1)],
)
def test_money_units_to_exact_fen(unit: str, raw: object, fen: int) -> None:
    fields = {"id": ID, "mm": {"type": "money_fen"}}
    mapping = {"id": {"default": "k"}, "mm": {"from": "JE", "unit": unit}}
    assert value_of(fields, mapping, {"JE": raw}, "mm") == fen


@pytest.mark.parametrize(
    ("unit", "raw", "reason", "check"),
    [("yuan", "15.555", Reason.MAPPING_ERROR, "fraction_of_fen"),
     ("wan_yuan", "0.0000001", Reason.MAPPING_ERROR, "fraction_of_fen"),
     ("yuan", "十五", Reason.MAPPING_ERROR, "number"),
     ("yuan", "NaN", Reason.MAPPING_ERROR, "number"),
     ("yuan", float("inf"), Reason.MAPPING_ERROR, "number"),
     ("yuan", "1e400", Reason.MAPPING_ERROR, "number"),
     ("yuan", "-1", Reason.ELEMENT_CHECK_FAILED, "range")],
)
def test_bad_amounts(unit: str, raw: object, reason: Reason, check: str) -> None:
    r = run({"id": ID, "mm": {"type": "money_fen"}},
            {"id": {"default": "k"}, "mm": {"from": "JE", "unit": unit}}, {"JE": raw})
    assert isinstance(r, Rejected)
    assert (r.reason, r.field, r.check) == (reason, "mm", check)


@pytest.mark.parametrize(
    ("how", "raw", "want"),
    [("code", "440116", "440112"), ("code", "440106", "440106"), ("code", 110103, "110101"),
     ("name", "天河区", "440106"), ("name", "广州市天河区", "440106"),
     ("name", "广东省广州市天河区", "440106"), ("name", "北京市朝阳区", "110105"),
     ("name", "吉林省长春市朝阳区", "220104"), ("code_or_name", "越秀区", "440104"),
     ("code_or_name", "440116", "440112")],
)
def test_region_names_and_retired_codes(how: str, raw: object, want: str) -> None:
    fields = {"id": ID, "rr": {"type": "region_code"}}
    mapping = {"id": {"default": "k"}, "rr": {"from": "QH", "region": how}}
    assert value_of(fields, mapping, {"QH": raw}, "rr") == want


@pytest.mark.parametrize(
    ("how", "raw", "reason", "check"),
    [("name", "朝阳区", Reason.MAPPING_ERROR, "region_name"),  # ambiguous
     ("name", "火星区", Reason.MAPPING_ERROR, "region_name"),
     ("name", "440106", Reason.MAPPING_ERROR, "region_input"),
     ("code", "天河区", Reason.MAPPING_ERROR, "region_input"),
     ("code", "440199", Reason.ELEMENT_CHECK_FAILED, "code_table")],
)
def test_bad_regions(how: str, raw: object, reason: Reason, check: str) -> None:
    r = run({"id": ID, "rr": {"type": "region_code"}},
            {"id": {"default": "k"}, "rr": {"from": "QH", "region": how}}, {"QH": raw})
    assert isinstance(r, Rejected)
    assert (r.reason, r.check) == (reason, check)


def test_retired_code_without_region_option_fails_the_element_check() -> None:
    r = run({"id": ID, "rr": {"type": "region_code"}},
            {"id": {"default": "k"}, "rr": {"from": "QH"}}, {"QH": "440116"})
    assert isinstance(r, Rejected)
    assert (r.reason, r.field, r.check) == (Reason.ELEMENT_CHECK_FAILED, "rr", "retired_code")


def test_region_name_index_leaves_out_ambiguous_names() -> None:
    index = region_name_index(REGIONS)
    assert "朝阳区" not in index and "市辖区" not in index
    assert index["长春市朝阳区"] == "220104"
    assert index["北京市"] == "110000"


def test_defaults_missing_fields_and_blank_strings() -> None:
    fields = {"id": ID, "sex": {"type": "sex"}, "note": {"type": "text", "required": False}}
    mapping = {"id": {"from": "ID"}, "sex": {"from": "XB", "default": "0",
                                              "codes": {"男": "1"}},
               "note": {"from": "BZ"}}
    h = Harmoniser(make_catalog(fields, mapping), clock=EXAMPLE_CLOCK)
    r = h.harmonise("ag", "ds", {"ID": "k", "XB": "  ", "BZ": ""})
    assert isinstance(r, Accepted)
    assert r.value.record == {"id": "k", "sex": "0", "note": None}
    missing = h.harmonise("ag", "ds", {"XB": "男"})
    assert isinstance(missing, Rejected)
    assert (missing.reason, missing.field) == (Reason.MISSING_FIELD, "id")


def test_unmapped_required_field_is_missing_and_unknown_pair_is_unknown_dataset() -> None:
    h = Harmoniser(make_catalog({"id": ID, "xx": {"type": "integer"}}, {"id": {"from": "ID"}}),
                   clock=EXAMPLE_CLOCK)
    r = h.harmonise("ag", "ds", {"ID": "k"})
    assert isinstance(r, Rejected) and (r.reason, r.field) == (Reason.MISSING_FIELD, "xx")
    u = h.harmonise("ag", "other", {"ID": "k"})
    assert isinstance(u, Rejected) and u.reason is Reason.UNKNOWN_DATASET
    u = h.harmonise("nobody", "ds", {"ID": "k"})
    assert isinstance(u, Rejected) and u.reason is Reason.UNKNOWN_DATASET


def test_element_failure_names_the_canonical_field_and_not_the_value() -> None:
    r = run({"id": ID, "cid": {"type": "citizen_id"}},
            {"id": {"default": "k"}, "cid": {"from": "SFZH"}}, {"SFZH": "440106198503151230"})
    assert isinstance(r, Rejected)
    assert (r.reason, r.field, r.check) == (Reason.ELEMENT_CHECK_FAILED, "cid", "check_digit")
    assert "440106198503151230" not in r.detail


def test_record_key_joins_key_fields_with_a_bar_and_escapes() -> None:
    cat = make_catalog({"aa": ID, "dd": {"type": "date"}, "nn": {"type": "integer"}},
                       {"aa": {"from": "A"}, "dd": {"from": "D"}, "nn": {"from": "N"}},
                       key=["aa", "dd", "nn"])
    h = Harmoniser(cat, clock=EXAMPLE_CLOCK)
    r = h.harmonise("ag", "ds", {"A": "x|y", "D": "2020-12-29", "N": 7})
    assert isinstance(r, Accepted)
    assert r.value.key == "x\\|y|2020-12-29|7"
    assert record_key(cat.datasets["ds"], r.value.record) == r.value.key  # type: ignore[index]


# --- the shipped catalogue ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> Catalog:
    return load_catalog(REPO / "catalog", schemas_dir=REPO / "schemas")


def _roundtrip(catalog: Catalog, dataset: str, record: dict[str, Any]) -> dict[str, Any]:
    import io

    ds = catalog.datasets[dataset]  # type: ignore[index]
    schema = fastavro.parse_schema(canonical_schema(ds, catalog.elements))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, record)
    buf.seek(0)
    out = fastavro.schemaless_reader(buf, schema, schema)
    assert isinstance(out, dict)
    return out


def test_shipped_dialects_harmonise_and_encode(shipped: Catalog) -> None:
    h = Harmoniser(shipped, clock=EXAMPLE_CLOCK)
    samples = {
        ("amr", "business_licence"): {
            "TYSHXYDM": "91350100M000100Y43", "QYMC": "广州市数链科技有限公司",
            "QYLX": "有限责任公司", "FDDBR": "张三", "FDDBRSFZH": "11010519491231002x",
            "ZCZB": "100.5", "ZSQX": "广州市天河区", "ZS": "天河路１２３号",
            "CLRQ": "2020年12月29日", "DJZT": "存续",
            "LXDH": "020-8888 6666", "JYFW": None, "DJSJ": 1609207200000},
        ("psb", "household_change"): {
            "LSH": "HJ2026000001", "SFZH": "440524800101001", "XM": "李四", "XB": "女",
            "CSRQ": "19800101", "BDLX": "迁入", "BDRQ": "2026/01/10", "QCDQ": "440102",
            "QRDQ": "440116", "HJDZ": None, "DJSJ": "2026-01-10 10:30:00"},
        ("health_th", "birth_certificate"): {
            "CSYXZMBH": "Q440100001", "XSEXM": None, "XSEXB": "F", "CSSJ": 1767313800000,
            "CSTZ": 3250, "CSYZ": 39, "CSDQ": "440106", "JSJGMC": "广州市天河区妇幼保健院",
            "MQXM": "王五", "MQSFZH": "440524188001010014", "FQXM": None, "FQSFZH": None,
            "QFRQ": "20260103", "GBF": "15.00"},
        ("health_yx", "birth_certificate"): {
            "CERT_NO": "Q440100002", "BABY_NAME": "赵小六", "GENDER": "男",
            "BIRTH_TIME": "2026年01月02日08时30分", "WEIGHT_G": "3100", "REGION": "越秀区",
            "HOSPITAL": None, "MOTHER_NAME": "钱七", "MOTHER_IDNO": "440524800101001",
            "FATHER_NAME": None, "FATHER_IDNO": None, "ISSUE_DATE": 1767456000000,
            "FEE_YUAN": 15.5},
    }
    for (agency, dataset), raw in samples.items():
        r = h.harmonise(agency, dataset, raw)
        assert isinstance(r, Accepted), (agency, r)
        assert _roundtrip(shipped, dataset, r.value.record) == r.value.record
    lic = h.harmonise("amr", "business_licence", samples[("amr", "business_licence")])
    assert isinstance(lic, Accepted)
    rec = lic.value.record
    assert (rec["registered_capital"], rec["region"], rec["legal_rep_id"], rec["address"]) == (
        100_500_000, "440106", "11010519491231002X", "天河路123号")
    assert lic.value.mapping_version == 2  # the newest mapping version wins
    hh = h.harmonise("psb", "household_change", samples[("psb", "household_change")])
    assert isinstance(hh, Accepted)
    assert (hh.value.record["from_region"], hh.value.record["to_region"]) == ("440104", "440112")
    assert hh.value.record["citizen_id"][:17] == "44052419800101001"  # 15 -> 18 digits
    yx = h.harmonise("health_yx", "birth_certificate", samples[("health_yx", "birth_certificate")])
    assert isinstance(yx, Accepted)
    assert yx.value.record["institution"] == "广州市越秀区妇幼保健院"  # the mapping's default
    assert yx.value.record["birth_time"] == datetime(2026, 1, 2, 0, 30, tzinfo=UTC)
    assert yx.value.record["issued_on"] == date(2026, 1, 4)


# --- never raises ----------------------------------------------------------------------------

_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
    | st.binary(max_size=10) | st.dates() | st.datetimes() | st.decimals()
    | st.sampled_from(["男", "F", "2020年12月29日", "20201229", "440116", "天河区", "15.5",
                      "1609207200000", "11010519491231002X", "91350100M000100Y43", " "])
)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=5)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_harmonise_never_raises(shipped: Catalog, data: st.DataObject) -> None:
    h = _harmoniser(shipped)
    agency, dataset = data.draw(st.sampled_from(sorted(shipped.mappings)))
    mapping = shipped.mappings[(agency, dataset)]
    names = [fm.source for fm in mapping.fields.values() if fm.source] + ["junk"]
    raw = data.draw(st.dictionaries(st.sampled_from(names) | st.text(max_size=4), _values,
                                    max_size=len(names) + 2))
    result = h.harmonise(agency, dataset, raw)
    assert isinstance(result, Accepted | Rejected)
    if isinstance(result, Rejected):
        assert result.reason in {Reason.MAPPING_ERROR, Reason.ELEMENT_CHECK_FAILED,
                                 Reason.MISSING_FIELD}


_CACHE: dict[int, Harmoniser] = {}


def _harmoniser(catalog: Catalog) -> Harmoniser:
    return _CACHE.setdefault(id(catalog), Harmoniser(catalog, clock=EXAMPLE_CLOCK))
