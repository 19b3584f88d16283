"""The demo's printing and scenario split: catalogue names, a legend for every code, wire
garbage broken down, every line within 80 columns; ``--records N`` publishes N."""

from __future__ import annotations

import io
from collections import Counter

import pytest
from click.testing import CliRunner
from rich.cells import cell_len
from rich.console import Console

from shulian.audit.deadletters import DeadLetter
from shulian.catalog.load import load_catalog
from shulian.cli.demo_view import render
from shulian.cli.main import cli
from shulian.io.publish import GARBAGE_KINDS, PublishTally
from shulian.logic.reasons import reason_words
from shulian.scenario import Measured, shares
from shulian.settings import REPO_ROOT

CATALOG = load_catalog(REPO_ROOT / "catalog", schemas_dir=REPO_ROOT / "schemas")
PAIRS = sorted(CATALOG.mappings)


def _dead(reason: str, n: int, field: str | None = None) -> list[DeadLetter]:
    return [DeadLetter(ts_ms=0, agency="psb", dataset="household_change", reason=reason,
                       field=field, check=None, detail="", size=3,
                       source=f"raw.psb.household_change[0]@{reason}{i}",
                       deadletter=f"deadletter.psb.household_change[0]@{i}")
            for i in range(n)]


def _scenario() -> tuple[PublishTally, Measured]:
    tally = PublishTally()
    for pair in PAIRS:
        tally.valid[pair] = 57
        tally.invalid[pair] = 3
        tally.garbage[pair] = 5
        for kind, reason, _ in GARBAGE_KINDS:
            tally.garbage_kinds[(kind, reason)] += 1
    decisions = []
    for e in CATALOG.current_list.entries:
        decisions.append({"consumer": e.consumer, "dataset": e.dataset, "decision": "deliver",
                          "reason": None})
        decisions.append({"consumer": e.consumer, "dataset": e.dataset,
                          "decision": "withhold", "reason": "row_filter_false"})
    decisions.append({"consumer": "civil", "dataset": "household_change",
                      "decision": "withhold", "reason": "share_type_none"})
    dead = (_dead("element_check_failed", 12, "citizen_id") + _dead("bad_wire_format", 12)
            + _dead("empty_value", 4) + _dead("unknown_schema_id", 4))
    return tally, Measured(decisions=decisions, dead=dead, breaks=0, partitions=9)


def _render() -> str:
    buf = io.StringIO()
    tally, got = _scenario()
    render(Console(file=buf, width=80, force_terminal=False), CATALOG, tally, got)
    return buf.getvalue()


def test_tables_fit_80_columns_name_agencies_and_explain_every_code() -> None:
    out = _render()
    too_wide = [line for line in out.splitlines() if cell_len(line) > 80]
    assert not too_wide, too_wide
    for agency in {a for a, _ in PAIRS} | {e.consumer for e in CATALOG.current_list.entries}:
        # every agency by its catalogue name (rich may wrap a long name inside its cell)
        name = CATALOG.agencies[agency].name  # type: ignore[index]
        assert name[:4] in out, name
    for code in ("row_filter_false", "share_type_none", "element_check_failed",
                 "bad_wire_format", "empty_value", "unknown_schema_id"):
        assert f"{code}: {reason_words(code).zh}\n    {reason_words(code).en}\n" in out, code
    for kind, reason, _ in GARBAGE_KINDS:
        assert f"x {kind} (must be dead-lettered as {reason})" in out
    assert "fields named: citizen_id 12" in out
    assert "audit: " in out and ", 0 breaks" in out


@pytest.mark.parametrize("records", [1, 7, 59, 260, 1001])
def test_records_means_records_published_in_all(records: int) -> None:
    split = shares(PAIRS, records, 5)
    assert sum(n + g for n, g in split.values()) == records
    assert max(n + g for n, g in split.values()) - min(n + g for n, g in split.values()) <= 1


def test_default_split_is_the_audit_docs_scenario() -> None:
    # docs/AUDIT.md: 60 generated records and 5 wire garbage per agency dataset
    assert set(shares(PAIRS, 260, 5).values()) == {(60, 5)}


def test_namespace_needs_a_running_stack() -> None:
    result = CliRunner().invoke(cli, ["demo", "--namespace", "x"])
    assert result.exit_code == 2 and "only with --bootstrap" in result.output


def test_garbage_kinds_cover_what_the_legend_promises() -> None:
    reasons = Counter(reason for _, reason, _ in GARBAGE_KINDS)
    assert set(reasons) == {"empty_value", "bad_wire_format", "unknown_schema_id"}
