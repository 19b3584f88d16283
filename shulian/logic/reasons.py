"""Reason codes in words: one table for every code a record can be dead-lettered or withheld
with, and for the element and mapping checks named in dead letters.

The demo, ``shulian deadletters``, ``shulian audit report`` and the console print these
sentences next to the codes, so a data officer reads "the check character does not match"
instead of ``check_digit``. ``tests/unit/test_reasons.py`` holds every code of
:class:`~shulian.logic.result.Reason` and :class:`~shulian.logic.policy.WithholdReason`, and
every check the element and mapping code can name, to having words here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["CHECK_WORDS", "REASON_WORDS", "VERIFY_WORDS", "Words", "check_words", "legend",
           "reason_words"]


@dataclass(frozen=True, slots=True)
class Words:
    """One reason in a sentence, in Chinese and in English."""

    zh: str
    en: str

    def both(self) -> str:
        return f"{self.zh} / {self.en}"


REASON_WORDS: dict[str, Words] = {
    # dead letters (shulian.logic.result.Reason)
    "empty_value": Words("记录没有内容", "the record has no value (empty message)"),
    "bad_wire_format": Words(
        "不是 Confluent Avro 格式（缺少或错误的魔术字节，或过短）",
        "not the Confluent Avro wire format (bad magic byte, or too short)"),
    "unknown_schema_id": Words("所引用的模式编号未在模式注册中心登记",
                               "the schema id it names is not registered"),
    "schema_not_allowed": Words("所用模式不属于该主题",
                                "its schema is not registered for this topic"),
    "decode_error": Words("内容无法按其模式解码", "the body does not decode with its schema"),
    "element_check_failed": Words("某字段未通过数据元校验",
                                  "a field failed its data-element check"),
    "mapping_error": Words("某字段无法按本单位的映射转换",
                           "a field could not be converted by the agency's mapping"),
    "missing_field": Words("缺少必填字段", "a required field is missing"),
    "unknown_dataset": Words("主题不对应任何已知的单位和数据集",
                             "the topic names no known agency and dataset"),
    "encode_error": Words("标准记录无法编码（内部错误）",
                          "the canonical record does not encode (internal error)"),
    # withheld decisions (shulian.logic.policy.WithholdReason)
    "share_type_none": Words("清单规定不予共享", "the list says: not shared"),
    "verify_only": Words("清单规定仅核验，不交付数据",
                         "the list says: verification only, no record delivered"),
    "not_yet_valid": Words("清单条目尚未生效", "the list entry is not valid yet"),
    "expired": Words("清单条目已过期", "the list entry has expired"),
    "no_approval": Words("有条件共享但没有审批", "conditional sharing without an approval"),
    "approval_not_yet_valid": Words("审批尚未生效", "the approval is not valid yet"),
    "approval_expired": Words("审批已过期", "the approval has expired"),
    "row_filter_false": Words("记录不满足条目的行过滤条件",
                              "the record does not meet the entry's row filter"),
    "row_filter_error": Words("行过滤条件无法对该记录求值",
                              "the entry's row filter could not be evaluated on the record"),
}

VERIFY_WORDS: dict[str, Words] = {
    # refused verification requests (shulian.verification.service; docs/VERIFY.md)
    "claim_not_allowed": Words("核验条目不允许该比对项", "the verify entry allows no such claim"),
    "bad_key": Words("核验请求的键与条目不符", "the request's key is not the entry's key"),
    "rate_limited:claims_per_minute": Words("超出每分钟核验次数上限",
                                            "over the entry's claims per minute"),
    "rate_limited:distinct_claims_per_key_per_day": Words(
        "超出同一键每日不同核验项上限", "over the entry's distinct claims per key per day"),
}

CHECK_WORDS: dict[str, Words] = {
    # data-element checks (shulian.catalog.elements)
    "type": Words("类型不对", "wrong type"),
    "length": Words("长度不对", "wrong length"),
    "charset": Words("含有不允许的字符", "characters that are not allowed"),
    "check_digit": Words("校验码不符", "the check character does not match"),
    "birth_date": Words("身份号码中的出生日期无效", "the birth date in the ID is not valid"),
    "code_list": Words("不在代码表中", "not in the code list"),
    "code_table": Words("不在 GB/T 2260 行政区划代码表中", "not in the GB/T 2260 code table"),
    "retired_code": Words("已撤销的行政区划代码", "a retired region code"),
    "format": Words("格式不对", "wrong format"),
    "range": Words("超出范围", "out of range"),
    "empty": Words("为空", "the value is empty"),
    # mapping steps (shulian.logic.harmonise)
    "code_map": Words("不在本单位映射的代码对照表中", "not in the mapping's code table"),
    "date_format": Words("不符合映射给出的任何日期格式",
                         "matches none of the mapping's date formats"),
    "number": Words("不是有效的金额", "not a valid amount"),
    "fraction_of_fen": Words("金额含有不足一分的部分", "an amount with a fraction of a fen"),
    "region_name": Words("行政区划名称未知或有歧义", "region name unknown or ambiguous"),
    "region_input": Words("行政区划值的形式不对", "the region value has the wrong form"),
}


def reason_words(code: str) -> Words:
    """The words for a reason code; an unknown code is named as such (never raises)."""
    found = REASON_WORDS.get(code) or VERIFY_WORDS.get(code)
    return found if found is not None else Words(f"未知原因 {code}", f"unknown reason {code}")


def check_words(check: str | None) -> Words | None:
    if check is None or not check:
        return None
    found = CHECK_WORDS.get(check)
    return found if found is not None else Words(check, check)


def legend(codes: Iterable[str]) -> list[tuple[str, Words]]:
    """``(code, words)`` for each distinct code, sorted: the legend under a table."""
    return [(c, reason_words(c)) for c in sorted(set(codes)) if c]
