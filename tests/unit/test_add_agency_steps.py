"""docs/DEPLOY.md "Add an agency and a dataset", steps 1-5, on a copy of the catalogue:
the commands it names exist and do what it says (`catalog schemas` reports the missing
canonical schema, `catalog schemas --write` writes it, `catalog check` passes, `catalog list`
shows the new agency publishing the new dataset)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from shulian.cli.main import cli
from shulian.settings import REPO_ROOT

AGENCY = """  - id: edu
    name: 广州市教育局
    region_code: "440100"
    contact: 学籍管理处
"""
DATASET = """id: school_enrolment
name: 学籍注册信息
version: 1
key: [serial_no]
fields:
  - {name: serial_no, element: serial_no, doc: 学籍号}
  - {name: citizen_id, element: citizen_id, doc: 公民身份号码}
  - {name: name, element: person_name, doc: 姓名}
  - {name: enrolled_on, element: event_date, doc: 入学日期}
  - {name: region, element: region_code, doc: 学校所在区}
"""
RAW = {"type": "record", "name": "Xjzc", "namespace": "gov.edu.raw", "fields": [
    {"name": "XJH", "type": "string"}, {"name": "SFZH", "type": "string"},
    {"name": "XM", "type": "string"}, {"name": "RXRQ", "type": "string"},
    {"name": "XQ", "type": "string"}]}
MAPPING = """agency: edu
dataset: school_enrolment
version: 1
raw_schema: raw/edu/school_enrolment.avsc
fields:
  serial_no: {from: XJH}
  citizen_id: {from: SFZH}
  name: {from: XM}
  enrolled_on: {from: RXRQ, date_formats: ["%Y-%m-%d"]}
  region: {from: XQ, region: code_or_name}
"""


def test_add_an_agency_and_a_dataset_as_deploy_md_says(tmp_path: Path) -> None:
    catalog, schemas = tmp_path / "catalog", tmp_path / "schemas"
    shutil.copytree(REPO_ROOT / "catalog", catalog)
    shutil.copytree(REPO_ROOT / "schemas", schemas)
    dirs = ["--catalog", str(catalog), "--schemas", str(schemas)]
    runner = CliRunner()
    # 1. the agency
    agencies = catalog / "agencies.yaml"
    agencies.write_text(agencies.read_text(encoding="utf-8") + AGENCY, encoding="utf-8")
    # 2. the dataset, then its canonical schema
    (catalog / "datasets" / "school_enrolment.yaml").write_text(DATASET, encoding="utf-8")
    stale = runner.invoke(cli, ["catalog", "schemas", *dirs])
    assert stale.exit_code == 1 and "school_enrolment.avsc" in stale.output
    wrote = runner.invoke(cli, ["catalog", "schemas", "--write", *dirs])
    assert wrote.exit_code == 0 and "wrote" in wrote.output, wrote.output
    assert (schemas / "canonical" / "school_enrolment.avsc").is_file()
    assert runner.invoke(cli, ["catalog", "schemas", *dirs]).exit_code == 0
    # 3. the agency's own format and its mapping
    (schemas / "raw" / "edu").mkdir()
    (schemas / "raw" / "edu" / "school_enrolment.avsc").write_text(json.dumps(RAW),
                                                                   encoding="utf-8")
    (catalog / "mappings" / "edu").mkdir()
    (catalog / "mappings" / "edu" / "school_enrolment.v1.yaml").write_text(
        MAPPING, encoding="utf-8")
    # 5. the check passes and the catalogue shows it
    check = runner.invoke(cli, ["catalog", "check", *dirs])
    assert check.exit_code == 0, check.output
    listed = json.loads(runner.invoke(cli, ["catalog", "list", "agencies", "--format", "json",
                                            *dirs]).output)
    edu = next(a for a in listed if a["id"] == "edu")
    assert edu["name"] == "广州市教育局" and edu["publishes"] == ["school_enrolment"]
    # a mapping naming a field the raw schema lacks is refused, naming the file
    (catalog / "mappings" / "edu" / "school_enrolment.v1.yaml").write_text(
        MAPPING.replace("{from: XQ,", "{from: XQQ,"), encoding="utf-8")
    bad = runner.invoke(cli, ["catalog", "check", *dirs])
    assert bad.exit_code == 2 and "school_enrolment" in bad.output
