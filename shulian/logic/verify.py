"""Joint verification (联合校验), the pure part: what a verify entry allows, the store's record
of a canonical record, and the answer to a claim (docs/VERIFY.md).

A verify entry never delivers a field. The chain keeps, per dataset with verify entries, the
latest *projection* of each canonical record by the entries' lookup key: the key fields and the
fields any entry may claim, as canonical text (dates ``YYYY-MM-DD``, timestamps RFC 3339 UTC
with milliseconds, integers as integers). A claim is answered from that projection only:

- ``unknown``   no record has this key (or the key cannot be a canonical key at all), or the
                stored projection does not hold the field (it became claimable later);
- ``match``     equals: the claimed value is the stored one; normalised: it is after the
                element's check normalises it; range: the stored value lies in [min, max];
                exists: the stored value is not null;
- ``no_match``  otherwise (a claimed value that fails the element's check cannot equal a
                canonical value, so it is ``no_match`` too, and says nothing about the record).

An answer is one of these three words per claim: never a value, never which part differed,
and a claim's answer depends on the stored value of its own field only (a property test holds
this). Everything here is a value; the store, the changelog and the HTTP route are elsewhere.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from shulian.catalog.models import Catalog, ClaimHow, ElementType, ListEntry, ShareType
from shulian.catalog.specs import normaliser
from shulian.clock import Clock
from shulian.logic.masking import canonical_text
from shulian.logic.result import Rejected
from shulian.logic.supersede import SourceOrder, order_of

__all__ = ["MAX_CLAIMS", "Answer", "Claim", "EntryCheck", "Projection", "Query", "Refusal",
           "VerifyPlan", "answer", "entry_in_force", "parse_queries", "stored_text"]

MAX_CLAIMS = 1000
"""Claims in one request, all queries together."""

_CATALOG_TZ = ZoneInfo("Asia/Shanghai")
_NUMERIC = frozenset({ElementType.MONEY_FEN, ElementType.INTEGER})


class Answer(StrEnum):
    MATCH = "match"
    NO_MATCH = "no_match"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request refused as a whole: HTTP status, a code and words (never about a record)."""

    status: int
    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class Claim:
    field: str
    how: ClaimHow
    value: Any = None  # equals / normalised
    low: Any = None  # range
    high: Any = None


@dataclass(frozen=True, slots=True)
class Query:
    key: dict[str, Any]
    claims: tuple[Claim, ...]


