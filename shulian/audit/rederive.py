"""What ``replay deliver`` sends, re-derived (pure): never a copy of an egress record.

An egress topic can hold records the chain never wrote (anyone with write access to it), so
re-sending what is there would launder a forgery as a replay. Instead, for every live
``deliver`` audit record of the window, the canonical record it names is taken from the
canonical topic, its SHA-256 must equal the audited ``record_digest``, the list version the
audit names re-decides it with the audited ``ts`` as *now*, and the entry's view is encoded
as the enforce stage does (:mod:`shulian.chain.enforce`; the digest of that view must equal
the audited ``egress_digest`` where there is one, :mod:`shulian.logic.digests`) and signed as
it signs, per batch over a Merkle root (:func:`sign_rederived`). Whatever does not
re-derive to a delivery is refused with the reason, never sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from shulian.audit.check import AuditEntry, audited_egress_digest, ts_ms
from shulian.catalog.keys import SigningKey
from shulian.chain import headers as H
from shulian.chain.enforce import ViewSchema
from shulian.chain.messages import InMessage, header_str
from shulian.chain.wire import decode_body, encode_wire, split_wire
from shulian.logic.audit import record_digest
from shulian.logic.digests import view_digest
from shulian.logic.egress import DIGEST_HEADER, EgressContent, sign_batch
from shulian.logic.policy import Decision, Outcome

__all__ = ["REPLAY_HEADER", "Decider", "Rederived", "Refused", "decode_value", "rederive",
           "select_deliveries", "sign_rederived"]

REPLAY_HEADER = "shulian.replay"


class Decider(Protocol):
    def decide(self, *, dataset: str, provider: str, record: Mapping[str, Any],
               record_key: str, now: datetime) -> list[Decision]: ...


class Schemas(Protocol):
    def parsed(self, schema_id: int) -> Any: ...


@dataclass(frozen=True, slots=True)
class Rederived:
    """One egress record to send again, with the audit record it re-derives (its signature
    headers are added by :func:`sign_rederived`)."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    audit: Mapping[str, Any]
    audit_position: tuple[str, int, int]
    content: EgressContent


@dataclass(frozen=True, slots=True)
class Refused:
    audit_position: tuple[str, int, int]
    why: str


def decode_value(schemas: Schemas, value: bytes | None) -> dict[str, Any] | None:
    """A record in the Confluent wire format decoded, or None when it cannot be."""
    wire = split_wire(value or b"")
    if not isinstance(wire, tuple):
        return None
    parsed = schemas.parsed(wire[0])
    record = None if parsed is None else decode_body(parsed, wire[1])
    return record if isinstance(record, dict) else None


