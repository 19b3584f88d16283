"""Masks (脱敏) applied to canonical field values before a consumer sees them.

Every mask turns a non-null value into a string (a masked field is ``["null", "string"]`` in the
consumer view), ``None`` stays ``None``, and :class:`~shulian.catalog.models.DropMask` removes the
field from the view entirely (:func:`apply_mask` returns ``None`` for it; the policy omits the
field, the audit still lists it as dropped). Which masks fit which element type is the element
type's spec (:func:`shulian.catalog.specs.mask_fits`).

- ``keep(first, last)``: the middle replaced by ``*``, same length. When ``first + last`` reaches
  the length, everything is masked: a short value never reveals more than it hides.
- ``name``: family name + one ``*`` per remaining character (张三丰 -> 张**, 李四 -> 李*); a
  single-character name becomes ``*``. Compound surnames (欧阳) are not recognised.
- ``hmac``: hex HMAC-SHA256 of the value's canonical string form (:func:`canonical_text`),
  keyed per consumer with :func:`consumer_key`. One consumer can join its own rows on it;
  two consumers get different values for the same input and so cannot join with each other.
- ``truncate_date``: ``year`` -> ``"2020"``, ``month`` -> ``"2020-12"``; timestamps are
  converted to Asia/Shanghai first (the calendar an agency means).
- ``generalise_region``: ``city`` -> first 4 digits + ``"00"`` (440106 -> 440100),
  ``province`` -> first 2 digits + ``"0000"`` (440106 -> 440000); municipalities the same
  (110105 -> 110100 / 110000).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import UTC, date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from shulian.catalog.models import (
    DropMask,
    ElementType,
    GeneraliseRegionMask,
    HmacMask,
    KeepMask,
    Mask,
    NameMask,
    TruncateDateMask,
)
from shulian.catalog.specs import mask_fits

__all__ = [
    "CONSUMER_KEY_LABEL",
    "MaskFn",
    "apply_mask",
    "canonical_text",
    "consumer_key",
    "masker",
]

CONSUMER_KEY_LABEL = b"shulian-consumer:"
"""Domain-separation prefix of the per-consumer HMAC key derivation."""

SHANGHAI = ZoneInfo("Asia/Shanghai")

MaskFn = Callable[[object], object]

@lru_cache(maxsize=1024)
def consumer_key(master_key: bytes, consumer: str) -> bytes:
    """The consumer's HMAC key: ``HMAC-SHA256(master_key, b"shulian-consumer:" + consumer)``.

    Derived, never stored: rotating ``master_key`` changes every consumer's pseudonyms at once.
    """
    return hmac.new(master_key, CONSUMER_KEY_LABEL + consumer.encode("utf-8"), "sha256").digest()


def canonical_text(value: object) -> str:
    """The canonical string form a value is hashed in.

    str as is; int as decimal; ``date`` as ``YYYY-MM-DD``; ``datetime`` as UTC RFC 3339 with
    milliseconds (``2020-12-31T16:00:00.000Z``; a naive datetime is taken as UTC).
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):  # before int: bool is an int
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return _rfc3339_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _rfc3339_utc(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def _keep(first: int, last: int) -> MaskFn:
    def fn(value: object) -> object:
        if value is None:
            return None
        text = value if isinstance(value, str) else canonical_text(value)
        n = len(text)
        if first + last >= n:
            return "*" * n
        return text[:first] + "*" * (n - first - last) + (text[n - last :] if last else "")

    return fn


def _name(value: object) -> object:
    if value is None:
        return None
    text = value if isinstance(value, str) else canonical_text(value)
    if len(text) <= 1:
        return "*" * len(text)
    return text[0] + "*" * (len(text) - 1)


def _hmac(key: bytes) -> MaskFn:
    def fn(value: object) -> object:
        if value is None:
            return None
        return hmac.new(key, canonical_text(value).encode("utf-8"), "sha256").hexdigest()

    return fn


def _truncate_date(to: str) -> MaskFn:
    width = 4 if to == "year" else 7

    def fn(value: object) -> object:
        if value is None:
            return None
        if isinstance(value, datetime):
            local = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(SHANGHAI)
            return local.date().isoformat()[:width]
        if isinstance(value, date):
            return value.isoformat()[:width]
        raise TypeError(f"truncate_date needs a date or datetime, got {type(value).__name__}")

    return fn


def _generalise_region(to: str) -> MaskFn:
    keep = 4 if to == "city" else 2

    def fn(value: object) -> object:
        if value is None:
            return None
        text = value if isinstance(value, str) else canonical_text(value)
        if len(text) != 6 or not text.isascii() or not text.isdigit():
            # not a GB/T 2260 code (cannot happen after element checks): reveal nothing
            return "*" * len(text)
        return text[:keep] + "0" * (6 - keep)

    return fn


def _drop(value: object) -> object:
    return None


def masker(mask: Mask, *, consumer: str, master_key: bytes) -> MaskFn:
    """A function applying ``mask`` for ``consumer``; build once, call per record."""
    if isinstance(mask, KeepMask):
        return _keep(mask.first, mask.last)
    if isinstance(mask, NameMask):
        return _name
    if isinstance(mask, HmacMask):
        return _hmac(consumer_key(master_key, consumer))
    if isinstance(mask, TruncateDateMask):
        return _truncate_date(mask.to)
    if isinstance(mask, GeneraliseRegionMask):
        return _generalise_region(mask.to)
    if isinstance(mask, DropMask):
        return _drop
    raise TypeError(f"unknown mask {mask!r}")


def apply_mask(
    mask: Mask,
    value: object,
    *,
    element_type: ElementType,
    consumer: str,
    master_key: bytes,
) -> object:
    """Mask one value for one consumer (``None`` stays ``None``; ``drop`` gives ``None``).

    Raises ``ValueError`` if the mask does not fit ``element_type`` (see :func:`mask_fits`):
    the catalogue check rejects such lists, so reaching it here is a programming error.
    """
    why = mask_fits(mask, element_type)
    if why is not None:
        raise ValueError(why)
    return masker(mask, consumer=consumer, master_key=master_key)(value)
