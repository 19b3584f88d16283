"""The decision clock: the one source of "now" for every decision that depends on the date.

Decisions that depend on the date (a list entry's and an approval's validity, a citizen id's
birth date not in the future, the time a replay stamps on its audit records) take a
:class:`Clock`, passed explicitly from the process's settings down to the stage that decides.
Timeouts, deadlines and Kafka's record timestamps are physical time and stay on the system
clock.

``SHULIAN_CLOCK`` (``Settings.clock``) chooses it; it is a test and drill facility, never a
production setting:

- unset, empty or ``system``: the system clock;
- an ISO 8601 instant with a zone (``2026-11-26T10:00:00+08:00``): a fixed clock, every decision
  taken at that instant;
- a signed offset (``+200d``, ``-36h``, ``+90m``, ``-30s``): the system clock moved by it.

A process whose clock is not the system clock logs ``clock.injected`` (with :attr:`label`) at
start, so whoever reads its log sees that its decisions were not taken at the wall-clock time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = [
    "DEMO_CLOCK", "SYSTEM_CLOCK", "Clock", "FixedClock", "OffsetClock", "SystemClock",
    "parse_clock",
]

_OFFSET = re.compile(r"^([+-])(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class Clock(Protocol):
    """Where "now" comes from for decisions."""

    def now(self) -> datetime:
        """The current instant, timezone-aware (UTC)."""
        ...

    @property
    def label(self) -> str:
        """What this clock is, for logs (``system`` for the system clock)."""
        ...


@dataclass(frozen=True, slots=True)
class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    @property
    def label(self) -> str:
        return "system"


@dataclass(frozen=True, slots=True)
class FixedClock:
    at: datetime

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("a fixed clock needs a timezone-aware instant")

    def now(self) -> datetime:
        return self.at.astimezone(UTC)

    @property
    def label(self) -> str:
        return f"fixed {self.now().isoformat()}"


@dataclass(frozen=True, slots=True)
class OffsetClock:
    offset: timedelta

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    @property
    def label(self) -> str:
        return f"system {'+' if self.offset >= timedelta(0) else '-'}{abs(self.offset)}"


SYSTEM_CLOCK: Clock = SystemClock()

DEMO_CLOCK = "2026-11-26T10:00:00+08:00"
"""An instant inside the validity of every entry and approval of the shipped example list
(catalog/sharing; a test holds it there). ``shulian demo`` and the benchmark decide at it, so
what they print does not change when an example approval ends; a stack you run yourself
(``shulian up``, ``shulian worker``) decides by the system clock."""


def parse_clock(text: str | None) -> Clock:
    """The clock ``SHULIAN_CLOCK`` names (module docstring); ``ValueError`` says what is
    wrong."""
    value = (text or "").strip()
    if value in ("", "system"):
        return SYSTEM_CLOCK
    off = _OFFSET.match(value)
    if off is not None:
        sign, n, unit = off.groups()
        delta = timedelta(**{_UNITS[unit]: int(n)})
        return OffsetClock(-delta if sign == "-" else delta)
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise ValueError(
            f"{value!r} is not a clock: use 'system', an ISO 8601 instant with a zone "
            "(2026-11-26T10:00:00+08:00) or a signed offset (+200d, -36h, +90m, -30s)")
    return FixedClock(at)
