"""TIME parsing and window resolution (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shulian.audit.window import OffsetRange, Window, parse_time, resolve_offsets, to_ms

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("-15m", NOW - timedelta(minutes=15)),
        ("-2h", NOW - timedelta(hours=2)),
        ("-1d", NOW - timedelta(days=1)),
        ("-30s", NOW - timedelta(seconds=30)),
        ("2026-03-01T08:00:00", datetime(2026, 3, 1, 0, 0, tzinfo=UTC)),  # Asia/Shanghai
        ("2026-03-01T08:00:00+00:00", datetime(2026, 3, 1, 8, 0, tzinfo=UTC)),
        ("2026-03-01T08:00:00Z", datetime(2026, 3, 1, 8, 0, tzinfo=UTC)),
        ("2026-03-01", datetime(2026, 2, 28, 16, 0, tzinfo=UTC)),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    assert parse_time(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "-15x", "15m", "2026-13-01"])
def test_parse_time_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="not a time"):
        parse_time(text, now=NOW)


def test_window_bounds_inclusive_and_open() -> None:
    win = Window(100, 200)
    assert [win.contains(t) for t in (99, 100, 200, 201)] == [False, True, True, False]
    assert Window(None, 200).contains(-5) and Window(100, None).contains(10**15)
    assert Window().unbounded


def test_window_refuses_reversed() -> None:
    with pytest.raises(ValueError, match="ends before it starts"):
        Window.parse("-1h", "-2h", now=NOW)


def test_window_parse_relative() -> None:
    win = Window.parse("-1h", "now", now=NOW)
    assert win == Window(to_ms(NOW - timedelta(hours=1)), to_ms(NOW))


def test_resolve_offsets_by_timestamps() -> None:
    points = [(0, 10), (1, 20), (3, 30), (4, 40), (7, 50)]  # offsets may skip
    assert resolve_offsets(points, Window(20, 40)) == OffsetRange(1, 4)
    assert resolve_offsets(points, Window(41, 49)) is None
    assert resolve_offsets(points, Window(None, 10)) == OffsetRange(0, 0)
    assert resolve_offsets([], Window(0, 1)) is None


def test_resolve_offsets_unordered_timestamps_span_first_to_last() -> None:
    points = [(0, 50), (1, 10), (2, 60), (3, 15)]
    rng = resolve_offsets(points, Window(0, 20))
    assert rng == OffsetRange(1, 3)
    assert 2 in rng and 4 not in rng


def test_to_ms_is_exact_to_the_millisecond() -> None:
    base = datetime(2026, 3, 1, tzinfo=UTC)
    for ms in range(0, 100_000, 7):
        ts = base + timedelta(milliseconds=ms)
        assert to_ms(ts) == to_ms(base) + ms
        assert to_ms(ts + timedelta(microseconds=999)) == to_ms(base) + ms  # sub-ms floors
        assert parse_time(ts.isoformat()) == ts
