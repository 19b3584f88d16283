"""Data element checks and normalisers, one per :class:`~shulian.catalog.models.ElementType`
(each joined to its type in :data:`shulian.catalog.specs.SPECS`).

Pure functions: a raw value in, ``Accepted(canonical value)`` or ``Rejected`` out. Canonical
values are what fastavro encodes for the canonical schema (see :mod:`shulian.catalog.avro`):

============  =============================================================================
type          accepted input -> canonical value
============  =============================================================================
citizen_id    str (or int) of 18 chars (GB 11643 check digit, ``x`` uppercased) or the 15-digit
              legacy form (converted: ``"19"`` inserted after the region, check computed);
              birth date (chars 7-14) must be a real date between 1880 and today (decision clock)
credit_code   str of 18 chars from ``0-9 A-H J-N P-R T-U W-Y`` with the GB 32100 check char
region_code   str/int of 6 digits present in the GB/T 2260 table; a *retired* code is rejected
              here (``retired_code``), the mapping's ``region`` option converts it
sex           ``0 1 2 9`` (GB/T 2261.1) as str or int -> str
date          ``datetime.date`` or ``YYYY-MM-DD`` -> ``date``
timestamp     ``datetime`` (naive = the element's timezone) or ISO 8601 -> aware UTC ``datetime``
              truncated to milliseconds
money_fen     int >= 0 (or a str of digits) -> int
integer       int (or a str of an integer) within Avro long -> int
text          str, full-width ASCII folded to half-width, trimmed, ``max_length`` checked
person_name   as text, must be non-empty and free of control characters and digits
code          str/int in the element's ``codes`` -> str
phone         mainland mobile (11 digits, ``1[3-9]``) or fixed line (``0`` + 9-11 digits);
              separators ``space - ( )`` and a ``+86`` prefix removed -> digits only
============  =============================================================================

Rejections use :attr:`Reason.ELEMENT_CHECK_FAILED` with ``check`` set (``type``, ``length``,
``charset``, ``check_digit``, ``birth_date``, ``code_table``, ``retired_code``, ``code_list``,
``range``, ``format``, ``empty``) and never carry the offending value in ``detail``: it may be
personal data. ``field`` is left ``None``; the harmoniser fills in the canonical field name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from operator import mul
from time import monotonic
from zoneinfo import ZoneInfo

from shulian.clock import Clock
from shulian.result import Reason, Rejected

__all__ = [
    "CITIZEN_ID_WEIGHTS",
    "CREDIT_CHARSET",
    "CREDIT_WEIGHTS",
    "Normaliser",
    "citizen_id_check",
    "citizen_id_check_char",
    "code_check",
    "credit_code",
    "credit_code_check_char",
    "date_check",
    "fold_width",
    "integer",
    "money_fen",
    "person_name_check",
    "phone",
    "region_code_check",
    "sex",
    "text_check",
    "timestamp_check",
    "upgrade_citizen_id_15",
]

Normaliser = Callable[[object], object]
"""Returns the canonical value, or a :class:`Rejected` (never a valid canonical value)."""

CITIZEN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CITIZEN_CHECK = "10X98765432"
CREDIT_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_CREDIT_VALUE = {c: i for i, c in enumerate(CREDIT_CHARSET)}
_CREDIT_TABLE = bytes(_CREDIT_VALUE.get(chr(b), 0) for b in range(256))
_ZERO_WEIGHTED = ord("0") * sum(CITIZEN_ID_WEIGHTS)
_DIGITS = frozenset("0123456789")
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_SEX_CODES = frozenset({"0", "1", "2", "9"})
_EARLIEST_BIRTH = date(1880, 1, 1)
_PHONE_SEPARATORS = str.maketrans("", "", " -()")

# U+FF01..U+FF5E (full-width ASCII) -> U+0021..U+007E; U+3000 ideographic space -> space
_FOLD = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


_FOLDABLE = re.compile("[\uff01-\uff5e\u3000]")


def fold_width(text: str) -> str:
    """Full-width ASCII (ＡＢＣ１２３，) and the ideographic space folded to half-width.

    Most text is either ASCII or has nothing to fold (Chinese names and addresses): a regex
    search answers that in C, where ``translate`` looks every character up in a dict."""
    if text.isascii() or _FOLDABLE.search(text) is None:
        return text
    return text.translate(_FOLD)


def citizen_id_check_char(first17: str) -> str:
    """GB 11643 check character of the first 17 digits."""
    total = sum(map(mul, first17.encode("ascii"), CITIZEN_ID_WEIGHTS)) - _ZERO_WEIGHTED
    return _CITIZEN_CHECK[total % 11]


def upgrade_citizen_id_15(legacy: str) -> str:
    """15-digit legacy number -> 18 characters: ``"19"`` after the region, check computed."""
    first17 = legacy[:6] + "19" + legacy[6:]
    return first17 + citizen_id_check_char(first17)


def credit_code_check_char(first17: str) -> str:
    """GB 32100 check character of the first 17 characters (all from :data:`CREDIT_CHARSET`)."""
    values = first17.encode("ascii").translate(_CREDIT_TABLE)
    total = sum(map(mul, values, CREDIT_WEIGHTS))
    return CREDIT_CHARSET[(31 - total % 31) % 31]


def _fail(check: str, detail: str) -> Rejected:
    return Rejected(Reason.ELEMENT_CHECK_FAILED, detail, None, check)


def _ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _type_fail(expected: str) -> Rejected:
    return _fail("type", f"expected {expected}")


def _as_text(value: object) -> str | None:
    """A str, or an int in long range as its decimal text; anything else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and _LONG_MIN <= value <= _LONG_MAX:
        return str(value)
    return None


