"""Codes of the chain in words, Chinese and English: dead-letter and withhold reasons, masks,
list entries, mapping conversions, differences between list versions.

Reasons and checks come from the one table in :mod:`shulian.logic.reasons` (the CLI's too);
the rest is the console's own phrasing of the catalogue. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from shulian.audit.window import DEFAULT_TZ
from shulian.catalog.models import (
    Catalog,
    DropMask,
    FieldMapping,
    GeneraliseRegionMask,
    HmacMask,
    KeepMask,
    ListEntry,
    Mask,
    NameMask,
    ShareType,
    SharingList,
    TruncateDateMask,
)
from shulian.logic.reasons import check_words
from shulian.logic.reasons import reason_words as shared_reason_words

__all__ = ["EntryChange", "diff_lists", "entry_words", "field_words", "mapping_words",
           "mask_words", "reason_words", "when"]

_SHARE: dict[ShareType, tuple[str, str]] = {
    ShareType.UNCONDITIONAL: ("无条件共享", "unconditional sharing"),
    ShareType.CONDITIONAL: ("有条件共享", "conditional sharing"),
    ShareType.NONE: ("不予共享", "not shared"),
    ShareType.VERIFY: ("仅核验", "verification only"),
}


def _pick(pair: tuple[str, str], lang: str) -> str:
    return pair[1] if lang == "en" else pair[0]


def reason_words(reason: str, lang: str, *, field: str = "", check: str = "") -> str:
    """``element_check_failed`` on field ``SFZH``, check ``check_digit`` -> a sentence, from
    the one table of reason and check words (:mod:`shulian.logic.reasons`)."""
    words = shared_reason_words(reason)
    parts = [words.en if lang == "en" else words.zh]
    if field:
        parts.append(f"字段 {field}" if lang != "en" else f"field {field}")
    checked = check_words(check)
    if checked is not None:
        name = checked.en if lang == "en" else checked.zh
        parts.append(f"检查：{name}" if lang != "en" else f"check: {name}")
    return ("；" if lang != "en" else "; ").join(parts)


def mask_words(mask: Mask, lang: str) -> str:
    en = lang == "en"
    if isinstance(mask, KeepMask):
        return (f"keep the first {mask.first} and last {mask.last} characters" if en
                else f"保留前 {mask.first} 位和后 {mask.last} 位")
    if isinstance(mask, NameMask):
        return "keep the family name (张**)" if en else "仅保留姓氏（张**）"
    if isinstance(mask, HmacMask):
        return "keyed hash per consumer (joinable, not readable)" if en else \
            "按接收方加密散列（可关联，不可还原）"
    if isinstance(mask, TruncateDateMask):
        unit = {"year": ("年", "year"), "month": ("月", "month")}[mask.to]
        return f"date cut to the {unit[1]}" if en else f"日期截断到{unit[0]}"
    if isinstance(mask, GeneraliseRegionMask):
        unit = {"city": ("市", "city"), "province": ("省", "province")}[mask.to]
        return f"region generalised to the {unit[1]}" if en else f"区划泛化到{unit[0]}级"
    assert isinstance(mask, DropMask)
    return "never delivered (null)" if en else "不交付（置空）"


def when(ts: datetime | None, lang: str) -> str:
    if ts is None:
        return "no end" if lang == "en" else "长期"
    return ts.astimezone(DEFAULT_TZ).strftime("%Y-%m-%d %H:%M")


def field_words(entry: ListEntry, name: str, lang: str) -> str:
    mask = entry.masks.get(name)
    return name if mask is None else f"{name} ({mask_words(mask, lang)})"


def entry_words(entry: ListEntry, catalog: Catalog, lang: str) -> str:
    """One list entry as a sentence: who gets which fields of what, masked how, under which row
    filter, for which purpose, until when, approved by whom."""
    en = lang == "en"

    def agency(a: str) -> str:
        info = catalog.agencies.get(a)  # type: ignore[call-overload]
        return a if info is None else (f"{info.name} ({a})" if not en else a)

    ds = catalog.datasets.get(entry.dataset)
    ds_name = entry.dataset if ds is None else (ds.name if not en else entry.dataset)
    share = _pick(_SHARE[entry.share_type], lang)
    if entry.share_type is ShareType.NONE:
        head = (f"{agency(entry.provider)} does not share {ds_name} with "
                f"{agency(entry.consumer)}" if en else
                f"{agency(entry.provider)} 不向 {agency(entry.consumer)} 共享「{ds_name}」")
    elif entry.verify is not None:
        claims = ", ".join(entry.verify.claims)
        head = (f"{agency(entry.consumer)} may verify claims on {claims} of {ds_name} with "
                f"{agency(entry.provider)}, receiving no field" if en else
                f"{agency(entry.consumer)} 可向 {agency(entry.provider)} 核验「{ds_name}」的 "
                f"{claims}（仅核验，不获得数据）")
    else:
        fields = ", ".join(field_words(entry, f, lang) for f in entry.fields)
        head = (f"{agency(entry.consumer)} receives from {agency(entry.provider)} the fields "
                f"{fields} of {ds_name} ({share})" if en else
                f"{agency(entry.consumer)} 从 {agency(entry.provider)} 获得「{ds_name}」的字段 "
                f"{fields}（{share}）")
    parts = [head]
    if entry.row_filter:
        parts.append(f"only records where {entry.row_filter}" if en
                     else f"仅限满足 {entry.row_filter} 的记录")
    parts.append(f"purpose: {entry.purpose}; legal basis: {entry.legal_basis}" if en
                 else f"用途：{entry.purpose}；依据：{entry.legal_basis}")
    parts.append(f"valid {when(entry.valid_from, lang)} to {when(entry.valid_to, lang)}" if en
                 else f"有效期 {when(entry.valid_from, lang)} 至 {when(entry.valid_to, lang)}")
    if entry.approval is not None:
        a = entry.approval
        parts.append(f"approved by {a.ref}, valid {when(a.valid_from, lang)} to "
                     f"{when(a.valid_to, lang)}" if en else
                     f"审批 {a.ref}，有效期 {when(a.valid_from, lang)} 至 "
                     f"{when(a.valid_to, lang)}")
    return ("; " if en else "；").join(parts)


def mapping_words(canonical: str, fm: FieldMapping, lang: str) -> tuple[str, str, str]:
    """(their field, canonical element, how converted) for one field mapping."""
    en = lang == "en"
    how: list[str] = []
    if fm.codes:
        pairs = ", ".join(f"{k}→{v}" for k, v in list(fm.codes.items())[:8])
        how.append(f"codes {pairs}" if en else f"代码转换 {pairs}")
    if fm.date_formats:
        how.append(("date formats " if en else "日期格式 ") + " / ".join(fm.date_formats))
    if fm.unit is not None:
        how.append(f"amount in {fm.unit.value} → fen" if en else f"金额单位 {fm.unit.value} → 分")
    if fm.region is not None:
        how.append(f"region given as {fm.region.value}" if en
                   else f"区划输入为 {fm.region.value}（按 GB/T 2260 换算）")
    if fm.default is not None:
        how.append(f"default {fm.default}" if en else f"缺省值 {fm.default}")
    if not how:
        how.append("as is (checked against the element)" if en else "原样（按数据元校验）")
    source = fm.source or ("(none)" if en else "（无）")
    return source, canonical, "; ".join(how)


@dataclass(frozen=True)
class EntryChange:
    entry_id: str
    change: str  # added | removed | changed
    before: ListEntry | None
    after: ListEntry | None
    fields: tuple[str, ...] = ()  # what changed in a changed entry


def diff_lists(a: SharingList, b: SharingList) -> list[EntryChange]:
    """Entries added, removed or changed from version ``a`` to version ``b``."""
    old: Mapping[str, ListEntry] = {e.id: e for e in a.entries}
    new: Mapping[str, ListEntry] = {e.id: e for e in b.entries}
    out: list[EntryChange] = []
    for eid in sorted(set(old) | set(new)):
        before, after = old.get(eid), new.get(eid)
        if before is None:
            out.append(EntryChange(eid, "added", None, after))
        elif after is None:
            out.append(EntryChange(eid, "removed", before, None))
        elif before != after:
            x, y = before.model_dump(), after.model_dump()
            out.append(EntryChange(eid, "changed", before, after,
                                   tuple(k for k in x if x[k] != y.get(k))))
    return out
