"""Rate limits of verification (pure: the time is passed in, the state is in memory).

Two limits per verify entry, both from the list (``verify.rate_limit``, with the reason in
words):

- ``claims_per_minute``: claims one consumer may ask under the entry per calendar minute;
- ``distinct_claims_per_key_per_day``: different claims about one key per day (Asia/Shanghai).
  The same claim asked again does not count twice (a retry is free), but trying one value after
  another for a key's name or birth date stops after N guesses: the API cannot be used to
  enumerate a stored value.

A request is decided as a whole: either every claim in it fits both limits and all are counted,
or none is counted and the request is refused (429) naming the limit and its reason.

Keys are given as the keyed digests the audit records carry, so a restarted gateway counts
again what its audit says was admitted today (:meth:`RateLimiter.count`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from shulian.catalog.models import VerifyRateLimit

__all__ = ["Limited", "RateLimiter", "day_start"]

_DAY_TZ = ZoneInfo("Asia/Shanghai")


def day_start(now: datetime) -> datetime:
    """The start of the limits' day (Asia/Shanghai) that ``now`` falls in."""
    return now.astimezone(_DAY_TZ).replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class Limited:
    """A refusal: which limit, its value and the list's reason for it."""

    limit: str  # "claims_per_minute" | "distinct_claims_per_key_per_day"
    value: int
    reason: str
    retry_after_s: int


@dataclass
class _Window:
    period: str = ""  # the minute or the day the counts are for
    counts: dict[str, int] = field(default_factory=dict)
    seen: dict[str, set[str]] = field(default_factory=dict)


class RateLimiter:
    """Counts per (entry, consumer) per minute and per (entry, key) per day."""

    def __init__(self) -> None:
        self._minute: dict[str, _Window] = {}  # entry id -> window
        self._day: dict[str, _Window] = {}

    @staticmethod
    def _roll(windows: dict[str, _Window], entry: str, period: str) -> _Window:
        w = windows.get(entry)
        if w is None or w.period != period:
            w = windows[entry] = _Window(period)
        return w

    def admit(self, *, entry: str, consumer: str, limits: VerifyRateLimit, now: datetime,
              claims: Iterable[tuple[str, str]]) -> Limited | None:
        """``claims``: (store key, claim fingerprint) per claim of the request. None and every
        claim counted, or the limit it would break (nothing counted)."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        local = now.astimezone(_DAY_TZ)
        items = list(claims)
        minute = self._roll(self._minute, entry, local.strftime("%Y-%m-%dT%H:%M"))
        used = minute.counts.get(consumer, 0)
        if used + len(items) > limits.claims_per_minute:
            return Limited("claims_per_minute", limits.claims_per_minute, limits.reason,
                           60 - local.second)
        day = self._roll(self._day, entry, local.date().isoformat())
        fresh: dict[str, set[str]] = {}
        for key, fingerprint in items:
            known = day.seen.get(key, set())
            if fingerprint not in known:
                fresh.setdefault(key, set()).add(fingerprint)
        for key, new in fresh.items():
            if len(day.seen.get(key, ())) + len(new) > limits.distinct_claims_per_key_per_day:
                left = 86400 - (local.hour * 3600 + local.minute * 60 + local.second)
                return Limited("distinct_claims_per_key_per_day",
                               limits.distinct_claims_per_key_per_day, limits.reason, left)
        minute.counts[consumer] = used + len(items)
        for key, new in fresh.items():
            day.seen.setdefault(key, set()).update(new)
        return None

    def count(self, *, entry: str, consumer: str, at: datetime,
              claims: Iterable[tuple[str, str]]) -> None:
        """Count claims admitted at ``at`` without judging them (a restart reading its audit
        back, in time order). A window only rolls forward: claims of an earlier minute or day
        than the one counted are ignored."""
        local = at.astimezone(_DAY_TZ)
        items = list(claims)
        minute_p, day_p = local.strftime("%Y-%m-%dT%H:%M"), local.date().isoformat()
        if minute_p >= self._minute.get(entry, _Window()).period:
            minute = self._roll(self._minute, entry, minute_p)
            minute.counts[consumer] = minute.counts.get(consumer, 0) + len(items)
        if day_p >= self._day.get(entry, _Window()).period:
            day = self._roll(self._day, entry, day_p)
            for key, fingerprint in items:
                day.seen.setdefault(key, set()).add(fingerprint)
