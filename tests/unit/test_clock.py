"""The decision clock: SHULIAN_CLOCK's forms, its refusal of anything else, and the demo clock
held inside the shipped example list (so the demo and the tests do not change with the date)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from shulian.catalog.load import load_catalog
from shulian.clock import (
    DEMO_CLOCK,
    SYSTEM_CLOCK,
    FixedClock,
    OffsetClock,
    parse_clock,
)
from shulian.logic.policy import PolicyEngine
from shulian.settings import REPO_ROOT, load_settings


def test_forms() -> None:
    assert parse_clock(None) is SYSTEM_CLOCK
    assert parse_clock("") is SYSTEM_CLOCK
    assert parse_clock("system") is SYSTEM_CLOCK
    fixed = parse_clock("2027-06-01T12:00:00+08:00")
    assert fixed == FixedClock(datetime(2027, 6, 1, 4, 0, tzinfo=UTC))
    assert fixed.now() == datetime(2027, 6, 1, 4, 0, tzinfo=UTC)
    assert fixed.now().tzinfo is UTC
    assert fixed.label == "fixed 2027-06-01T04:00:00+00:00"
    assert parse_clock("+200d") == OffsetClock(timedelta(days=200))
    assert parse_clock("-36h") == OffsetClock(timedelta(hours=-36))
    assert parse_clock("+90m") == OffsetClock(timedelta(minutes=90))
    moved = parse_clock("+200d").now() - SYSTEM_CLOCK.now()
    assert timedelta(days=199) < moved < timedelta(days=201)
    assert parse_clock("-30s").label == "system -0:00:30"


@pytest.mark.parametrize("bad", ["2027-06-01T12:00:00", "tomorrow", "200d", "+2w", "now"])
def test_anything_else_is_refused_naming_the_forms(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a clock: use 'system'"):
        parse_clock(bad)
    with pytest.raises(ValidationError, match="clock"):
        load_settings(clock=bad)


def test_settings_default_to_the_system_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHULIAN_CLOCK", raising=False)
    assert load_settings().decision_clock() is SYSTEM_CLOCK
    assert load_settings(clock=DEMO_CLOCK).decision_clock() == parse_clock(DEMO_CLOCK)


def test_demo_clock_is_inside_every_entry_and_approval_of_the_shipped_lists() -> None:
    """Every shipped version: no entry is expired or not yet valid at the demo clock, so the
    demo's and the tests' decisions are those of the list, not of the calendar."""
    catalog = load_catalog(REPO_ROOT / "catalog", schemas_dir=REPO_ROOT / "schemas")
    at = parse_clock(DEMO_CLOCK).now()
    sl = catalog.current_list
    for entry in sl.entries:
        assert entry.valid_from <= at, entry.id
        assert entry.valid_to is None or at < entry.valid_to, entry.id
        if entry.approval is not None:
            assert entry.approval.valid_from <= at < entry.approval.valid_to, entry.id
    engine = PolicyEngine(catalog=catalog, sharing_list=sl, master_key=b"k")
    assert engine.list_version == sl.version

