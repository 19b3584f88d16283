"""Sample canonical values per element type, for the demo, benchmarks and fault tests: valid
by construction (real check digits, region codes from the catalogue). Each is joined to its
type in :data:`shulian.catalog.specs.SPECS`; :mod:`shulian.logic.generate` writes them in an
agency's dialect. Deterministic for a given ``random.Random``. Pure."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from shulian.catalog.elements import (
    CREDIT_CHARSET,
    citizen_id_check_char,
    credit_code_check_char,
)
from shulian.catalog.models import DataElement

__all__ = [
    "a_date",
    "citizen_id",
    "code",
    "credit_code",
    "integer",
    "money_fen",
    "person_name",
    "phone",
    "region_code",
    "sex",
    "text",
    "timestamp",
]

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢"
    "宋唐许韩冯邓曹彭曾萧田董袁潘于蒋蔡余杜叶程"
)
GIVEN = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超"
    "秀兰霞平刚桂英华玉兰红梅建国志强淑珍子轩一诺欣怡浩然"
)
_TEXT = [
    "广州市天河区体育西路103号",
    "上海市黄浦区南京东路100号",
    "北京市东城区东长安街1号",
    "杭州市西湖区文三路90号",
    "深圳市南山区科技园南区",
    "珠海市香洲区情侣中路",
    "佛山市禅城区祖庙路",
]
_COMPANY = [
    "科技有限公司", "贸易有限公司", "餐饮管理有限公司", "建筑工程有限公司", "医药连锁有限公司",
]
_SCOPES = [
    "技术开发", "技术咨询", "货物进出口", "餐饮服务", "建设工程施工", "药品零售", "软件开发",
    "日用百货销售",
]


def citizen_id(rng: random.Random, _element: DataElement, districts: Sequence[str]) -> str:
    born = date(1950, 1, 1) + timedelta(days=rng.randrange(0, 60 * 365))
    first17 = f"{rng.choice(districts)}{born:%Y%m%d}{rng.randrange(0, 1000):03d}"
    return first17 + citizen_id_check_char(first17)


def credit_code(rng: random.Random, _element: DataElement, districts: Sequence[str]) -> str:
    org = "".join(rng.choice(CREDIT_CHARSET) for _ in range(9))
    first17 = f"91{rng.choice(districts)}{org}"
    return first17 + credit_code_check_char(first17)


def region_code(rng: random.Random, _element: DataElement, districts: Sequence[str]) -> str:
    return rng.choice(districts)


def sex(rng: random.Random, _element: DataElement, _districts: Sequence[str]) -> str:
    return rng.choice(("1", "2"))


def a_date(rng: random.Random, _element: DataElement, _districts: Sequence[str]) -> date:
    return date(2015, 1, 1) + timedelta(days=rng.randrange(0, 10 * 365))


def timestamp(rng: random.Random, _element: DataElement, _districts: Sequence[str]) -> datetime:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    return base + timedelta(seconds=rng.randrange(0, 300 * 86400))


def money_fen(rng: random.Random, _element: DataElement, _districts: Sequence[str]) -> int:
    return rng.randrange(1, 50_000) * 100  # whole yuan: exact in every unit


def person_name(rng: random.Random, _element: DataElement, _districts: Sequence[str]) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


def code(rng: random.Random, element: DataElement, _districts: Sequence[str]) -> str:
    return rng.choice(sorted(element.codes or {"0": ""}))


def integer(rng: random.Random, _element: DataElement, _districts: Sequence[str]) -> int:
    return rng.randrange(0, 10_000)


def phone(rng: random.Random, _element: DataElement, _districts: Sequence[str]) -> str:
    return "13" + "".join(str(rng.randrange(10)) for _ in range(9))


def text(rng: random.Random, element: DataElement, _districts: Sequence[str]) -> str:
    if element.max_length is not None and element.max_length < 20:
        return "".join(rng.choice(GIVEN) for _ in range(min(4, element.max_length)))
    if "name" in element.id:  # an organisation's name: city, a brand, a company form
        brand = "".join(rng.choice(GIVEN) for _ in range(2))
        return rng.choice(_TEXT)[:2] + brand + rng.choice(_COMPANY)
    if "scope" in element.id:
        return "、".join(rng.sample(_SCOPES, 2))
    return rng.choice(_TEXT)