def rederive(
    audit: Mapping[str, Any],
    position: tuple[str, int, int],
    *,
    canonical: Mapping[tuple[str, int, int], InMessage],
    engines: Mapping[int, Decider],
    views: Mapping[tuple[int, str], ViewSchema],
    schemas: Schemas,
) -> Rederived | Refused:
    """The egress record the chain sent for ``audit`` (a live ``deliver`` audit record at
    ``position``), made again from the canonical record, or why it cannot be. Unsigned: sign
    what is sent with :func:`sign_rederived`."""
    src = audit.get("source")
    if not isinstance(src, dict):
        return Refused(position, "the audit record names no canonical record")
    where = (str(src.get("topic")), int(src.get("partition", -1)), int(src.get("offset", -1)))
    msg = canonical.get(where)
    if msg is None:
        return Refused(position, f"canonical record {where[0]}[{where[1]}]@{where[2]} not "
                                 "found")
    if record_digest(msg.value or b"") != audit.get("record_digest"):
        return Refused(position, "the canonical record differs from the audited digest")
    version = int(audit.get("list_version", -1))
    engine = engines.get(version)
    entry = str(audit.get("entry_id"))
    view = views.get((version, entry))
    if engine is None or view is None:
        return Refused(position, f"list version {version} (entry {entry}) is not one the "
                                 "chain accepted")
    record = decode_value(schemas, msg.value)
    if record is None:
        return Refused(position, "the canonical record cannot be decoded")
    key = (msg.key or b"").decode("utf-8", "replace")
    provider = header_str(msg.headers, H.PROVIDER) or ""
    now = datetime.fromtimestamp(ts_ms(str(audit["ts"])) / 1000, UTC)
    decisions = engine.decide(dataset=str(audit.get("dataset")), provider=provider,
                              record=record, record_key=key, now=now)
    decision = next((d for d in decisions if d.entry_id == entry), None)
    if decision is None or decision.outcome is not Outcome.DELIVER or decision.view is None:
        return Refused(position, "re-deciding the canonical record does not deliver it")
    egress_key = str(decision.view.get("_record_key", key))
    if egress_key != str(audit.get("egress_key") or audit.get("record_key")):
        return Refused(position, "the re-derived record key differs from the audited one")
    topic = str(audit["egress_topic"])
    kbytes = egress_key.encode("utf-8")
    value = encode_wire(view.schema_id, view.parsed, decision.view)
    digest = view_digest(topic, kbytes, value, entry, version)
    if audit.get("egress_digest") not in (None, digest):
        return Refused(position, "the re-derived view differs from the audited one "
                                 "(egress_digest; another master key?)")
    headers = [(H.ENTRY, H.text_bytes(entry)), (H.LIST_VERSION, str(version).encode()),
               (H.PROVIDER, H.text_bytes(decision.provider)), (REPLAY_HEADER, b"1")]
    return Rederived(topic, kbytes, value, headers, audit, position,
                     EgressContent(topic, kbytes, value, entry, version, digest))


def sign_rederived(made: Sequence[Rederived | Refused], signer: SigningKey, *,
                   at: datetime) -> list[Rederived | Refused]:
    """``made`` with every re-derived record signed as the enforce stage signs its batches
    (:func:`shulian.logic.egress.sign_batch`: a Merkle tree per topic and per
    ``LEAVES_PER_SIGNATURE`` records, one signature over its root, a proof in each record)."""
    out = list(made)
    todo = [(i, r) for i, r in enumerate(out) if isinstance(r, Rederived)]
    signed = sign_batch(signer, [r.content for _, r in todo], at=at)
    for (i, r), extra in zip(todo, signed, strict=True):
        out[i] = replace(r, headers=[*r.headers, *extra])
    return out


def select_deliveries(egress: Sequence[InMessage], entries: Iterable[AuditEntry]
                      ) -> tuple[list[tuple[AuditEntry, InMessage]], list[InMessage]]:
    """The live deliver audit records the window's egress records stand for (each once, in
    audit order, with the first egress record that matched it: its position names the
    delivery in a sink's row), and the egress records that match none (never re-sent).
    Earlier replay copies select nothing. Matching is on (egress topic, key, entry, list
    version) and, when the egress record carries one, the canonical digest: a forgery can at
    most select a genuine audited delivery, which is then re-derived, never its own bytes."""
    by_match: dict[tuple[Any, ...], AuditEntry] = {}
    for e in entries:
        r = e.record
        if r.get("kind") != "decision" or r.get("decision") != "deliver":
            continue
        base = (str(r.get("egress_topic")), str(r.get("egress_key") or r.get("record_key")),
                str(r.get("entry_id")), str(r.get("list_version")))
        by_match.setdefault(base, e)
        by_match.setdefault((*base, str(audited_egress_digest(r))), e)
    chosen: dict[tuple[str, int, int], tuple[AuditEntry, InMessage]] = {}
    unmatched: list[InMessage] = []
    for m in egress:
        if header_str(m.headers, REPLAY_HEADER) is not None:
            continue
        match: tuple[Any, ...] = (m.topic, (m.key or b"").decode("utf-8", "replace"),
                                  header_str(m.headers, H.ENTRY) or "",
                                  header_str(m.headers, H.LIST_VERSION) or "")
        digest = header_str(m.headers, DIGEST_HEADER)
        found = by_match.get(match if digest is None else (*match, digest))
        if found is None:
            unmatched.append(m)
        else:
            chosen.setdefault((found.topic, found.partition, found.offset), (found, m))
    return [chosen[k] for k in sorted(chosen)], unmatched
