"""Connector configs are checked against the catalogue: agencies, datasets, egress topics."""

from __future__ import annotations

from pathlib import Path

import yaml

from shulian.catalog.load import load_catalog
from shulian.connectors.catalog_refs import check_connector_refs
from shulian.connectors.config import load_connector_files
from shulian.settings import REPO_ROOT, load_settings

EXAMPLES = REPO_ROOT / "connectors" / "examples"


def _catalog():  # type: ignore[no-untyped-def]
    s = load_settings()
    return load_catalog(s.catalog_dir, schemas_dir=s.schemas_dir)


def _variant(tmp: Path, example: str, change: dict[str, object]) -> Path:
    data = yaml.safe_load((EXAMPLES / example).read_text("utf-8"))
    data.update(change)
    out = tmp / example
    out.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    return out


def test_every_example_config_refers_to_the_catalogue() -> None:
    loaded = load_connector_files(sorted(EXAMPLES.glob("*.yaml")), check_env=False)
    assert check_connector_refs(loaded, _catalog()) == []


def test_dangling_references_are_named_by_file_and_field(tmp_path: Path) -> None:
    files = [
        _variant(tmp_path, "source-amr-filedrop.yaml", {"dataset": "household_change"}),
        _variant(tmp_path, "sink-tax-postgres.yaml",
                 {"topics": ["egress.tax.business_licence", "egress.nobody.nothing",
                             "raw.amr.business_licence"]}),
    ]
    issues = check_connector_refs(load_connector_files(files, check_env=False), _catalog())
    got = {(Path(i.file).name, i.field): i.why for i in issues}
    assert set(got) == {("source-amr-filedrop.yaml", "dataset"),
                        ("sink-tax-postgres.yaml", "topics.1"),
                        ("sink-tax-postgres.yaml", "topics.2")}
    assert "no mapping for dataset 'household_change'" in got[("source-amr-filedrop.yaml",
                                                               "dataset")]
    assert "not an egress" in got[("sink-tax-postgres.yaml", "topics.2")]
