"""Time windows: ``TIME`` arguments and their resolution to offsets by record timestamps.

``TIME`` is ISO 8601 with or without a zone (no zone: Asia/Shanghai), a date alone (midnight,
Asia/Shanghai), ``now``, or relative to now: ``-30s``, ``-15m``, ``-2h``, ``-1d``.

A window ``[start, end]`` is inclusive at both ends and open where a bound is ``None``.
Offsets are found by reading, not by the broker's offsets-for-times (unreliable on the embedded
broker): :func:`resolve_offsets` takes the ``(offset, timestamp)`` pairs read from a partition.
Producer timestamps need not grow with offsets, so the offset range spans from the first record
inside the window to the last one, and :meth:`Window.contains` still filters inside that range.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

__all__ = ["DEFAULT_TZ", "OffsetRange", "Window", "parse_time", "resolve_offsets", "to_ms"]

DEFAULT_TZ = ZoneInfo("Asia/Shanghai")
_RELATIVE = re.compile(r"^-(\d+)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """A timezone-aware datetime for a ``TIME`` argument; ``ValueError`` says what is wrong."""
    value = text.strip()
    current = now if now is not None else datetime.now(UTC)
    if value.lower() == "now":
        return current
    rel = _RELATIVE.match(value.lower())
    if rel is not None:
        amount, unit = int(rel.group(1)), rel.group(2)
        return current - timedelta(**{_UNITS[unit]: amount})
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z")
                                        else value)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use ISO 8601 (2026-03-01T08:00, zone optional, default "
            "Asia/Shanghai), 'now' or a relative time like -15m, -2h, -1d"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=DEFAULT_TZ)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ms(ts: datetime) -> int:
    """Milliseconds since the epoch (Kafka timestamps), exactly: integer arithmetic, so
    ``...T08:00:00.123`` is 123 ms and never 122 by a float's rounding (sub-ms parts floor)."""
    aware = ts if ts.tzinfo is not None else ts.replace(tzinfo=DEFAULT_TZ)
    return (aware - _EPOCH) // timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class Window:
    """``[start, end]`` in epoch milliseconds, either bound open when ``None``."""

    start_ms: int | None = None
    end_ms: int | None = None

    @classmethod
    def of(cls, start: datetime | None, end: datetime | None) -> Window:
        win = cls(None if start is None else to_ms(start), None if end is None else to_ms(end))
        if win.start_ms is not None and win.end_ms is not None and win.start_ms > win.end_ms:
            raise ValueError("the window ends before it starts (--from is after --to)")
        return win

    @classmethod
    def parse(cls, start: str | None, end: str | None, *, now: datetime | None = None) -> Window:
        current = now if now is not None else datetime.now(UTC)
        return cls.of(None if start is None else parse_time(start, now=current),
                      None if end is None else parse_time(end, now=current))

    @property
    def unbounded(self) -> bool:
        return self.start_ms is None and self.end_ms is None

    def contains(self, ts_ms: int) -> bool:
        if self.start_ms is not None and ts_ms < self.start_ms:
            return False
        return self.end_ms is None or ts_ms <= self.end_ms

    def describe(self) -> str:
        def fmt(ms: int | None) -> str:
            if ms is None:
                return "..."
            return datetime.fromtimestamp(ms / 1000, DEFAULT_TZ).isoformat(timespec="seconds")

        return f"[{fmt(self.start_ms)}, {fmt(self.end_ms)}]"


@dataclass(frozen=True, slots=True)
class OffsetRange:
    """Offsets ``first..last`` (inclusive) of one partition that hold the window's records."""

    first: int
    last: int

    def __contains__(self, offset: object) -> bool:
        return isinstance(offset, int) and self.first <= offset <= self.last


def resolve_offsets(points: Iterable[tuple[int, int]], window: Window) -> OffsetRange | None:
    """The offset range of the records inside ``window``, from ``(offset, timestamp_ms)`` pairs
    in offset order; ``None`` when no record of the partition falls inside."""
    first: int | None = None
    last: int | None = None
    for offset, ts in points:
        if window.contains(ts):
            if first is None:
                first = offset
            last = offset
    if first is None or last is None:
        return None
    return OffsetRange(first, last)
