"""One spec per element type: everything the chain knows about an
:class:`~shulian.catalog.models.ElementType` in one row of :data:`SPECS`.

- ``avro``: the Avro type of a canonical value (the canonical schemas, :mod:`.avro`);
  a type whose Avro type is ``"string"`` is a *string type*: a mapping's code map fits it and
  the ``keep`` mask fits it (so ``sex``, a string of the GB/T 2261.1 code list, takes ``keep``
  like ``code`` does);
- ``check``: builds the element's check and normaliser (:mod:`.elements`) from the element and
  the catalogue's context (region tables, the decision clock);
- ``masks``: the mask types that fit besides those that fit every type (``hmac``, ``drop``) and
  ``keep`` for the string types (:func:`mask_fits`);
- ``ordered``: values compare as ranges (a ``range`` claim of joint verification fits);
- ``sample``: a valid canonical value for the demo, benchmarks and fault tests (:mod:`.samples`).

``tests/unit/test_element_specs.py`` fails when an element type misses a row, and checks every
row end to end (sample -> check -> Avro -> masks). Pure.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, get_args
from zoneinfo import ZoneInfo

from shulian.catalog import elements as checks
from shulian.catalog import samples
from shulian.catalog.elements import Normaliser
from shulian.catalog.models import DataElement, ElementType, Mask
from shulian.clock import Clock
from shulian.result import Accepted, Rejected

__all__ = [
    "ALL_TYPES_MASKS",
    "SPECS",
    "CheckContext",
    "ElementSpec",
    "avro_type",
    "is_string_type",
    "mask_fits",
    "normalise",
    "normaliser",
]

ALL_TYPES_MASKS = frozenset({"hmac", "drop"})
"""Masks that fit a value of any element type."""
MASK_TYPES = frozenset(get_args(m.model_fields["type"].annotation)[0]
                       for m in get_args(get_args(Mask)[0]))
"""Every mask type of the catalogue's ``Mask`` union."""


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What element checks need beyond the element: region tables and the decision clock."""

    regions: Mapping[str, str]
    retired_regions: Mapping[str, str]
    clock: Clock


@dataclass(frozen=True, slots=True)
class ElementSpec:
    """Everything one element type brings (see the module)."""

    avro: str | Mapping[str, str]
    check: Callable[[DataElement, CheckContext], Normaliser]
    sample: Callable[[random.Random, DataElement, Sequence[str]], object]
    extra_masks: frozenset[str] = frozenset()
    ordered: bool = False

    @property
    def is_string(self) -> bool:
        return self.avro == "string"

    @property
    def masks(self) -> frozenset[str]:
        """Every mask type that fits a value of this type."""
        return ALL_TYPES_MASKS | self.extra_masks | ({"keep"} if self.is_string else set())


def _fixed(check: Normaliser) -> Callable[[DataElement, CheckContext], Normaliser]:
    return lambda _element, _ctx: check


_DATE = {"type": "int", "logicalType": "date"}
_TIMESTAMP = {"type": "long", "logicalType": "timestamp-millis"}
_DATES = frozenset({"truncate_date"})

SPECS: dict[ElementType, ElementSpec] = {
    ElementType.CITIZEN_ID: ElementSpec(
        "string", lambda _e, ctx: checks.citizen_id_check(ctx.clock), samples.citizen_id),
    ElementType.CREDIT_CODE: ElementSpec(
        "string", _fixed(checks.credit_code), samples.credit_code),
    ElementType.REGION_CODE: ElementSpec(
        "string", lambda _e, ctx: checks.region_code_check(ctx.regions, ctx.retired_regions),
        samples.region_code, frozenset({"generalise_region"})),
    ElementType.SEX: ElementSpec("string", _fixed(checks.sex), samples.sex),
    ElementType.DATE: ElementSpec(_DATE, _fixed(checks.date_check), samples.a_date, _DATES,
                                  ordered=True),
    ElementType.TIMESTAMP: ElementSpec(
        _TIMESTAMP, lambda e, _ctx: checks.timestamp_check(ZoneInfo(e.timezone)),
        samples.timestamp, _DATES, ordered=True),
    ElementType.MONEY_FEN: ElementSpec("long", _fixed(checks.money_fen), samples.money_fen,
                                       ordered=True),
    ElementType.INTEGER: ElementSpec("long", _fixed(checks.integer), samples.integer,
                                     ordered=True),
    ElementType.TEXT: ElementSpec(
        "string", lambda e, _ctx: checks.text_check(e.max_length), samples.text),
    ElementType.PERSON_NAME: ElementSpec(
        "string", lambda e, _ctx: checks.person_name_check(e.max_length), samples.person_name,
        frozenset({"name"})),
    ElementType.CODE: ElementSpec(
        "string", lambda e, _ctx: checks.code_check(e.codes or {}), samples.code),
    ElementType.PHONE: ElementSpec("string", _fixed(checks.phone), samples.phone),
}


def avro_type(element_type: ElementType) -> str | dict[str, str]:
    """The Avro type of a value of ``element_type`` (a fresh dict for logical types)."""
    t = SPECS[element_type].avro
    return t if isinstance(t, str) else dict(t)


def is_string_type(element_type: ElementType) -> bool:
    """Whether canonical values of ``element_type`` are strings (code maps and ``keep`` fit)."""
    return SPECS[element_type].is_string


def mask_fits(mask: Mask, element_type: ElementType) -> str | None:
    """``None`` when ``mask`` may be applied to an element of ``element_type``, else why not."""
    if mask.type not in MASK_TYPES:
        return f"unknown mask type {mask.type!r}"
    if mask.type in SPECS[element_type].masks:
        return None
    kinds = ", ".join(sorted(t.value for t, s in SPECS.items() if mask.type in s.masks))
    return f"mask '{mask.type}' does not fit element type '{element_type.value}' (fits: {kinds})"


def normaliser(
    element: DataElement,
    *,
    regions: Mapping[str, str],
    retired_regions: Mapping[str, str],
    clock: Clock,
) -> Normaliser:
    """The check/normaliser for one element, built once (the harmoniser's hot path).
    ``clock``: the decision clock (a citizen id's birth date must not be after its today)."""
    return SPECS[element.type].check(element, CheckContext(regions, retired_regions, clock))


def normalise(
    element: DataElement,
    value: object,
    *,
    regions: Mapping[str, str],
    retired_regions: Mapping[str, str],
    clock: Clock,
) -> Accepted[Any] | Rejected:
    """Check and normalise one value for ``element`` (see :mod:`.elements`)."""
    result = normaliser(element, regions=regions, retired_regions=retired_regions,
                        clock=clock)(value)
    return result if isinstance(result, Rejected) else Accepted(result)
