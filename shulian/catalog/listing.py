"""The catalogue as rows for people: agencies, datasets, elements, consumers (the list in
force), with masks described with their parameters ("first 3 / last 4 kept").

Pure: takes a loaded :class:`~shulian.catalog.models.Catalog`; ``shulian catalog list`` prints
the rows, ``shulian audit report`` and the console reuse :func:`describe_mask`.
"""

from __future__ import annotations

from typing import Any

from shulian.catalog.models import (
    DELIVERING,
    Catalog,
    DropMask,
    GeneraliseRegionMask,
    HmacMask,
    KeepMask,
    Mask,
    NameMask,
    ShareType,
    SharingList,
    TruncateDateMask,
)

__all__ = ["KINDS", "SHARE_TYPE_WORDS", "agencies", "consumers", "datasets", "describe_mask",
           "describe_masks", "elements", "rows"]

KINDS = ("agencies", "datasets", "elements", "consumers")

SHARE_TYPE_WORDS = {
    ShareType.UNCONDITIONAL: "无条件共享 unconditional",
    ShareType.CONDITIONAL: "有条件共享 conditional",
    ShareType.NONE: "不予共享 not shared",
    ShareType.VERIFY: "仅核验 verify only",
}

_TO = {"year": "year", "month": "month", "city": "city", "province": "province"}


def describe_mask(mask: Mask) -> str:
    """A mask with its parameters in words."""
    if isinstance(mask, KeepMask):
        kept = [p for p in (f"first {mask.first}" if mask.first else "",
                            f"last {mask.last}" if mask.last else "") if p]
        return (" / ".join(kept) + " kept") if kept else "all replaced by *"
    if isinstance(mask, NameMask):
        return "family name kept (张**)"
    if isinstance(mask, HmacMask):
        return "keyed hash (HMAC-SHA256 per consumer)"
    if isinstance(mask, TruncateDateMask):
        return f"truncated to the {_TO[mask.to]}"
    if isinstance(mask, GeneraliseRegionMask):
        return f"generalised to the {_TO[mask.to]}"
    if isinstance(mask, DropMask):
        return "dropped (null)"
    raise TypeError(f"unknown mask {mask!r}")  # pragma: no cover - the union is closed


def describe_masks(masks: dict[str, Mask]) -> str:
    return "; ".join(f"{f}: {describe_mask(m)}" for f, m in sorted(masks.items()))


def _name(catalog: Catalog, agency: str) -> str:
    found = catalog.agencies.get(agency)  # type: ignore[call-overload]
    return agency if found is None else str(found.name)


def agencies(catalog: Catalog) -> list[dict[str, Any]]:
    entries = catalog.current_list.entries
    out = []
    for a in sorted(catalog.agencies.values(), key=lambda a: a.id):
        out.append({
            "id": a.id, "name": a.name, "region_code": a.region_code,
            "region": catalog.regions.get(a.region_code, ""), "contact": a.contact,
            "publishes": sorted(d for ag, d in catalog.mappings if ag == a.id),
            "receives": sorted({e.dataset for e in entries if e.consumer == a.id
                                and e.share_type in DELIVERING}),
        })
    return out


def datasets(catalog: Catalog) -> list[dict[str, Any]]:
    return [{"id": d.id, "name": d.name, "version": d.version, "key": list(d.key),
             "fields": [f.name for f in d.fields],
             "providers": sorted(a for a, ds in catalog.mappings if ds == d.id)}
            for d in sorted(catalog.datasets.values(), key=lambda d: d.id)]


def elements(catalog: Catalog) -> list[dict[str, Any]]:
    return [{"id": e.id, "name": e.name, "type": e.type.value, "standard": e.standard or "",
             "codes": len(e.codes or {})}
            for e in sorted(catalog.elements.values(), key=lambda e: e.id)]


def consumers(catalog: Catalog, sharing: SharingList | None = None) -> list[dict[str, Any]]:
    """One row per entry of the list (default: the newest version): who receives which
    dataset from whom, how, for what, with which fields and masks, until when."""
    sl = sharing if sharing is not None else catalog.current_list
    out = []
    for e in sorted(sl.entries, key=lambda e: (e.consumer, e.dataset, e.id)):
        out.append({
            "list_version": sl.version, "entry": e.id,
            "consumer": e.consumer, "consumer_name": _name(catalog, e.consumer),
            "dataset": e.dataset,
            "provider": e.provider, "provider_name": _name(catalog, e.provider),
            "share_type": SHARE_TYPE_WORDS[e.share_type], "purpose": e.purpose,
            "fields": list(e.fields),
            "masks": {f: describe_mask(m) for f, m in sorted(e.masks.items())},
            "row_filter": e.row_filter or "",
            "valid_from": e.valid_from.isoformat(timespec="minutes"),
            "valid_to": e.valid_to.isoformat(timespec="minutes") if e.valid_to else "",
            "approval": e.approval.ref if e.approval else "",
        })
    return out


def rows(catalog: Catalog, kind: str) -> list[dict[str, Any]]:
    if kind == "agencies":
        return agencies(catalog)
    if kind == "datasets":
        return datasets(catalog)
    if kind == "elements":
        return elements(catalog)
    if kind == "consumers":
        return consumers(catalog)
    raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
