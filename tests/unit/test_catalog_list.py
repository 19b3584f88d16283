"""``shulian catalog list``: agencies, datasets, elements and consumers in readable tables
and JSON, masks with their parameters, from the shipped catalogue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from shulian.catalog.listing import KINDS, describe_mask
from shulian.catalog.load import load_catalog
from shulian.catalog.models import (
    DropMask,
    GeneraliseRegionMask,
    HmacMask,
    KeepMask,
    NameMask,
    TruncateDateMask,
)
from shulian.cli.main import cli
from shulian.settings import REPO_ROOT

CATALOG = load_catalog(REPO_ROOT / "catalog", schemas_dir=REPO_ROOT / "schemas")


def test_masks_are_described_with_their_parameters() -> None:
    assert describe_mask(KeepMask(type="keep", first=3, last=4)) == "first 3 / last 4 kept"
    assert describe_mask(KeepMask(type="keep", last=4)) == "last 4 kept"
    assert describe_mask(KeepMask(type="keep")) == "all replaced by *"
    assert describe_mask(TruncateDateMask(type="truncate_date", to="month")) == (
        "truncated to the month")
    assert describe_mask(GeneraliseRegionMask(type="generalise_region", to="city")) == (
        "generalised to the city")
    assert "HMAC" in describe_mask(HmacMask(type="hmac"))
    assert "family name" in describe_mask(NameMask(type="name"))
    assert "dropped" in describe_mask(DropMask(type="drop"))


def test_json_lists_every_agency_dataset_element_and_entry() -> None:
    result = CliRunner().invoke(cli, ["catalog", "list", "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert set(doc) == set(KINDS)
    assert {a["id"] for a in doc["agencies"]} == set(CATALOG.agencies)
    assert {d["id"] for d in doc["datasets"]} == set(CATALOG.datasets)
    assert {e["id"] for e in doc["elements"]} == set(CATALOG.elements)
    assert {c["entry"] for c in doc["consumers"]} == {
        e.id for e in CATALOG.current_list.entries}
    tax = next(c for c in doc["consumers"] if c["entry"] == "amr-tax-licence")
    assert tax["consumer_name"] == CATALOG.agencies["tax"].name  # type: ignore[index]
    assert tax["masks"]["phone"] == "first 3 / last 4 kept"
    amr = next(a for a in doc["agencies"] if a["id"] == "amr")
    assert amr["publishes"] == ["business_licence"] and amr["region"] == "广州市"


@pytest.mark.parametrize("what", KINDS)
def test_each_table_prints_names_not_only_ids(what: str) -> None:
    result = CliRunner().invoke(cli, ["catalog", "list", what], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    if what in ("agencies", "consumers"):
        assert "广州市民政局" in result.output
    if what == "consumers":
        assert "first 3 / last 4 kept" in result.output
        assert f"sharing list v{CATALOG.current_list.version}" in result.output
    if what == "elements":
        assert "GB 11643" in result.output


def test_unknown_kind_is_refused() -> None:
    result = CliRunner().invoke(cli, ["catalog", "list", "citizens"])
    assert result.exit_code == 2 and "citizens" in result.output


def test_every_share_type_has_words_in_every_word_table(tmp_path: Path) -> None:
    """A new ShareType needs its words where lists are printed (docs/ARCHITECTURE.md); a
    verify entry once had none in the describer."""
    from shulian.catalog import describe, listing
    from shulian.catalog.models import ShareType
    from shulian.console.data import words
    from tests.fixtures.verify import verify_catalog

    for table in (listing.SHARE_TYPE_WORDS, describe._SHARE, words._SHARE):
        assert set(table) == set(ShareType)
    catalog = verify_catalog(tmp_path)
    verify = next(e for sl in catalog.sharing_lists.values() for e in sl.entries
                  if e.share_type is ShareType.VERIFY)
    assert "仅核验" in describe.describe_entry(verify, catalog)[0]
