"""Joint verification as a service: the caller (already authenticated as an agency), a dataset
and a parsed body in; an HTTP-shaped reply out, every answer and refusal audited first.

Order of checks, the first that fails decides: a verify entry of the list for (caller, dataset)
(else 403, not audited: there is no entry to name), the body's shape (400/413), each claim
allowed by the entry (403), the entry and its approval valid now (403), the rate limits (429
with the limit and the list's reason), the store rebuilt (503). Then every query is answered
from the store (:mod:`shulian.logic.verify`), its audit record is written and acknowledged, and
only then does the reply leave. Refusals after the entry is known are audited too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import orjson

from shulian.catalog.models import Catalog, ShareType, SharingList
from shulian.clock import Clock
from shulian.log import get_logger
from shulian.logic.audit import build_verification
from shulian.logic.masking import consumer_key
from shulian.logic.ratelimit import Limited, RateLimiter
from shulian.logic.verify import (
    Answer,
    Query,
    Refusal,
    VerifyPlan,
    answer,
    digest,
    entry_in_force,
    parse_queries,
)

__all__ = ["AuditSink", "Reply", "Store", "VerifyService"]

log = get_logger(__name__)

AUDIT_KEY_LABEL = "_verification_audit"


class Store(Protocol):
    """The verification store of one dataset (``shulian.io.changelog.ChangelogTable``)."""

    @property
    def ready(self) -> bool: ...

    def get(self, key: bytes) -> bytes | None: ...


class AuditSink(Protocol):
    def write(self, records: list[dict[str, object]]) -> None: ...


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def _refused(r: Refusal) -> Reply:
    return Reply(r.status, {"error": r.code, "detail": r.detail})


class VerifyService:
    """Answers verification requests for the datasets whose stores it is given."""

    def __init__(self, *, catalog: Catalog, sharing_list: SharingList,
                 stores: Mapping[str, Store], audit: Mapping[str, AuditSink],
                 master_key: bytes, worker: str, clock: Clock) -> None:
        self._catalog = catalog
        self._stores = dict(stores)
        self._audit = dict(audit)
        self._worker = worker
        self._clock = clock
        self._limiter = RateLimiter()  # keyed by entry id: kept across list versions
        self._key = consumer_key(master_key, AUDIT_KEY_LABEL)
        self._state = self._plans_for(sharing_list)

    def _plans_for(self, sl: SharingList) -> tuple[SharingList, dict[tuple[str, str], VerifyPlan]]:
        plans: dict[tuple[str, str], VerifyPlan] = {}
        for e in sl.entries:
            if e.share_type is ShareType.VERIFY and e.dataset in self._stores:
                plans.setdefault((e.consumer, e.dataset),
                                 VerifyPlan.of(self._catalog, e, clock=self._clock))
        return sl, plans

    @property
    def sharing_list(self) -> SharingList:
        return self._state[0]

    def apply_list(self, sl: SharingList) -> None:
        """Answer under ``sl`` from the next request on (one assignment: a request in flight
        finishes under the version it started with). ``sl`` must have been accepted by the
        ledger (:mod:`shulian.verification.lists`)."""
        old = self._state
        self._state = self._plans_for(sl)
        log.info("verify.list_applied", version=sl.version, previous=old[0].version,
                 entries=sorted(p.entry.id for p in self._state[1].values()))

    def _record(self, plan: VerifyPlan, version: int, now: datetime, *, key: str | None,
                claims: list[tuple[str, str, str | None, str]],
                refused: str | None = None) -> dict[str, object]:
        e = plan.entry
        return build_verification(
            entry_id=e.id, list_version=version, dataset=e.dataset,
            provider=e.provider, consumer=e.consumer, ts=now, worker=self._worker,
            claims=claims, refused=refused,
            key_digest=None if key is None else digest(self._key, key))

    def _key_digest(self, key: str | None) -> str:
        """The limiter's key: the keyed digest the audit record carries ("" for no key)."""
        return "" if key is None else digest(self._key, key)

    def restore_limits(self, records: Iterable[Mapping[str, Any]], *, since: datetime) -> int:
        """Count again the claims admitted since ``since`` (the start of the day), as read
        back from the verification audit after a restart; returns how many were counted."""
        counted = 0
        for r in records:
            if r.get("kind") != "verification" or r.get("decision") != "verify":
                continue
            at = datetime.fromisoformat(str(r["ts"]).replace("Z", "+00:00"))
            claims = [c for c in r.get("claims") or [] if isinstance(c, list) and len(c) == 4]
            if at < since or not claims:
                continue
            self._limiter.count(entry=str(r["entry_id"]), consumer=str(r["consumer"]), at=at,
                                claims=[(str(r.get("key_digest") or ""), str(c[3]))
                                        for c in claims])
            counted += len(claims)
        return counted

    def _claims_of(self, plan: VerifyPlan, q: Query,
                   answers: list[Answer] | None) -> list[tuple[str, str, str | None, str]]:
        out: list[tuple[str, str, str | None, str]] = []
        for i, c in enumerate(q.claims):
            shown = orjson.dumps([c.field, c.how.value, c.value, c.low, c.high]).decode()
            out.append((c.field, c.how.value, None if answers is None else answers[i].value,
                        digest(self._key, shown)))
        return out

    def _refuse(self, plan: VerifyPlan, version: int, now: datetime, queries: list[Query],
                why: str, reply: Reply) -> Reply:
        records = [self._record(plan, version, now, key=plan.lookup_key(q.key),
                                claims=self._claims_of(plan, q, None), refused=why)
                   for q in queries]
        self._audit[plan.entry.dataset].write(records)
        log.warning("verify.refused", consumer=plan.entry.consumer, entry=plan.entry.id,
                    reason=why)
        return reply

    def verify(self, consumer: str, dataset: str, doc: Any) -> Reply:
        sl, plans = self._state
        plan = plans.get((consumer, dataset))
        if plan is None:
            log.warning("verify.no_entry", consumer=consumer, dataset=dataset)
            return Reply(403, {"error": "forbidden",
                               "detail": "no verify entry of the list for this agency and "
                                         "dataset"})
        parsed = parse_queries(doc)
        if isinstance(parsed, Refusal):
            return _refused(parsed)
        now = self._clock.now()
        refusal = plan.refuse(parsed)
        if refusal is not None:
            why = "claim_not_allowed" if refusal.status == 403 else refusal.code
            return self._refuse(plan, sl.version, now, parsed, why, _refused(refusal))
        not_in_force = entry_in_force(plan.entry, now)
        if not_in_force is not None:
            return self._refuse(plan, sl.version, now, parsed, not_in_force.value, Reply(
                403, {"error": "entry_not_in_force", "detail": f"the verify entry "
                      f"{plan.entry.id} is not in force: {not_in_force.value}"}))
        store = self._stores[dataset]
        if not store.ready:
            return Reply(503, {"error": "store_rebuilding",
                               "detail": "the verification store is being rebuilt"},
                         {"Retry-After": "5"})
        keys = [plan.lookup_key(q.key) for q in parsed]
        assert plan.entry.verify is not None
        limited = self._limiter.admit(
            entry=plan.entry.id, consumer=consumer, limits=plan.entry.verify.rate_limit,
            now=now, claims=[(self._key_digest(k), d) for k, q in zip(keys, parsed, strict=True)
                             for *_, d in self._claims_of(plan, q, None)])
        if limited is not None:
            return self._refuse(plan, sl.version, now, parsed, f"rate_limited:{limited.limit}",
                                _limited(limited))
        results: list[dict[str, Any]] = []
        records: list[dict[str, object]] = []
        for k, q in zip(keys, parsed, strict=True):
            raw = None if k is None else store.get(k.encode("utf-8"))
            stored = None if raw is None else orjson.loads(raw)
            answers = [answer(plan, c, stored) for c in q.claims]
            results.append({"answers": [a.value for a in answers]})
            records.append(self._record(plan, sl.version, now, key=k,
                                        claims=self._claims_of(plan, q, answers)))
        self._audit[dataset].write(records)
        return Reply(200, {"dataset": dataset, "entry": plan.entry.id,
                           "list_version": sl.version, "results": results})


def _limited(limited: Limited) -> Reply:
    return Reply(429, {"error": "rate_limited", "limit": limited.limit, "value": limited.value,
                       "reason": limited.reason},
                 {"Retry-After": str(max(1, limited.retry_after_s))})

