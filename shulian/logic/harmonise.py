"""Harmonisation: one agency's raw record -> the canonical record of a dataset.

For every canonical field, in the dataset's order, the field's plan (compiled once from the
agency's :class:`~shulian.catalog.models.FieldMapping`) does:

1. take ``raw[from]``; ``None`` or a blank string counts as absent;
2. absent: use ``default`` (a canonical value) if given; else a required field is rejected with
   :attr:`Reason.MISSING_FIELD` and an optional one becomes ``None``;
3. mapping steps, each optional: ``codes`` (agency code -> canonical code), ``date_formats``
   (strptime formats or ``epoch_millis``/``epoch_seconds`` tried in order; naive values are in
   the element's timezone, Asia/Shanghai unless stated), ``unit`` (an amount in fen/jiao/元/万元
   -> integer fen, exact via Decimal; a fraction of a fen is rejected), ``region`` (a region name
   or a retired GB/T 2260 code -> the current code). A step that cannot apply gives
   :attr:`Reason.MAPPING_ERROR`;
4. the element's check and normaliser (:mod:`shulian.catalog.elements`), which gives
   :attr:`Reason.ELEMENT_CHECK_FAILED`.

The first failure decides; rejections carry the canonical ``field`` (and the raw field as
``extra["source"]``) but never the value. :meth:`Harmoniser.harmonise` never raises.

The record key (:func:`record_key`) is the dataset's ``key`` field values in their canonical
text form (str as is, int in decimal, date ``YYYY-MM-DD``, timestamp UTC RFC 3339 with
milliseconds) joined with ``|``; a ``\\`` or ``|`` inside a value is escaped with ``\\`` so two
different keys never collide.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final
from zoneinfo import ZoneInfo

from shulian.catalog.elements import Normaliser, fold_width
from shulian.catalog.models import (
    Catalog,
    DataElement,
    Dataset,
    ElementType,
    FieldMapping,
    MoneyUnit,
    RegionInput,
)
from shulian.catalog.models import Mapping as AgencyMapping
from shulian.catalog.specs import normaliser
from shulian.clock import Clock
from shulian.logic.result import Accepted, Reason, Rejected

__all__ = ["Harmonised", "Harmoniser", "record_key", "region_name_index"]

_LONG_MAX = 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FEN_PER: Final = {
    MoneyUnit.FEN: Decimal(1),
    MoneyUnit.JIAO: Decimal(10),
    MoneyUnit.YUAN: Decimal(100),
    MoneyUnit.WAN_YUAN: Decimal(1_000_000),
}
_DIGITS = frozenset("0123456789")
_NOT_A_PLACE = "市辖区"


@dataclass(frozen=True, slots=True)
class Harmonised:
    record: dict[str, Any]
    key: str
    mapping_version: int


@dataclass(frozen=True, slots=True)
class _StepFailed:
    check: str
    detail: str


Step = Callable[[object], object]  # returns the new value or a _StepFailed


def _text_of(value: object) -> str | None:
    if isinstance(value, str):
        return fold_width(value).strip()
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= _LONG_MAX:
        return str(value)
    return None


# --- mapping steps -------------------------------------------------------------------------


def _code_step(table: Mapping[str, str]) -> Step:
    def step(value: object) -> object:
        text = _text_of(value)
        if text is None:
            return _StepFailed("type", "code map needs a string or integer")
        mapped = table.get(text)
        if mapped is None:
            return _StepFailed("code_map", "value not in the mapping's code table")
        return mapped

    return step


def _epoch(value: object, per_second: int) -> datetime | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        body = text[1:] if text[:1] == "-" else text
        if not (0 < len(body) <= 19 and set(body) <= _DIGITS):
            return None
        value = int(text)
    if not isinstance(value, int) or abs(value) > _LONG_MAX:
        return None
    try:
        return _EPOCH + timedelta(milliseconds=value * 1000 // per_second)
    except OverflowError:
        return None


_FAST_DIRECTIVES: Final = {
    "Y": "([0-9]{4})", "m": "([0-9]{1,2})", "d": "([0-9]{1,2})",
    "H": "([0-9]{1,2})", "M": "([0-9]{1,2})", "S": "([0-9]{1,2})",
}
_FAST_ORDER: Final = ("Y", "m", "d", "H", "M", "S")
DateParser = Callable[[str], datetime | None]


def _strptime_parser(fmt: str) -> DateParser:
    def parse(text: str) -> datetime | None:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            return None

    return parse


def date_parser(fmt: str) -> DateParser:
    """A parser for one strptime pattern: a precompiled regex when the pattern uses only
    ``%Y %m %d %H %M %S %%`` and literals (5x faster than strptime), else strptime itself."""
    pattern: list[str] = []
    order: list[str] = []
    i = 0
    while i < len(fmt):
        c = fmt[i]
        if c != "%":
            pattern.append(re.escape(c))
            i += 1
            continue
        d = fmt[i + 1 : i + 2]
        if d == "%":
            pattern.append("%")
        elif d in _FAST_DIRECTIVES and d not in order:
            pattern.append(_FAST_DIRECTIVES[d])
            order.append(d)
        else:
            return _strptime_parser(fmt)
        i += 2
    if not {"Y", "m", "d"} <= set(order):
        return _strptime_parser(fmt)
    regex = re.compile("".join(pattern))
    slots = tuple(order.index(d) if d in order else -1 for d in _FAST_ORDER)

    def parse(text: str) -> datetime | None:
        m = regex.fullmatch(text)
        if m is None:
            return None
        groups = m.groups()
        parts = [int(groups[k]) if k >= 0 else 0 for k in slots]
        try:
            return datetime(parts[0], parts[1], parts[2], parts[3], parts[4], parts[5])
        except ValueError:
            return None

    return parse


def _date_step(formats: list[str], *, as_date: bool, tz: ZoneInfo) -> Step:
    fmts = tuple(
        (fmt, None if fmt in ("epoch_millis", "epoch_seconds") else date_parser(fmt))
        for fmt in formats
    )

    def step(value: object) -> object:
        if isinstance(value, date):  # already typed by the raw schema (date or datetime)
            return value
        parsed: datetime | None = None
        text = _text_of(value)
        for fmt, parser in fmts:
            if parser is None:
                parsed = _epoch(value, 1000 if fmt == "epoch_millis" else 1)
                if parsed is not None:
                    break
            elif text is not None:
                parsed = parser(text)
                if parsed is not None:
                    if parsed.tzinfo is None:
                        parsed = parsed.replace(tzinfo=tz)
                    break
        if parsed is None:
            return _StepFailed("date_format", "matches none of the mapping's date formats")
        if as_date:
            try:
                return parsed.astimezone(tz).date()
            except (OverflowError, ValueError):
                return _StepFailed("date_format", "date out of range")
        return parsed

    return step


def _unit_step(unit: MoneyUnit) -> Step:
    factor = _FEN_PER[unit]

    def step(value: object) -> object:
        if isinstance(value, bool):
            return _StepFailed("type", "an amount is a number")
        if isinstance(value, int):
            amount = Decimal(value)
        elif isinstance(value, float | str):
            text = fold_width(str(value)).strip().replace(",", "")
            if len(text) > 40:
                return _StepFailed("number", "amount too long")
            try:
                amount = Decimal(text)
            except InvalidOperation:
                return _StepFailed("number", "not a decimal amount")
        else:
            return _StepFailed("type", "an amount is a number or a numeric string")
        if not amount.is_finite() or abs(amount) > Decimal(_LONG_MAX):
            return _StepFailed("number", "amount is not a finite number in range")
        fen = amount * factor
        if fen != fen.to_integral_value():
            return _StepFailed("fraction_of_fen", "amount has a fraction of a fen")
        return int(fen)

    return step


def region_name_index(regions: Mapping[str, str]) -> dict[str, str]:
    """Unambiguous region names -> code: ``天河区``, ``广州市天河区``, ``广东省广州市天河区``.

    A name shared by several codes (``朝阳区``) is left out; qualified forms resolve it. The
    placeholder ``市辖区`` (a municipality's "districts under the city") is never a name.
    """
    candidates: dict[str, set[str]] = {}

    def add(name: str, code: str) -> None:
        candidates.setdefault(name, set()).add(code)

    for code, name in regions.items():
        if name == _NOT_A_PLACE:
            continue
        add(name, code)
        province = regions.get(code[:2] + "0000")
        city = regions.get(code[:4] + "00")
        if code[2:] == "0000" or province is None:
            continue
        add(province + name, code)
        if code[4:] != "00" and city is not None and city != _NOT_A_PLACE:
            add(city + name, code)
            add(province + city + name, code)
    return {name: next(iter(codes)) for name, codes in candidates.items() if len(codes) == 1}


def _region_step(
    how: RegionInput, regions: Mapping[str, str], retired: Mapping[str, str], names: dict[str, str]
) -> Step:
    def step(value: object) -> object:
        text = _text_of(value)
        if text is None:
            return _StepFailed("type", "a region is a code or a name")
        is_code = len(text) == 6 and set(text) <= _DIGITS
        if is_code and how is not RegionInput.NAME:
            return retired.get(text, text)  # unknown codes fail the element check
        if not is_code and how is not RegionInput.CODE:
            code = names.get(text)
            if code is None:
                return _StepFailed("region_name", "region name unknown or ambiguous")
            return code
        return _StepFailed("region_input", f"region value is not a {how.value.replace('_', ' ')}")

    return step


# --- plans ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _FieldPlan:
    name: str
    source: str | None
    default: object
    steps: tuple[Step, ...]
    check: Normaliser
    required: bool


@dataclass(frozen=True, slots=True)
class _Plan:
    fields: tuple[_FieldPlan, ...]
    key: tuple[str, ...]
    version: int


def _steps(
    fm: FieldMapping,
    element: DataElement,
    regions: Mapping[str, str],
    retired: Mapping[str, str],
    names: dict[str, str],
) -> tuple[Step, ...]:
    steps: list[Step] = []
    if fm.codes:
        steps.append(_code_step(dict(fm.codes)))
    if fm.date_formats:
        tz = ZoneInfo(element.timezone)
        steps.append(
            _date_step(fm.date_formats, as_date=element.type is ElementType.DATE, tz=tz)
        )
    if fm.unit is not None:
        steps.append(_unit_step(fm.unit))
    if fm.region is not None:
        steps.append(_region_step(fm.region, regions, retired, names))
    return tuple(steps)


def _compile(
    mapping: AgencyMapping, dataset: Dataset, catalog: Catalog, names: dict[str, str],
    clock: Clock,
) -> _Plan:
    plans: list[_FieldPlan] = []
    for f in dataset.fields:
        element = catalog.elements[f.element]
        check = normaliser(
            element, regions=catalog.regions, retired_regions=catalog.retired_regions,
            clock=clock,
        )
        fm = mapping.fields.get(f.name)
        if fm is None:
            plans.append(_FieldPlan(f.name, None, None, (), check, f.required))
            continue
        steps = _steps(fm, element, catalog.regions, catalog.retired_regions, names)
        plans.append(_FieldPlan(f.name, fm.source, fm.default, steps, check, f.required))
    return _Plan(tuple(plans), tuple(dataset.key), mapping.version)


def _key_text(value: object) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, datetime):
        utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        text = utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    elif isinstance(value, date):
        text = value.isoformat()
    elif value is None:
        text = ""
    else:
        text = str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|")


def _key(fields: tuple[str, ...], record: Mapping[str, Any]) -> str:
    return "|".join(_key_text(record.get(k)) for k in fields)


def record_key(dataset: Dataset, record: Mapping[str, Any]) -> str:
    """The record key: the dataset's ``key`` field values joined with ``|`` (module doc)."""
    return _key(tuple(dataset.key), record)


class Harmoniser:
    """Maps raw agency records onto canonical records; plans are compiled once per catalogue."""

    def __init__(self, catalog: Catalog, *, clock: Clock) -> None:
        """``clock``: the decision clock of the element checks (:mod:`shulian.clock`)."""
        names = region_name_index(catalog.regions)
        self._plans: dict[tuple[str, str], _Plan] = {}
        for (agency, dataset_id), mapping in catalog.mappings.items():
            dataset = catalog.datasets[dataset_id]
            self._plans[(agency, dataset_id)] = _compile(mapping, dataset, catalog, names, clock)

    def harmonise(
        self, agency: str, dataset: str, raw: Mapping[str, Any]
    ) -> Accepted[Harmonised] | Rejected:
        plan = self._plans.get((agency, dataset))
        if plan is None:
            return Rejected(Reason.UNKNOWN_DATASET, "no mapping for this agency and dataset")
        if not isinstance(raw, Mapping):
            return Rejected(Reason.MAPPING_ERROR, "raw record is not a map")
        record: dict[str, Any] = {}
        for fp in plan.fields:
            value = raw.get(fp.source) if fp.source is not None else None
            if value is None or (type(value) is str and not value.strip()):
                if fp.default is None:
                    if fp.required:
                        return Rejected(
                            Reason.MISSING_FIELD, "required field is absent", fp.name,
                            extra={"source": fp.source},
                        )
                    record[fp.name] = None
                    continue
                value = fp.default
            else:
                for step in fp.steps:
                    value = step(value)
                    if type(value) is _StepFailed:
                        return Rejected(
                            Reason.MAPPING_ERROR, value.detail, fp.name, value.check,
                            extra={"source": fp.source},
                        )
            value = fp.check(value)
            if type(value) is Rejected:
                return replace(value, field=fp.name, extra={"source": fp.source})
            record[fp.name] = value
        return Accepted(Harmonised(record, _key(plan.key, record), plan.version))
