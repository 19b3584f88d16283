"""Data element checks: check digits computed here from the standards' own definitions."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from shulian.catalog.elements import fold_width
from shulian.catalog.models import DataElement, ElementType
from shulian.catalog.specs import normalise
from shulian.clock import Clock, FixedClock
from shulian.logic.result import Accepted, Reason, Rejected

REGIONS = {"110000": "北京市", "110101": "东城区", "440000": "广东省", "440106": "天河区"}
RETIRED = {"110103": "110101"}


def gb11643_check(first17: str) -> str:
    """Written independently from GB 11643: weights 2^(18-i) mod 11, check (12 - S) mod 11."""
    s = sum(int(d) * (2 ** (17 - i) % 11) for i, d in enumerate(first17))
    n = (12 - s % 11) % 11
    return "X" if n == 10 else str(n)


def gb32100_check(first17: str) -> str:
    charset = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    s = sum(charset.index(c) * (3**i % 31) for i, c in enumerate(first17))
    return charset[(31 - s % 31) % 31]


def el(t: ElementType, **kw: object) -> DataElement:
    return DataElement.model_validate({"id": "x_" + t.value, "name": "n", "type": t, **kw})


NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)  # the decision clock of these tests
CLOCK: Clock = FixedClock(NOW)


def norm(t: ElementType, value: object, **kw: object) -> Accepted[object] | Rejected:
    return normalise(el(t, **kw), value, regions=REGIONS, retired_regions=RETIRED, clock=CLOCK)


def ok(t: ElementType, value: object, **kw: object) -> object:
    r = norm(t, value, **kw)
    assert isinstance(r, Accepted), r
    return r.value


def rejected(t: ElementType, value: object, check: str, **kw: object) -> Rejected:
    r = norm(t, value, **kw)
    assert isinstance(r, Rejected), r
    assert r.reason is Reason.ELEMENT_CHECK_FAILED
    assert r.check == check, r
    if isinstance(value, str) and len(value) > 2:
        assert value not in r.detail
    return r


# --- citizen id ------------------------------------------------------------------------------


def test_independent_check_functions_agree_with_the_standards_examples() -> None:
    assert gb11643_check("11010519491231002") == "X"  # GB 11643-1999's own example
    assert gb11643_check("44052418800101001") == "4"  # GB 11643-1999 appendix example
    assert gb32100_check("91350100M000100Y4") == "3"  # the example printed on licences


@pytest.mark.parametrize("cid", ["11010519491231002X", "440524188001010014"])
def test_well_known_citizen_ids_pass(cid: str) -> None:
    assert ok(ElementType.CITIZEN_ID, cid) == cid


def test_citizen_id_lowercase_x_and_full_width_are_normalised() -> None:
    assert ok(ElementType.CITIZEN_ID, " 11010519491231002x ") == "11010519491231002X"
    assert ok(ElementType.CITIZEN_ID, fold_back("440524188001010014")) == "440524188001010014"


def fold_back(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) for c in text)


@pytest.mark.parametrize("born", ["19850315", "20000229", "19491001"])
def test_constructed_citizen_ids_pass_and_a_wrong_check_char_fails(born: str) -> None:
    first17 = "440106" + born + "123"
    good = first17 + gb11643_check(first17)
    assert ok(ElementType.CITIZEN_ID, good) == good
    for other in "0123456789X":
        if other != good[-1]:
            rejected(ElementType.CITIZEN_ID, first17 + other, "check_digit")


def test_legacy_15_digit_id_is_converted() -> None:
    legacy = "440106850315123"
    first17 = "44010619850315123"
    assert ok(ElementType.CITIZEN_ID, legacy) == first17 + gb11643_check(first17)


@pytest.mark.parametrize(
    ("value", "check"),
    [
        ("4401061985031512", "length"),
        ("44010619850315123AB", "length"),
        ("4401061985031512A3", "charset"),
        ("44010685031512A", "charset"),
        ("44010619851315123" + "0", "birth_date"),  # month 13 (check char irrelevant)
        (12345, "length"),
        (None, "type"),
        (3.5, "type"),
    ],
)
def test_bad_citizen_ids(value: object, check: str) -> None:
    if check == "birth_date":  # make the check char right so only the date is wrong
        assert isinstance(value, str)
        value = value[:17] + gb11643_check(value[:17])
    rejected(ElementType.CITIZEN_ID, value, check)


def test_citizen_id_birth_date_in_the_future_is_implausible() -> None:
    future = (NOW + timedelta(days=400)).strftime("%Y%m%d")
    first17 = "440106" + future + "123"
    rejected(ElementType.CITIZEN_ID, first17 + gb11643_check(first17), "birth_date")
    first17 = "440106" + "18700101" + "123"
    rejected(ElementType.CITIZEN_ID, first17 + gb11643_check(first17), "birth_date")


# --- credit code -----------------------------------------------------------------------------


def test_credit_codes() -> None:
    assert ok(ElementType.CREDIT_CODE, "91350100M000100Y43") == "91350100M000100Y43"
    for body in ("91440101MA5C12340", "12100000400000624", "Y1440106MA9W0000A"):
        code = body + gb32100_check(body)
        assert ok(ElementType.CREDIT_CODE, code.lower()) == code
        wrong = "0" if code[-1] != "0" else "1"
        rejected(ElementType.CREDIT_CODE, body + wrong, "check_digit")
    rejected(ElementType.CREDIT_CODE, "91350100M000100Y4", "length")
    rejected(ElementType.CREDIT_CODE, "91350100I000100Y43", "charset")  # I is not allowed
    rejected(ElementType.CREDIT_CODE, "91350100S000100Y43", "charset")  # nor S
    rejected(ElementType.CREDIT_CODE, 913501, "type")


# --- region, sex, code -------------------------------------------------------------------------


def test_region_codes() -> None:
    assert ok(ElementType.REGION_CODE, "440106") == "440106"
    assert ok(ElementType.REGION_CODE, 440106) == "440106"
    rejected(ElementType.REGION_CODE, "110103", "retired_code")
    rejected(ElementType.REGION_CODE, "440199", "code_table")
    rejected(ElementType.REGION_CODE, "44010", "length")
    rejected(ElementType.REGION_CODE, "44O106", "charset")
    rejected(ElementType.REGION_CODE, ["440106"], "type")


def test_sex_codes() -> None:
    for v, want in [("1", "1"), (2, "2"), ("0", "0"), (" 9 ", "9")]:
        assert ok(ElementType.SEX, v) == want
    for v in ("3", "男", "M", ""):
        rejected(ElementType.SEX, v, "code_list")
    rejected(ElementType.SEX, True, "type")


def test_code_list() -> None:
    codes = {"01": "出生登记", "02": "迁入"}
    assert ok(ElementType.CODE, "02", codes=codes) == "02"
    rejected(ElementType.CODE, "2", "code_list", codes=codes)
    rejected(ElementType.CODE, {"x": 1}, "type", codes=codes)


# --- dates, timestamps, numbers --------------------------------------------------------------


def test_dates() -> None:
    assert ok(ElementType.DATE, date(2020, 12, 29)) == date(2020, 12, 29)
    assert ok(ElementType.DATE, "2020-12-29") == date(2020, 12, 29)
    rejected(ElementType.DATE, "2020年12月29日", "format")
    rejected(ElementType.DATE, datetime(2020, 12, 29), "type")
    rejected(ElementType.DATE, 20201229, "type")


def test_timestamps_are_utc_millis_and_naive_means_shanghai() -> None:
    naive = datetime(2020, 12, 29, 8, 30, 0, 123456)
    assert ok(ElementType.TIMESTAMP, naive) == datetime(2020, 12, 29, 0, 30, 0, 123000, UTC)
    aware = datetime(2020, 12, 29, 8, 30, tzinfo=timezone(timedelta(hours=2)))
    assert ok(ElementType.TIMESTAMP, aware) == datetime(2020, 12, 29, 6, 30, tzinfo=UTC)
    assert ok(ElementType.TIMESTAMP, "2020-12-29T08:30:00+08:00") == datetime(
        2020, 12, 29, 0, 30, tzinfo=UTC
    )
    in_utc = ok(ElementType.TIMESTAMP, naive, timezone="UTC")
    assert in_utc == datetime(2020, 12, 29, 8, 30, 0, 123000, UTC)
    rejected(ElementType.TIMESTAMP, "yesterday", "format")
    rejected(ElementType.TIMESTAMP, 1609200000000, "type")


def test_money_and_integers() -> None:
    assert ok(ElementType.MONEY_FEN, 1550) == 1550
    assert ok(ElementType.MONEY_FEN, "1550") == 1550
    rejected(ElementType.MONEY_FEN, -1, "range")
    rejected(ElementType.MONEY_FEN, 15.5, "type")
    rejected(ElementType.MONEY_FEN, "15.50", "type")
    rejected(ElementType.MONEY_FEN, True, "type")
    assert ok(ElementType.INTEGER, "-12") == -12
    rejected(ElementType.INTEGER, 2**63, "range")
    rejected(ElementType.INTEGER, "12kg", "type")


# --- text, names, phones ----------------------------------------------------------------------


def test_text_is_trimmed_and_folded() -> None:
    assert fold_width("ＡＢＣ１２３，　！") == "ABC123, !"
    assert ok(ElementType.TEXT, "\u3000天河路１２３号 ") == "天河路123号"
    rejected(ElementType.TEXT, "x" * 11, "length", max_length=10)
    rejected(ElementType.TEXT, 5, "type")


def test_person_names() -> None:
    assert ok(ElementType.PERSON_NAME, " 张三丰 ") == "张三丰"
    assert ok(ElementType.PERSON_NAME, "阿卜杜拉·买买提") == "阿卜杜拉·买买提"
    rejected(ElementType.PERSON_NAME, "   ", "empty")
    rejected(ElementType.PERSON_NAME, "张3", "charset")
    rejected(ElementType.PERSON_NAME, "张\x00三", "charset")
    rejected(ElementType.PERSON_NAME, "张" * 51, "length", max_length=50)


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("13800138000", "13800138000"),
        ("+86 138-0013-8000", "13800138000"),
        ("020-8888 6666", "02088886666"),
        ("(0755)12345678", "075512345678"),
        (13800138000, "13800138000"),
    ],
)
def test_phones(value: object, want: str) -> None:
    assert ok(ElementType.PHONE, value) == want


@pytest.mark.parametrize(
    ("value", "check"),
    [("12800138000", "format"), ("1380013800", "format"), ("020-888", "length"),
     ("88886666", "format"), ("138 0013 800a", "charset"), (1.5, "type")],
)
def test_bad_phones(value: object, check: str) -> None:
    rejected(ElementType.PHONE, value, check)


def test_citizen_id_birth_date_is_judged_by_the_decision_clock_in_shanghai() -> None:
    """Born 2026-11-27: in the future at 2026-11-26 23:59 Shanghai, plausible a minute later
    (15:59 vs 16:00 UTC), whatever today's date is."""
    first17 = "440106" + "20261127" + "123"
    cid = first17 + gb11643_check(first17)
    before = FixedClock(datetime(2026, 11, 26, 15, 59, tzinfo=UTC))
    after = FixedClock(datetime(2026, 11, 26, 16, 0, tzinfo=UTC))
    element = el(ElementType.CITIZEN_ID)
    r = normalise(element, cid, regions=REGIONS, retired_regions=RETIRED, clock=before)
    assert isinstance(r, Rejected) and r.check == "birth_date"
    r = normalise(element, cid, regions=REGIONS, retired_regions=RETIRED, clock=after)
    assert r == Accepted(cid)