_SHANGHAI = ZoneInfo("Asia/Shanghai")


class _Today:
    """Today in Asia/Shanghai by ``clock``, recomputed at most once a minute (the per-record
    hot path)."""

    __slots__ = ("_clock", "_today", "_until")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._until = 0.0
        self._today = date.min

    def __call__(self) -> date:
        now = monotonic()
        if now >= self._until:
            self._today = self._clock.now().astimezone(_SHANGHAI).date()
            self._until = now + 60.0
        return self._today


def citizen_id_check(clock: Clock) -> Normaliser:
    today = _Today(clock)

    def check(value: object) -> object:
        return _citizen_id(value, today)

    return check


def _citizen_id(value: object, today: Callable[[], date]) -> object:
    raw = _as_text(value)
    if raw is None:
        return _type_fail("a string")
    text = fold_width(raw).strip().upper()
    if len(text) == 15:
        if not _ascii_digits(text):
            return _fail("charset", "a 15-digit citizen id must be all digits")
        text = upgrade_citizen_id_15(text)
    elif len(text) != 18:
        return _fail("length", "a citizen id has 18 characters (or 15 in the legacy form)")
    elif not _ascii_digits(text[:17]) or not (text[17] in _DIGITS or text[17] == "X"):
        return _fail("charset", "a citizen id is 17 digits and a digit or X")
    elif citizen_id_check_char(text[:17]) != text[17]:
        return _fail("check_digit", "GB 11643 check character does not match")
    try:
        born = date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        return _fail("birth_date", "birth date in the citizen id is not a calendar date")
    if not _EARLIEST_BIRTH <= born <= today():
        return _fail("birth_date", "birth date in the citizen id is out of the plausible range")
    return text


def credit_code(value: object) -> object:
    if not isinstance(value, str):
        return _type_fail("a string")
    text = fold_width(value).strip().upper()
    if len(text) != 18:
        return _fail("length", "a unified social credit code has 18 characters")
    if any(c not in _CREDIT_VALUE for c in text):
        return _fail("charset", "a unified social credit code uses 0-9 A-H J-N P-R T-U W-Y")
    if credit_code_check_char(text[:17]) != text[17]:
        return _fail("check_digit", "GB 32100 check character does not match")
    return text


