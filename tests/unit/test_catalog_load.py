"""Catalogue loading: the shipped example is clean; each kind of bad config names file + field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from shulian.catalog.avro import canonical_schema, schema_text
from shulian.catalog.load import check_catalog, load_catalog, load_sharing_list_text
from shulian.catalog.models import ShareType
from shulian.cli.main import cli
from shulian.errors import ConfigError, ConfigIssue

REPO = Path(__file__).resolve().parents[2]
MASK_TYPES = {"keep", "name", "hmac", "truncate_date", "generalise_region", "drop"}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A private copy of catalog/ and schemas/ to break."""
    shutil.copytree(REPO / "catalog", tmp_path / "catalog")
    shutil.copytree(REPO / "schemas", tmp_path / "schemas")
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def issues_of(tree: Path) -> list[ConfigIssue]:
    return check_catalog(tree / "catalog", schemas_dir=tree / "schemas")


def find(issues: list[ConfigIssue], file: str, field: str) -> ConfigIssue:
    hits = [i for i in issues if i.file == file and i.field == field]
    assert hits, f"no issue at {file}: {field}; got:\n" + "\n".join(map(str, issues))
    return hits[0]


# --- the shipped example ---------------------------------------------------------------------


def test_shipped_catalogue_is_clean_and_complete() -> None:
    assert check_catalog(REPO / "catalog", schemas_dir=REPO / "schemas") == []
    cat = load_catalog(REPO / "catalog", schemas_dir=REPO / "schemas")
    assert len(cat.agencies) >= 4
    assert set(cat.datasets) == {"business_licence", "household_change", "birth_certificate"}
    publishers = [a for (a, d) in cat.mappings if d == "birth_certificate"]
    assert sorted(publishers) == ["health_th", "health_yx"]
    assert cat.mappings[("amr", "business_licence")].version == 2  # type: ignore[index]
    assert sorted(cat.sharing_lists) == [1, 2] and cat.current_list.version == 2
    entries = [e for sl in cat.sharing_lists.values() for e in sl.entries]
    # verify entries live in the test catalogue of tests/fixtures/verify.py (list v3)
    assert {e.share_type for e in entries} == set(ShareType) - {ShareType.VERIFY}
    assert {m.type for e in entries for m in e.masks.values()} == MASK_TYPES
    assert any(e.row_filter for e in entries)
    assert len([c for c in cat.regions if c.endswith("0000")]) == 34
    assert cat.retired_regions["110103"] == "110101"
    assert cat.retired_regions["440116"] == "440112"


def test_committed_canonical_schemas_equal_the_generated_ones() -> None:
    cat = load_catalog(REPO / "catalog", schemas_dir=REPO / "schemas")
    files = sorted(p.stem for p in (REPO / "schemas" / "canonical").glob("*.avsc"))
    assert files == sorted(cat.datasets)
    for ds in cat.datasets.values():
        committed = (REPO / "schemas" / "canonical" / f"{ds.id}.avsc").read_text(encoding="utf-8")
        assert committed == schema_text(canonical_schema(ds, cat.elements))


def test_canonical_schema_shape() -> None:
    cat = load_catalog(REPO / "catalog", schemas_dir=REPO / "schemas")
    schema = canonical_schema(cat.datasets["household_change"], cat.elements)  # type: ignore[index]
    assert (schema["name"], schema["namespace"]) == ("HouseholdChange", "gov.shulian.canonical")
    by_name = {f["name"]: f for f in schema["fields"]}
    assert by_name["birth_date"]["type"] == {"type": "int", "logicalType": "date"}
    assert by_name["recorded_at"]["type"] == {"type": "long", "logicalType": "timestamp-millis"}
    assert by_name["from_region"]["type"] == ["null", "string"]
    assert by_name["from_region"]["default"] is None
    assert by_name["citizen_id"]["element"] == "citizen_id" and by_name["citizen_id"]["doc"]


# --- bad configs: each names file, field and why ---------------------------------------------


def test_unknown_field_and_wrong_type_in_elements(tree: Path) -> None:
    edit(tree / "catalog/elements.yaml", "    type: citizen_id\n",
         "    type: citizen_id\n    colour: red\n")
    edit(tree / "catalog/elements.yaml", "    type: sex\n", "    type: gender\n")
    issues = issues_of(tree)
    assert find(issues, "catalog/elements.yaml", "elements.0.colour").why == "unknown field"
    assert "citizen_id" in find(issues, "catalog/elements.yaml", "elements.2.type").why


def test_dataset_with_unknown_element_and_optional_key(tree: Path) -> None:
    path = tree / "catalog/datasets/household_change.yaml"
    edit(path, "element: person_name", "element: nickname")
    edit(path, "{name: serial_no, element: serial_no,", "{name: serial_no, element: serial_no, "
         "required: false,")
    issues = issues_of(tree)
    f = "catalog/datasets/household_change.yaml"
    assert "nickname" in find(issues, f, "fields.2.element").why
    assert "required" in find(issues, f, "key.0").why


