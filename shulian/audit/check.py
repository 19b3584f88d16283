"""``shulian audit verify``, the pure part: hash chains, completeness both ways, digests.

- Chains: every partition of every audit topic is checked from its first record with
  :func:`shulian.logic.audit.verify_chain` (a chain cannot be checked from the middle without a
  trusted head, so a time window never shortens this part).
- Completeness: an egress record and a ``deliver`` audit record match on
  ``(egress topic, record key, entry id, list version)``. Every egress record inside the window
  needs a matching audit record (live ``decision`` or ``replay``) anywhere in the log, and every
  ``deliver`` audit record inside the window that names an egress topic needs an egress record.
  Duplicates on either side (at-least-once redelivery) are fine.
- Signatures: every egress record must carry the chain's valid signature
  (:func:`forged_egress`); a forgery is a break even when a deliver audit record matches its
  key, entry and version.
- Digests: where the canonical record an audit record names (``source``) was read, its
  SHA-256 must equal the audited ``record_digest``. An egress record's ``shulian.digest`` is a
  digest of its view (:mod:`shulian.logic.digests`), recomputed here from the record itself,
  and matches the audited ``egress_digest``; records written before carry the plain
  ``record_digest`` instead. So egress -> audit -> canonical needs no secret key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shulian.audit.window import Window, to_ms
from shulian.catalog.keys import Keyring
from shulian.chain import headers as H
from shulian.chain.messages import InMessage, header_str
from shulian.logic.audit import parse_audit, record_digest, verify_chain
from shulian.logic.auditseal import is_seal, verify_seals
from shulian.logic.digests import DIGEST_PLAIN, DIGEST_VIEW, digest_scheme, view_digest
from shulian.logic.egress import DIGEST_HEADER, verify_egress

__all__ = [
    "AuditEntry",
    "Break",
    "Delivery",
    "audit_entries",
    "audited_egress_digest",
    "completeness",
    "deliveries_from_audit",
    "deliveries_from_egress",
    "digest_breaks",
    "digest_wrong",
    "forged_egress",
    "ts_ms",
    "verify_partitions",
]


@dataclass(frozen=True, slots=True, order=True)
class Break:
    """One thing wrong, where it is."""

    topic: str
    partition: int
    offset: int
    what: str


def verify_partitions(partitions: Mapping[tuple[str, int], Sequence[InMessage]],
                      keys: Keyring | None = None,
                      unsigned: dict[tuple[str, int], int] | None = None) -> list[Break]:
    """The hash-chain breaks of every partition (each checked from its genesis) and, with
    ``keys``, the seal breaks (:func:`shulian.logic.auditseal.verify_seals`); the count of
    records after the last valid seal of each partition goes into ``unsigned``."""
    breaks: list[Break] = []
    for (topic, partition), msgs in sorted(partitions.items()):
        items = [(m.offset, m.value or b"") for m in sorted(msgs, key=lambda m: m.offset)]
        breaks.extend(Break(topic, partition, b.offset, b.what) for b in verify_chain(items))
        if keys is None:
            continue
        verdict = verify_seals(topic, partition, items, keys)
        breaks.extend(Break(topic, partition, o, why) for o, why in verdict.breaks)
        if unsigned is not None and verdict.unsigned_tail:
            unsigned[(topic, partition)] = verdict.unsigned_tail
    return breaks


def ts_ms(iso: str) -> int:
    """Epoch milliseconds of an audit ``ts`` (``2026-03-01T00:00:00.000Z``)."""
    return to_ms(datetime.fromisoformat(iso.replace("Z", "+00:00")))


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """A parsed audit record and where it sits."""

    topic: str
    partition: int
    offset: int
    record: dict[str, Any]

    @property
    def ts_ms(self) -> int:
        return ts_ms(str(self.record["ts"]))


def audit_entries(msgs: Iterable[InMessage]) -> list[AuditEntry]:
    """The parseable audit records among ``msgs``, seals left out (they only vouch for the
    chain; unparseable records are chain breaks already)."""
    out: list[AuditEntry] = []
    for m in msgs:
        rec = parse_audit(m.value or b"")
        if rec is not None and isinstance(rec.get("ts"), str) and not is_seal(rec):
            out.append(AuditEntry(m.topic, m.partition, m.offset, rec))
    return out


@dataclass(frozen=True, slots=True)
class Delivery:
    """One side of a delivery: an egress record or a ``deliver`` audit record."""

    egress_topic: str
    record_key: str
    entry_id: str
    list_version: int
    topic: str  # where this item was read (the egress topic, or the audit topic)
    partition: int
    offset: int
    ts_ms: int
    digest: str | None = None  # the canonical record's digest (signed egress records carry it)

    @property
    def match_key(self) -> tuple[str, str, str, int]:
        return (self.egress_topic, self.record_key, self.entry_id, self.list_version)

    def match_keys(self) -> list[tuple[Any, ...]]:
        """An audit record matches with and without its digest; an egress record with its
        digest when it carries one (signed), else without."""
        base: tuple[Any, ...] = self.match_key
        return [base, (*base, self.digest)] if self.digest else [base]


def deliveries_from_audit(entries: Iterable[AuditEntry]) -> list[Delivery]:
    """The ``deliver`` audit records that name an egress topic (sink replays name none)."""
    out: list[Delivery] = []
    for e in entries:
        r = e.record
        if r.get("decision") != "deliver" or not r.get("egress_topic"):
            continue
        # the Kafka key of the egress record: pseudonymised when the consumer may not see a
        # key field (``egress_key``), else the canonical record key
        key = r.get("egress_key") or r.get("record_key", "")
        out.append(Delivery(str(r["egress_topic"]), str(key), str(r.get("entry_id", "")),
                            int(r.get("list_version", -1)), e.topic, e.partition, e.offset,
                            e.ts_ms, digest=audited_egress_digest(r)))
    return out


def audited_egress_digest(record: Mapping[str, Any]) -> str | None:
    """The ``shulian.digest`` the audited delivery's egress record carries: ``egress_digest``
    (a digest of the view), or for audit records written before it their ``record_digest``."""
    value = record.get("egress_digest") or record.get("record_digest")
    return None if value is None else str(value)


def deliveries_from_egress(msgs: Iterable[InMessage]) -> tuple[list[Delivery], list[Break]]:
    """Egress records as deliveries; records without key or entry/version headers are breaks."""
    out: list[Delivery] = []
    breaks: list[Break] = []
    for m in msgs:
        entry = header_str(m.headers, H.ENTRY)
        version = header_str(m.headers, H.LIST_VERSION)
        try:
            key = (m.key or b"").decode("utf-8")
        except UnicodeDecodeError:
            key = ""
        if not key or entry is None or version is None or not version.isdigit():
            breaks.append(Break(m.topic, m.partition, m.offset,
                                "egress record without key or shulian.entry/list.version headers"))
            continue
        out.append(Delivery(m.topic, key, entry, int(version), m.topic, m.partition, m.offset,
                            m.timestamp_ms, digest=header_str(m.headers, DIGEST_HEADER)))
    return out, breaks


def digest_wrong(m: InMessage) -> str | None:
    """Why a signed egress record's ``shulian.digest`` is not one the chain writes (None: it
    is, or the record has none): not the digest of its own view, or of no known scheme."""
    digest = header_str(m.headers, DIGEST_HEADER)
    if digest is None:
        return None
    scheme = digest_scheme(digest)
    if scheme == DIGEST_PLAIN:
        return None  # written before view digests: matched against the audited record_digest
    if scheme != DIGEST_VIEW:
        return "unknown shulian.digest scheme"
    entry = header_str(m.headers, H.ENTRY) or ""
    version = header_str(m.headers, H.LIST_VERSION) or ""
    if digest != view_digest(m.topic, m.key, m.value, entry, version):
        return "its shulian.digest is not the digest of its view"
    return None


def forged_egress(msgs: Iterable[InMessage], keys: Keyring, *, now: datetime | None
                  ) -> list[Break]:
    """Egress records whose chain signature does not hold (shulian.logic.egress), or whose
    digest header the chain would not have written (:func:`digest_wrong`)."""
    breaks: list[Break] = []
    for m in msgs:
        why = verify_egress(topic=m.topic, key=m.key, value=m.value, headers=m.headers,
                            keys=keys, at=datetime.fromtimestamp(m.timestamp_ms / 1000, UTC),
                            now=now) or digest_wrong(m)
        if why is not None:
            breaks.append(Break(m.topic, m.partition, m.offset, f"forged egress record: {why}"))
    return breaks


def completeness(
    egress: Sequence[Delivery], audited: Sequence[Delivery], window: Window
) -> list[Break]:
    """Both directions of the match, judged for the items inside ``window``."""
    audited_keys = {k for d in audited for k in d.match_keys()}
    egress_keys = {k for d in egress for k in d.match_keys()}
    breaks: list[Break] = []
    for d in egress:
        if window.contains(d.ts_ms) and d.match_keys()[-1] not in audited_keys:
            breaks.append(Break(d.topic, d.partition, d.offset,
                                f"egress record without a deliver audit record (key "
                                f"{d.record_key!r}, entry {d.entry_id}, v{d.list_version})"))
    for d in audited:
        if window.contains(d.ts_ms) and not any(k in egress_keys for k in d.match_keys()):
            breaks.append(Break(d.topic, d.partition, d.offset,
                                f"deliver audit record without its egress record on "
                                f"{d.egress_topic} (key {d.record_key!r}, entry {d.entry_id}, "
                                f"v{d.list_version})"))
    return breaks


def digest_breaks(
    entries: Iterable[AuditEntry],
    canonical: Mapping[tuple[str, int, int], bytes],
    *,
    read_topics: frozenset[str],
    window: Window,
) -> list[Break]:
    """Audit records (inside ``window``) whose canonical record differs from the audited digest
    or is missing from a canonical topic that was read in full."""
    breaks: list[Break] = []
    for e in entries:
        src = e.record.get("source")
        if not isinstance(src, dict) or not window.contains(e.ts_ms):
            continue
        where = (str(src.get("topic")), int(src.get("partition", -1)), int(src.get("offset", -1)))
        if where[0] not in read_topics:
            continue
        value = canonical.get(where)
        if value is None:
            breaks.append(Break(e.topic, e.partition, e.offset,
                                f"canonical record {where[0]}[{where[1]}]@{where[2]} not found"))
        elif record_digest(value) != e.record.get("record_digest"):
            breaks.append(Break(e.topic, e.partition, e.offset,
                                f"record_digest differs from canonical record "
                                f"{where[0]}[{where[1]}]@{where[2]}"))
    return breaks