def stored_text(value: object) -> object:
    """A canonical value as the store keeps it: dates and timestamps as canonical text,
    integers and strings as they are, null as null."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, date | datetime):  # datetime is a date too
        return canonical_text(value)
    return value


def _claim(raw: Any, at: str) -> Claim | Refusal:
    if not isinstance(raw, dict):
        return Refusal(400, "bad_claim", f"{at}: a claim is an object")
    field, how = raw.get("field"), raw.get("how")
    if not isinstance(field, str) or not field:
        return Refusal(400, "bad_claim", f"{at}.field: a field name is required")
    try:
        method = ClaimHow(str(how))
    except ValueError:
        return Refusal(400, "bad_claim", f"{at}.how: one of "
                       f"{', '.join(h.value for h in ClaimHow)}")
    extra = set(raw) - {"field", "how", "value", "min", "max"}
    if extra:
        return Refusal(400, "bad_claim", f"{at}: unknown members {sorted(extra)}")
    if method in (ClaimHow.EQUALS, ClaimHow.NORMALISED):
        if "value" not in raw or raw["value"] is None:
            return Refusal(400, "bad_claim", f"{at}.value: required for '{method.value}'")
        return Claim(field, method, value=raw["value"])
    if method is ClaimHow.RANGE:
        if raw.get("min") is None and raw.get("max") is None:
            return Refusal(400, "bad_claim", f"{at}: a range claim needs min, max or both")
        return Claim(field, method, low=raw.get("min"), high=raw.get("max"))
    return Claim(field, method)


def parse_queries(doc: Any) -> list[Query] | Refusal:
    """``{"key": {...}, "claims": [...]}`` or ``{"queries": [that, ...]}`` -> queries."""
    if not isinstance(doc, dict):
        return Refusal(400, "bad_request", "the body is a JSON object")
    items = doc.get("queries") if "queries" in doc else [doc]
    if not isinstance(items, list) or not items:
        return Refusal(400, "bad_request", "'queries' is a non-empty list")
    out: list[Query] = []
    total = 0
    for i, item in enumerate(items):
        at = f"queries[{i}]" if "queries" in doc else "body"
        if not isinstance(item, dict) or set(item) - {"key", "claims"}:
            return Refusal(400, "bad_request", f"{at}: an object with 'key' and 'claims'")
        key, claims = item.get("key"), item.get("claims")
        if not isinstance(key, dict) or not key:
            return Refusal(400, "bad_request", f"{at}.key: an object of key field -> value")
        if not isinstance(claims, list) or not claims:
            return Refusal(400, "bad_request", f"{at}.claims: a non-empty list")
        total += len(claims)
        if total > MAX_CLAIMS:
            return Refusal(413, "too_many_claims", f"at most {MAX_CLAIMS} claims per request")
        parsed: list[Claim] = []
        for j, raw in enumerate(claims):
            c = _claim(raw, f"{at}.claims[{j}]")
            if isinstance(c, Refusal):
                return c
            parsed.append(c)
        out.append(Query(dict(key), tuple(parsed)))
    return out


# --- what an entry allows --------------------------------------------------------------------


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=_CATALOG_TZ)


class EntryCheck(StrEnum):
    """Why an entry cannot answer now (the policy's words, reused by the audit)."""

    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    APPROVAL_NOT_YET_VALID = "approval_not_yet_valid"
    APPROVAL_EXPIRED = "approval_expired"


def entry_in_force(entry: ListEntry, now: datetime) -> EntryCheck | None:
    """None when the entry and its approval are valid at ``now`` (timezone-aware)."""
    if now < _aware(entry.valid_from):
        return EntryCheck.NOT_YET_VALID
    if entry.valid_to is not None and now >= _aware(entry.valid_to):
        return EntryCheck.EXPIRED
    if entry.approval is not None:
        if now < _aware(entry.approval.valid_from):
            return EntryCheck.APPROVAL_NOT_YET_VALID
        if now >= _aware(entry.approval.valid_to):
            return EntryCheck.APPROVAL_EXPIRED
    return None


Normaliser = Callable[[object], object]


@dataclass(frozen=True)
class VerifyPlan:
    """One verify entry made ready to answer: its lookup key and, per claimable field, the
    allowed hows, the element's normaliser and whether it compares as a number."""

    entry: ListEntry
    key: tuple[str, ...]
    key_normalisers: tuple[Normaliser, ...]
    claims: Mapping[str, tuple[frozenset[ClaimHow], Normaliser, bool]]

    @classmethod
    def of(cls, catalog: Catalog, entry: ListEntry, *, clock: Clock) -> VerifyPlan:
        """``clock``: the decision clock the element checks read (a citizen id's birth date
        must not be after its today)."""
        if entry.share_type is not ShareType.VERIFY or entry.verify is None:
            raise ValueError(f"entry {entry.id} is not a verify entry")
        dataset = catalog.datasets[entry.dataset]

        def norm(name: str) -> tuple[Normaliser, bool]:
            df = dataset.field(name)
            if df is None:
                raise ValueError(f"{entry.id}: dataset {dataset.id} has no field {name}")
            element = catalog.elements[df.element]
            fn = normaliser(element, regions=catalog.regions,
                            retired_regions=catalog.retired_regions, clock=clock)
            return fn, element.type in _NUMERIC

        key = tuple(entry.verify.key) or tuple(dataset.key)
        claims = {f: (frozenset(h), *norm(f)) for f, h in entry.verify.claims.items()}
        return cls(entry, key, tuple(norm(k)[0] for k in key), claims)

    def refuse(self, queries: Sequence[Query]) -> Refusal | None:
        """403 when a query asks a field or a how the entry does not allow, 400 when its key
        does not name exactly the entry's key fields."""
        for q in queries:
            if set(q.key) != set(self.key):
                return Refusal(400, "bad_key", f"the key is {{{', '.join(self.key)}}}")
            for c in q.claims:
                rule = self.claims.get(c.field)
                if rule is None or c.how not in rule[0]:
                    return Refusal(403, "claim_not_allowed",
                                   f"the entry allows no '{c.how.value}' claim on '{c.field}'")
        return None

    def lookup_key(self, key: Mapping[str, Any]) -> str | None:
        """The store key of a query's key, normalised by the key elements' checks; None when
        no canonical record can have it."""
        parts: list[str] = []
        for name, fn in zip(self.key, self.key_normalisers, strict=True):
            value = fn(key.get(name))
            if isinstance(value, Rejected):
                return None
            parts.append(canonical_text(stored_text(value)))
        return "|".join(parts)

    def claimed(self, claim: Claim, value: Any) -> tuple[bool, object]:
        """(usable, the claimed value as the store would hold it)."""
        fn, numeric = self.claims[claim.field][1:]
        if claim.how is ClaimHow.EQUALS:
            return True, value
        if numeric and isinstance(value, int) and not isinstance(value, bool):
            return True, value
        normal = fn(value)
        return (False, None) if isinstance(normal, Rejected) else (True, stored_text(normal))


def answer(plan: VerifyPlan, claim: Claim, stored: Mapping[str, Any] | None) -> Answer:
    """The answer to one claim given the stored projection of the record (None: no record)."""
    if stored is None or claim.field not in stored:
        return Answer.UNKNOWN
    value = stored[claim.field]
    if claim.how is ClaimHow.EXISTS:
        return Answer.NO_MATCH if value is None else Answer.MATCH
    if value is None:
        return Answer.NO_MATCH
    if claim.how is not ClaimHow.RANGE:
        ok, want = plan.claimed(claim, claim.value)
        return Answer.MATCH if ok and type(want) is type(value) and want == value \
            else Answer.NO_MATCH
    bounds: list[tuple[object, bool]] = []
    for bound, low in ((claim.low, True), (claim.high, False)):
        if bound is None:
            continue
        ok, b = plan.claimed(claim, bound)
        if not ok or type(b) is not type(value):
            return Answer.NO_MATCH
        bounds.append((b, low))
    for b, low in bounds:
        if (low and value < b) or (not low and value > b):
            return Answer.NO_MATCH
    return Answer.MATCH


# --- the store's record: a projection of the canonical record ----------------------------------


@dataclass(frozen=True)
class Projection:
    """What the chain writes to ``changelog.verify.<dataset>`` for one canonical record: the
    lookup key and the key and claimable fields of every verify entry of the dataset."""

    dataset: str
    providers: frozenset[str]
    key: tuple[str, ...]
    fields: tuple[str, ...]
    record_key: tuple[str, ...] = ()  # the dataset key (a serial number): source-order tie-break
    order_by: str | None = None  # the dataset's source time field (shulian.logic.supersede)

    @classmethod
    def of(cls, entries: Sequence[ListEntry], dataset_key: Sequence[str],
           order_by: str | None = None) -> Projection | None:
        verify = [e for e in entries if e.verify is not None]
        if not verify:
            return None
        first = verify[0].verify
        assert first is not None
        key = tuple(first.key) or tuple(dataset_key)
        fields = sorted({*key, *(f for e in verify for f in (e.verify.claims if e.verify
                                                              else {}))})
        return cls(verify[0].dataset, frozenset(e.provider for e in verify), key, tuple(fields),
                   tuple(dataset_key), order_by)

    def order(self, record: Mapping[str, Any], *, fallback_ms: int,
              stored: bytes | None) -> SourceOrder:
        """Where ``record`` (stored as ``stored``, None: deleted) stands in source order."""
        return order_of(record, order_by=self.order_by, record_key=self.record_key,
                        fallback_ms=fallback_ms, stored=stored)

    def project(self, record: Mapping[str, Any]) -> tuple[bytes, bytes] | None:
        """(store key, value bytes) of a canonical record; None when a key field is null."""
        parts: list[str] = []
        for k in self.key:
            v = record.get(k)
            if v is None:
                return None
            parts.append(canonical_text(stored_text(v)))
        value = {f: stored_text(record.get(f)) for f in self.fields}
        # json, not orjson: orjson's bytes keep a ~2 KB buffer each (measured), a store of
        # a million of them would hold 4 GB instead of the ~100 bytes they say
        body = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return "|".join(parts).encode("utf-8"), body.encode("utf-8")


def digest(key: bytes, text: str) -> str:
    """A keyed digest of personal data for the audit (a plain hash of a citizen ID could be
    reversed by trying every ID)."""
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()