def test_dangling_references_in_a_mapping(tree: Path) -> None:
    path = tree / "catalog/mappings/psb/household_change.v1.yaml"
    edit(path, "  name: {from: XM}", "  name: {from: XINGMING}")
    edit(path, "  address: {from: HJDZ}", "  address: {from: HJDZ}\n  nickname: {from: XM}")
    f = "catalog/mappings/psb/household_change.v1.yaml"
    issues = issues_of(tree)
    assert "XINGMING" in find(issues, f, "fields.name.from").why
    assert "no field 'nickname'" in find(issues, f, "fields.nickname").why


def test_mapping_with_unknown_agency_and_missing_raw_schema(tree: Path) -> None:
    (tree / "catalog/mappings/psb").rename(tree / "catalog/mappings/police")
    path = tree / "catalog/mappings/police/household_change.v1.yaml"
    edit(path, "agency: psb", "agency: police")
    edit(path, "raw_schema: raw/psb/", "raw_schema: raw/police/")
    issues = issues_of(tree)
    f = "catalog/mappings/police/household_change.v1.yaml"
    assert "unknown agency" in find(issues, f, "agency").why
    assert "raw/police/household_change.avsc" in find(issues, f, "raw_schema").why
    # the list entries that name psb as provider now dangle too
    assert "publishes no" in find(issues, "catalog/sharing/list.v1.yaml", "entries.2.provider").why


def test_mapping_options_that_do_not_fit(tree: Path) -> None:
    path = tree / "catalog/mappings/psb/household_change.v1.yaml"
    f = "catalog/mappings/psb/household_change.v1.yaml"
    edit(path, "  serial_no: {from: LSH}", "  serial_no: {from: LSH, unit: yuan}")
    edit(path, '男: "1"', '男: "M"')
    edit(path, '["%Y%m%d"]', '["%Y%m%d", "%Q"]')
    edit(path, "  address: {from: HJDZ}", "  address: {from: HJDZ}\n"
         "  from_region: {from: QCDQ, region: code, default: \"999999\"}")
    edit(path, "  from_region: {from: QCDQ, region: code}\n", "")
    issues = issues_of(tree)
    assert "does not fit" in find(issues, f, "fields.serial_no.unit").why
    assert "code_list" in find(issues, f, "fields.sex.codes.男").why
    find(issues, f, "fields.birth_date.date_formats.1")
    assert "code_table" in find(issues, f, "fields.from_region.default").why


def test_required_field_left_unmapped(tree: Path) -> None:
    edit(tree / "catalog/mappings/psb/household_change.v1.yaml", "  serial_no: {from: LSH}\n", "")
    issues = issues_of(tree)
    why = find(issues, "catalog/mappings/psb/household_change.v1.yaml", "fields").why
    assert "serial_no" in why


def test_list_entry_dangling_dataset_provider_consumer(tree: Path) -> None:
    path = tree / "catalog/sharing/list.v1.yaml"
    edit(path, "    dataset: business_licence\n    provider: amr\n    consumer: tax",
         "    dataset: business_licences\n    provider: amr\n    consumer: taxes")
    edit(path, "    provider: health_th\n    consumer: civil", "    provider: hospital\n"
         "    consumer: civil")
    issues = issues_of(tree)
    f = "catalog/sharing/list.v1.yaml"
    assert "business_licences" in find(issues, f, "entries.0.dataset").why
    assert "taxes" in find(issues, f, "entries.0.consumer").why
    assert "hospital" in find(issues, f, "entries.6.provider").why


def test_list_entry_unknown_field_mask_misfit_and_bad_cel(tree: Path) -> None:
    path = tree / "catalog/sharing/list.v2.yaml"
    edit(path, "      recorded_at: {type: truncate_date, to: year}",
         "      recorded_at: {type: name}")
    edit(path, "change_type, change_date, from_region, to_region,\n             recorded_at]",
         "change_type, change_date, from_region, to_region,\n             recorded_at, salary]")
    edit(path, 'row_filter: record.change_type in ["02", "03"]',
         'row_filter: record.change_type in ["02", "03"')
    issues = issues_of(tree)
    f = "catalog/sharing/list.v2.yaml"
    why = find(issues, f, "entries.3.masks.recorded_at").why
    assert "mask 'name' does not fit element type 'timestamp'" in why
    assert "salary" in find(issues, f, "entries.3.fields.9").why
    assert "CEL" in find(issues, f, "entries.3.row_filter").why


def test_list_model_errors_and_file_name_version(tree: Path) -> None:
    path = tree / "catalog/sharing/list.v2.yaml"
    edit(path, "    share_type: conditional\n    purpose: 参保人员",
         "    share_type: maybe\n    purpose: 参保人员")
    (tree / "catalog/sharing/list.v1.yaml").rename(tree / "catalog/sharing/list.v7.yaml")
    issues = issues_of(tree)
    assert "unconditional" in find(issues, "catalog/sharing/list.v2.yaml",
                                   "entries.3.share_type").why
    find(issues, "catalog/sharing/list.v7.yaml", "version")


