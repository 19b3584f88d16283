"""Supersession in source order: which of two records for one verification lookup key the store
keeps (docs/VERIFY.md, "Supersession"). Pure: no Kafka.

Canonical records are partitioned by their dataset key (a serial number), not by the lookup key
(a citizen ID), so two records of one person may be decided by different workers and reach
``changelog.verify.<dataset>`` in either order. The store must not keep "the last one to
arrive": it keeps the one that is **newest at the source**, by :class:`SourceOrder`:

1. ``at_ms``   the record's source time: the dataset's ``order_by`` field (``recorded_at`` for
               household_change: when the agency registered the change), else the canonical
               record's Kafka timestamp (when the agency's record entered the chain);
2. ``key``     the record's dataset key as canonical text (the serial number: agencies number
               later registrations higher), so two records of one instant are still ordered;
3. ``deleted`` a deletion beats an update of the same instant and serial number;
4. ``digest``  the first 16 hex digits of SHA-256 of the stored bytes: two different values
               that agree on all the above are still ordered, the same way everywhere.

This is a total order, so any arrival order of the same records folds to the same store
(a hypothesis property holds it: tests/unit/test_supersede.py). The order travels with every
changelog record (value or tombstone) in the ``shulian.order`` header; a record without one
(written before this order existed) is taken in arrival order, as before.

A record that arrives *after* a newer one for its key is ignored by the fold and reported as
late: compaction keeps the last record per key by offset, so the holder of the store writes the
newer record again (:attr:`StoreFold.late`), and a store rebuilt after compaction still holds it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from shulian.logic.masking import canonical_text

__all__ = ["SourceOrder", "StoreFold", "order_of", "source_ms"]

_DAY_MS = 86_400_000


@dataclass(frozen=True, order=True, slots=True)
class SourceOrder:
    at_ms: int
    key: str
    deleted: bool
    digest: str

    def encode(self) -> bytes:
        return json.dumps([self.at_ms, self.key, int(self.deleted), self.digest],
                          ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    @classmethod
    def decode(cls, raw: bytes | None) -> SourceOrder | None:
        """None for a missing or unreadable header (the record is taken in arrival order)."""
        if not raw:
            return None
        try:
            at, key, deleted, digest = json.loads(raw)
        except (ValueError, TypeError):
            return None
        if (type(at) is not int or not isinstance(key, str) or deleted not in (0, 1)
                or not isinstance(digest, str)):
            return None
        return cls(at, key, bool(deleted), digest)


def source_ms(value: object) -> int | None:
    """A source time field's value as epoch milliseconds (a date: its UTC midnight); None when
    it is not a time."""
    if isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        at = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return int(at.timestamp() * 1000)
    if isinstance(value, date):
        return (value - date(1970, 1, 1)).days * _DAY_MS
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return source_ms(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def order_of(record: Mapping[str, Any], *, order_by: str | None, record_key: Sequence[str],
             fallback_ms: int, stored: bytes | None) -> SourceOrder:
    """The source order of ``record`` (stored as ``stored``; None: a deletion)."""
    at = source_ms(record.get(order_by)) if order_by else None
    key = "|".join(canonical_text(record.get(k)) for k in record_key)
    # 64 bits of SHA-256: a tie-break among records that agree on time and serial number
    # (the whole digest would add 48 bytes to every key the stores hold)
    digest = hashlib.sha256(stored).hexdigest()[:16] if stored is not None else ""
    return SourceOrder(fallback_ms if at is None else at, key, stored is None, digest)


_VALUE, _DELETED = b"V", b"D"


class StoreFold:
    """key -> the newest value at the source (deleted keys remember their deletion's order, so
    an older record arriving later cannot bring them back).

    Each entry is one bytes object: the encoded order, a newline, then ``V`` + value or ``D``
    (one object per key keeps a million keys in a few hundred MB)."""

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._deleted = 0
        self.late: set[bytes] = set()
        """Keys whose latest arrival was older than the record held: write the held one again
        (:meth:`held`) so compaction keeps it. Cleared by the caller once written."""

    def get(self, key: bytes) -> bytes | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        body = entry[entry.index(b"\n") + 1:]
        return body[1:] if body[:1] == _VALUE else None

    def __len__(self) -> int:
        return len(self._data) - self._deleted

    def held(self, key: bytes) -> tuple[bytes | None, bytes | None] | None:
        """(value or None for a deletion, encoded order or None) of what ``key`` holds."""
        entry = self._data.get(key)
        if entry is None:
            return None
        order, _, body = entry.partition(b"\n")
        return (body[1:] if body[:1] == _VALUE else None), (order or None)

    def apply(self, key: bytes, value: bytes | None, order: bytes | None) -> bool:
        """Fold one changelog record in; False when it is older than the record held (ignored,
        and ``key`` is marked late). Orders are decoded only when both records have one (an
        unreadable order counts as none: arrival order)."""
        entry = self._data.get(key)
        was_deleted = False
        if entry is not None:
            cut = entry.index(b"\n")
            was_deleted = entry[cut + 1:cut + 2] == _DELETED
            if cut and order:
                new, old = SourceOrder.decode(order), SourceOrder.decode(entry[:cut])
                if new is not None and old is not None and new < old:
                    self.late.add(key)
                    return False
        if self.late:
            self.late.discard(key)
        if value is None and not order:  # a deletion in arrival order: nothing to remember
            if entry is not None:
                del self._data[key]
                self._deleted -= was_deleted
            return True
        self._data[key] = (order or b"") + b"\n" + (_DELETED if value is None else _VALUE + value)
        self._deleted += (value is None) - was_deleted
        return True

    def snapshot(self) -> dict[bytes, bytes]:
        """Every live key and value (tests, small stores)."""
        return {k: v for k in self._data if (v := self.get(k)) is not None}
