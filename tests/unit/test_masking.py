"""Masks: every mask type, nulls, short and unicode strings, the per-consumer key, mask_fits."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

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
from shulian.logic.masking import apply_mask, canonical_text, consumer_key

KEY = b"test-master-key"
ET = ElementType


def m(**kw: object) -> Mask:
    return TypeAdapter(Mask).validate_python(kw)


def run(mask: Mask, value: object, et: ElementType, consumer: str = "civil_affairs") -> object:
    return apply_mask(mask, value, element_type=et, consumer=consumer, master_key=KEY)


# --- keep ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "last", "value", "expected"),
    [
        (6, 4, "440106199001011234", "440106********1234"),
        (3, 4, "13800138000", "138****8000"),
        (0, 0, "abc", "***"),
        (1, 0, "abc", "a**"),
        (0, 1, "abc", "**c"),
        (2, 1, "abc", "***"),  # first + last == len: mask everything
        (5, 5, "abc", "***"),  # first + last > len: mask everything
        (1, 1, "", ""),
        (1, 1, "广州市天河区", "广****区"),
    ],
)
def test_keep(first: int, last: int, value: str, expected: str) -> None:
    assert run(KeepMask(type="keep", first=first, last=last), value, ET.CITIZEN_ID) == expected


@given(st.text(max_size=30), st.integers(0, 10), st.integers(0, 10))
def test_keep_never_reveals_more_than_first_and_last(value: str, first: int, last: int) -> None:
    out = run(KeepMask(type="keep", first=first, last=last), value, ET.TEXT)
    assert isinstance(out, str)
    assert len(out) == len(value)
    revealed = [i for i, c in enumerate(out) if c != "*"]
    assert len(revealed) <= first + last
    if first + last >= len(value):
        assert out == "*" * len(value)
    for i in revealed:
        assert out[i] == value[i]
        assert i < first or i >= len(value) - last


# --- name ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("张三丰", "张**"), ("李四", "李*"), ("王", "*"), ("", ""), ("欧阳修", "欧**")],
)
def test_name(value: str, expected: str) -> None:
    assert run(NameMask(type="name"), value, ET.PERSON_NAME) == expected


# --- hmac ----------------------------------------------------------------------------------


def test_consumer_key_is_documented_derivation() -> None:
    expected = hmac.new(KEY, b"shulian-consumer:health", hashlib.sha256).digest()
    assert consumer_key(KEY, "health") == expected
    assert consumer_key(KEY, "health") != consumer_key(KEY, "civil_affairs")
    assert consumer_key(b"other", "health") != consumer_key(KEY, "health")


def test_hmac_joinable_per_consumer_distinct_across() -> None:
    mask = HmacMask(type="hmac")
    a1 = run(mask, "440106199001011234", ET.CITIZEN_ID, "health")
    a2 = run(mask, "440106199001011234", ET.CITIZEN_ID, "health")
    b = run(mask, "440106199001011234", ET.CITIZEN_ID, "civil_affairs")
    other = run(mask, "440106199001011235", ET.CITIZEN_ID, "health")
    assert a1 == a2  # a consumer can join on it
    assert a1 != b  # two consumers cannot join with each other
    assert a1 != other
    expected = hmac.new(
        consumer_key(KEY, "health"), b"440106199001011234", hashlib.sha256
    ).hexdigest()
    assert a1 == expected
    assert isinstance(a1, str) and len(a1) == 64


def test_hmac_of_non_strings_uses_canonical_text() -> None:
    mask = HmacMask(type="hmac")
    key = consumer_key(KEY, "health")

    def h(text: str) -> str:
        return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()

    assert run(mask, 12345, ET.MONEY_FEN, "health") == h("12345")
    assert run(mask, date(2020, 2, 29), ET.DATE, "health") == h("2020-02-29")
    ts = datetime(2020, 12, 31, 16, 0, 0, 123000, tzinfo=UTC)
    assert run(mask, ts, ET.TIMESTAMP, "health") == h("2020-12-31T16:00:00.123Z")
    assert canonical_text(ts) == "2020-12-31T16:00:00.123Z"


def test_hmac_unicode() -> None:
    out = run(HmacMask(type="hmac"), "张三丰", ET.PERSON_NAME)
    assert isinstance(out, str) and len(out) == 64 and "张" not in out


# --- truncate_date -------------------------------------------------------------------------


def test_truncate_date() -> None:
    year = TruncateDateMask(type="truncate_date", to="year")
    month = TruncateDateMask(type="truncate_date", to="month")
    assert run(year, date(2020, 12, 31), ET.DATE) == "2020"
    assert run(month, date(2020, 12, 31), ET.DATE) == "2020-12"
    assert run(month, date(5, 1, 2), ET.DATE) == "0005-01"


def test_truncate_timestamp_uses_shanghai_calendar() -> None:
    month = TruncateDateMask(type="truncate_date", to="month")
    year = TruncateDateMask(type="truncate_date", to="year")
    # 2020-12-31 16:30 UTC is 2021-01-01 00:30 in Shanghai
    ts = datetime(2020, 12, 31, 16, 30, tzinfo=UTC)
    assert run(month, ts, ET.TIMESTAMP) == "2021-01"
    assert run(year, ts, ET.TIMESTAMP) == "2021"
    assert run(year, datetime(2020, 12, 31, 15, 59, tzinfo=UTC), ET.TIMESTAMP) == "2020"


# --- generalise_region ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("to", "value", "expected"),
    [
        ("city", "440106", "440100"),
        ("province", "440106", "440000"),
        ("city", "110105", "110100"),  # municipality
        ("province", "110105", "110000"),
        ("city", "4401", "****"),  # not a code: reveal nothing
    ],
)
def test_generalise_region(to: str, value: str, expected: str) -> None:
    mask = m(type="generalise_region", to=to)
    assert run(mask, value, ET.REGION_CODE) == expected


# --- nulls and drop ------------------------------------------------------------------------

ALL_MASKS: list[tuple[Mask, ElementType]] = [
    (KeepMask(type="keep", first=1, last=1), ET.PHONE),
    (NameMask(type="name"), ET.PERSON_NAME),
    (HmacMask(type="hmac"), ET.INTEGER),
    (TruncateDateMask(type="truncate_date", to="year"), ET.DATE),
    (GeneraliseRegionMask(type="generalise_region", to="city"), ET.REGION_CODE),
    (DropMask(type="drop"), ET.TEXT),
]


@pytest.mark.parametrize(("mask", "et"), ALL_MASKS)
def test_null_stays_null(mask: Mask, et: ElementType) -> None:
    assert run(mask, None, et) is None


def test_drop_gives_nothing() -> None:
    assert run(DropMask(type="drop"), "secret", ET.TEXT) is None


def test_apply_mask_refuses_a_mask_that_does_not_fit() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        run(NameMask(type="name"), "440106", ET.REGION_CODE)


# --- mask_fits -----------------------------------------------------------------------------

FITS: dict[str, set[ElementType]] = {
    "keep": {
        ET.CITIZEN_ID,
        ET.CREDIT_CODE,
        ET.PHONE,
        ET.TEXT,
        ET.PERSON_NAME,
        ET.CODE,
        ET.REGION_CODE,
        ET.SEX,  # a string of a code list, like code: keep fits every string type
    },
    "name": {ET.PERSON_NAME},
    "hmac": set(ET),
    "truncate_date": {ET.DATE, ET.TIMESTAMP},
    "generalise_region": {ET.REGION_CODE},
    "drop": set(ET),
}
MASK_OF: dict[str, Mask] = {
    "keep": KeepMask(type="keep", first=1),
    "name": NameMask(type="name"),
    "hmac": HmacMask(type="hmac"),
    "truncate_date": TruncateDateMask(type="truncate_date", to="month"),
    "generalise_region": GeneraliseRegionMask(type="generalise_region", to="province"),
    "drop": DropMask(type="drop"),
}


@pytest.mark.parametrize("mask_type", sorted(FITS))
@pytest.mark.parametrize("et", list(ET))
def test_mask_fits_table(mask_type: str, et: ElementType) -> None:
    why = mask_fits(MASK_OF[mask_type], et)
    if et in FITS[mask_type]:
        assert why is None
    else:
        assert why is not None
        assert mask_type in why and et.value in why