def test_stale_canonical_schema_is_reported_and_regenerated(tree: Path) -> None:
    edit(tree / "catalog/datasets/birth_certificate.yaml", "doc: 出生孕周", "doc: 孕周")
    issues = issues_of(tree)
    assert "schemas --write" in find(issues, "schemas/canonical/birth_certificate.avsc",
                                     "(file)").why
    runner = CliRunner()
    args = ["--catalog", str(tree / "catalog"), "--schemas", str(tree / "schemas")]
    assert runner.invoke(cli, ["catalog", "schemas", *args]).exit_code == 1
    assert runner.invoke(cli, ["catalog", "schemas", "--write", *args]).exit_code == 0
    assert issues_of(tree) == []
    data = json.loads((tree / "schemas/canonical/birth_certificate.avsc").read_text("utf-8"))
    assert any(f.get("doc") == "孕周" for f in data["fields"])


def test_bad_yaml_and_bad_region_table(tree: Path) -> None:
    (tree / "catalog/agencies.yaml").write_text("agencies: [\n", encoding="utf-8")
    with (tree / "catalog/codes/gb2260_retired.csv").open("a", encoding="utf-8") as fh:
        fh.write("440199,不存在,440198\n")
    issues = issues_of(tree)
    assert "YAML" in find(issues, "catalog/agencies.yaml", "(file)").why
    find(issues, "catalog/codes/gb2260_retired.csv", "line 14.current_code")


# --- a list version arriving as text -----------------------------------------------------------


def test_load_sharing_list_text_accepts_yaml_and_json() -> None:
    cat = load_catalog(REPO / "catalog", schemas_dir=REPO / "schemas")
    text = (REPO / "catalog/sharing/list.v2.yaml").read_text(encoding="utf-8")
    sl = load_sharing_list_text(text, source="control@5", catalog=cat)
    assert sl == cat.sharing_lists[2]
    as_json = json.dumps(yaml.safe_load(text), ensure_ascii=False)
    assert load_sharing_list_text(as_json, source="control@6", catalog=cat) == sl


def test_load_sharing_list_text_uses_the_same_checks() -> None:
    cat = load_catalog(REPO / "catalog", schemas_dir=REPO / "schemas")
    data = yaml.safe_load((REPO / "catalog/sharing/list.v2.yaml").read_text(encoding="utf-8"))
    data["version"] = 3
    data["entries"][2]["masks"] = {"birth_date": {"type": "generalise_region", "to": "city"}}
    data["entries"][2]["row_filter"] = "record.change_type = = '04'"
    with pytest.raises(ConfigError) as err:
        load_sharing_list_text(json.dumps(data, ensure_ascii=False), source="control@7",
                               catalog=cat)
    fields = {(i.file, i.field) for i in err.value.issues}
    assert fields == {("control@7", "entries.2.masks.birth_date"),
                      ("control@7", "entries.2.row_filter")}
    with pytest.raises(ConfigError) as err:
        load_sharing_list_text("version: [", source="control@8", catalog=cat)
    assert err.value.issues[0].file == "control@8"
    with pytest.raises(ConfigError) as err:
        load_sharing_list_text("version: 0\n", source="control@9", catalog=cat)
    assert {i.field for i in err.value.issues} >= {"version", "published", "entries"}


# --- the CLI -----------------------------------------------------------------------------------


def test_cli_check_clean_and_broken(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    monkeypatch.setenv("SHULIAN_CATALOG_DIR", str(tree / "catalog"))
    monkeypatch.setenv("SHULIAN_SCHEMAS_DIR", str(tree / "schemas"))
    ok = runner.invoke(cli, ["catalog", "check"])
    assert ok.exit_code == 0, ok.output
    lines = ok.output.splitlines()
    assert lines[0].startswith("catalogue OK:") and lines[1].startswith("signatures OK:")
    assert len(lines) == 3 and lines[2].startswith("warning: development keys")
    edit(tree / "catalog/sharing/list.v1.yaml", "consumer: tax", "consumer: irs")
    bad = runner.invoke(cli, ["catalog", "check"])
    assert bad.exit_code == 2
    assert "catalog/sharing/list.v1.yaml: entries.0.consumer: unknown agency 'irs'" in bad.output


def test_a_mapping_may_name_a_json_schema_raw_schema(tree: Path) -> None:
    mapping = tree / "catalog" / "mappings" / "psb" / "household_change.v1.yaml"
    edit(mapping, "raw/psb/household_change.avsc", "raw/psb/household_change.schema.json")
    assert issues_of(tree) == []
    raw = tree / "schemas" / "raw" / "psb" / "household_change.schema.json"
    edit(raw, '"XM": {', '"XM_RENAMED": {')  # a field the mapping takes is gone
    f = "catalog/mappings/psb/household_change.v1.yaml"
    assert "'XM'" in find(issues_of(tree), f, "fields.name.from").why
    raw.write_text('{"type": "object", "properties": {"XM": {"type": 7}}}', encoding="utf-8")
    why = find(issues_of(tree), "schemas/raw/psb/household_change.schema.json", "(file)").why
    assert "not a valid JSON Schema" in why