def region_code_check(
    regions: Mapping[str, str], retired: Mapping[str, str]
) -> Normaliser:
    def check(value: object) -> object:
        raw = _as_text(value)
        if raw is None:
            return _type_fail("a 6-digit string")
        text = fold_width(raw).strip()
        if len(text) != 6:
            return _fail("length", "a region code has 6 digits")
        if not _ascii_digits(text):
            return _fail("charset", "a region code has 6 digits")
        if text in regions:
            return text
        if text in retired:
            return _fail("retired_code", "retired GB/T 2260 code; convert it in the mapping")
        return _fail("code_table", "not in the GB/T 2260 code table")

    return check


def sex(value: object) -> object:
    raw = _as_text(value)
    if raw is None:
        return _type_fail("a GB/T 2261.1 code")
    text = fold_width(raw).strip()
    if text in _SEX_CODES:
        return text
    return _fail("code_list", "not a GB/T 2261.1 sex code (0, 1, 2, 9)")


def date_check(value: object) -> object:
    if isinstance(value, datetime):
        return _type_fail("a date, not a timestamp")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            return _fail("format", "not an ISO 8601 date (YYYY-MM-DD)")
    return _type_fail("a date")


def timestamp_check(tz: ZoneInfo) -> Normaliser:
    def check(value: object) -> object:
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.strip())
            except ValueError:
                return _fail("format", "not an ISO 8601 timestamp")
        if not isinstance(value, datetime):
            return _type_fail("a timestamp")
        if value.tzinfo is None:
            value = value.replace(tzinfo=tz)
        try:
            utc = value.astimezone(UTC)
        except (OverflowError, ValueError):
            return _fail("range", "timestamp out of range")
        return utc.replace(microsecond=utc.microsecond // 1000 * 1000)

    return check


def _int_like(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = fold_width(value).strip()
        body = text[1:] if text[:1] in "+-" else text
        if 0 < len(body) <= 19 and set(body) <= _DIGITS:
            return int(text)
    return None


def money_fen(value: object) -> object:
    number = _int_like(value)
    if number is None:
        return _type_fail("an integer number of fen")
    if not 0 <= number <= _LONG_MAX:
        return _fail("range", "money in fen must be >= 0 and fit a long")
    return number


def integer(value: object) -> object:
    number = _int_like(value)
    if number is None:
        return _type_fail("an integer")
    if not _LONG_MIN <= number <= _LONG_MAX:
        return _fail("range", "integer does not fit a long")
    return number


def text_check(max_length: int | None) -> Normaliser:
    def check(value: object) -> object:
        if not isinstance(value, str):
            return _type_fail("a string")
        text = fold_width(value).strip()
        if max_length is not None and len(text) > max_length:
            return _fail("length", f"longer than {max_length} characters")
        return text

    return check


def person_name_check(max_length: int | None) -> Normaliser:
    limit = max_length or 64

    def check(value: object) -> object:
        if not isinstance(value, str):
            return _type_fail("a string")
        text = fold_width(value).strip()
        if not text:
            return _fail("empty", "a person name must not be empty")
        if len(text) > limit:
            return _fail("length", f"longer than {limit} characters")
        if any(c.isdigit() or not c.isprintable() for c in text):
            return _fail("charset", "a person name has no digits or control characters")
        return text

    return check


def code_check(codes: Mapping[str, str]) -> Normaliser:
    def check(value: object) -> object:
        raw = _as_text(value)
        if raw is None:
            return _type_fail("a code")
        text = fold_width(raw).strip()
        if text in codes:
            return text
        return _fail("code_list", "not in the element's code list")

    return check


def phone(value: object) -> object:
    raw = _as_text(value)
    if raw is None:
        return _type_fail("a phone number")
    text = fold_width(raw).strip().translate(_PHONE_SEPARATORS)
    if text.startswith("+86"):
        text = text[3:]
    elif text.startswith("0086"):
        text = text[4:]
    if not text or not set(text) <= _DIGITS:
        return _fail("charset", "a phone number has digits only")
    if text[0] == "1":
        if len(text) != 11 or text[1] not in "3456789":
            return _fail("format", "a mobile number has 11 digits starting 13-19")
    elif text[0] == "0":
        if not 10 <= len(text) <= 12:
            return _fail("length", "a fixed-line number has 10-12 digits with the area code")
    else:
        return _fail("format", "a phone number starts with 1 (mobile) or 0 (area code)")
    return text
