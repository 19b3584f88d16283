"""List versions for people: a version in words a data officer reads, the difference between
two versions, and the history of versions (catalogue, then control topic) with the verdict each
got. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from shulian.catalog.approval import (
    ListAccepted,
    ListIgnored,
    ListLedger,
    ListRefused,
    ListVerdict,
    version_digest,
)
from shulian.catalog.keys import Keyring
from shulian.catalog.models import (
    AgencyId,
    Catalog,
    GeneraliseRegionMask,
    KeepMask,
    ListEntry,
    Mask,
    ShareType,
    SharingList,
    TruncateDateMask,
)
from shulian.errors import ConfigError

__all__ = ["HistoryItem", "describe", "diff", "history", "in_force"]

_SHARE = {ShareType.UNCONDITIONAL: "unconditionally (无条件共享)",
          ShareType.CONDITIONAL: "on condition (有条件共享)",
          ShareType.NONE: "nothing: not shared (不予共享)",
          ShareType.VERIFY: "answers to claims only: verify only (仅核验)"}


def _mask(mask: Mask) -> str:
    if isinstance(mask, KeepMask):
        return f"only the first {mask.first} and last {mask.last} characters"
    if isinstance(mask, TruncateDateMask):
        return f"cut to the {mask.to}"
    if isinstance(mask, GeneraliseRegionMask):
        return f"generalised to the {mask.to}"
    return {"name": "family name only", "hmac": "a keyed pseudonym (HMAC)",
            "drop": "never delivered (null)"}.get(mask.type, mask.type)


def _name(catalog: Catalog | None, agency: AgencyId) -> str:
    a = catalog.agencies.get(agency) if catalog else None
    return f"{a.name} ({agency})" if a else agency


def describe_entry(e: ListEntry, catalog: Catalog | None = None) -> list[str]:
    ds = catalog.datasets.get(e.dataset) if catalog else None
    what = f"{ds.name} ({e.dataset})" if ds else e.dataset
    lines = [f"[{e.id}] {_name(catalog, e.consumer)} receives {what} from "
             f"{_name(catalog, e.provider)}: {_SHARE[e.share_type]}"]
    if e.share_type is not ShareType.NONE:
        plain = [f for f in e.fields if f not in e.masks]
        lines.append(f"    fields in clear: {', '.join(plain) or '(none)'}")
        for f, m in e.masks.items():
            lines.append(f"    {f}: {_mask(m)}")
        if e.row_filter:
            lines.append(f"    only records where: {' '.join(e.row_filter.split())}")
    lines.append(f"    why: {e.purpose}; legal basis: {e.legal_basis}")
    until = e.valid_to.isoformat() if e.valid_to else "until revoked"
    lines.append(f"    valid from {e.valid_from.isoformat()} {'to ' if e.valid_to else ''}{until}")
    if e.approval is not None:
        lines.append(f"    approval {e.approval.ref}, valid {e.approval.valid_from.isoformat()}"
                     f" to {e.approval.valid_to.isoformat()}")
    return lines


def describe(sl: SharingList, catalog: Catalog | None = None) -> list[str]:
    sup = (f", supersedes v{sl.supersedes.version} ({sl.supersedes.digest[:12]})"
           if sl.supersedes else "")
    lines = [f"Sharing list version {sl.version}, published {sl.published.isoformat()}{sup}",
             f"digest {version_digest(sl)}"]
    if sl.note:
        lines.append(sl.note)
    for e in sl.entries:
        lines.extend(describe_entry(e, catalog))
    return lines


def diff(old: SharingList, new: SharingList) -> list[str]:
    """Entry by entry: added, removed, and each changed attribute (old -> new)."""
    a = {e.id: e for e in old.entries}
    b = {e.id: e for e in new.entries}
    out: list[str] = []
    for eid in sorted(set(a) | set(b)):
        if eid not in a:
            out.append(f"+ {eid}: new entry ({b[eid].consumer} <- {b[eid].provider}, "
                       f"{b[eid].dataset}, {b[eid].share_type.value})")
        elif eid not in b:
            out.append(f"- {eid}: removed")
        else:
            x = a[eid].model_dump(mode="json")
            y = b[eid].model_dump(mode="json")
            for k in sorted(set(x) | set(y)):
                if x.get(k) != y.get(k):
                    out.append(f"~ {eid}.{k}: {x.get(k)!r} -> {y.get(k)!r}")
    return out


@dataclass(frozen=True)
class HistoryItem:
    source: str  # a catalogue file or control-topic@offset
    version: int | None
    verdict: ListVerdict | None  # None: unreadable (reasons in ``why``)
    why: tuple[str, ...] = ()
    sharing_list: SharingList | None = None

    @property
    def status(self) -> str:
        v = self.verdict
        if isinstance(v, ListAccepted):
            return "accepted"
        if isinstance(v, ListIgnored):
            return "already accepted"
        return "refused"

    @property
    def reasons(self) -> tuple[str, ...]:
        return self.verdict.reasons if isinstance(self.verdict, ListRefused) else self.why


def history(catalog: Catalog, published: Iterable[tuple[str, SharingList | ConfigError]], *,
            now: datetime | None) -> tuple[list[HistoryItem], ListLedger]:
    """The catalogue's versions (accepted when it was loaded), then each published version in
    order, judged as the worker judges it. ``published``: (where, list or why it did not load)."""
    ledger = ListLedger.starting_at(Keyring(catalog.keys), catalog.sharing_lists.values())
    items = [HistoryItem(f"catalog list.v{v}.yaml", v, ListAccepted(v, d),
                         sharing_list=catalog.sharing_lists[v])
             for v, d in sorted(ledger.accepted.items())]
    for where, sl in published:
        if isinstance(sl, ConfigError):
            items.append(HistoryItem(where, None, None, tuple(str(i) for i in sl.issues)))
            continue
        items.append(HistoryItem(where, sl.version, ledger.offer(sl, now=now), sharing_list=sl))
    return items, ledger


def in_force(items: list[HistoryItem]) -> SharingList | None:
    accepted = [i.sharing_list for i in items if isinstance(i.verdict, ListAccepted)]
    return accepted[-1] if accepted else None
