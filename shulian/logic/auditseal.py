"""Signed seals over the audit hash chain, one per partition per batch. Pure.

A hash chain alone stops nobody who can write to the audit topic: anyone can compute SHA-256
and append (or rewrite and re-hash) correctly linked records. So after each batch's records
of a partition the worker appends one more record to that partition's chain, a **seal**:

    {"v": 1, "kind": "seal", "ts": ..., "worker": ..., "key_id": "chain-...",
     "sig": base64 Ed25519 over seal_message(topic, partition, seq, prev_hash, ts),
     "seq": ..., "prev_hash": <hash of the batch's last record>, "hash": ...}

The seal's ``prev_hash`` is the head of the chain it follows; since every record links to the
one before, a valid seal vouches for every record on the path behind it. One signature per
partition per batch costs ~0.1 ms per batch instead of per record (docs/BENCHMARKS.md).

:func:`verify_seals` walks back from every valid seal along ``prev_hash`` and sorts each
record into one of three: vouched for by a seal; **not vouched for although a later seal
exists** (inserted by someone else: the worker's own next record does not link to it) -- a
break; or after the last valid seal, the **unsigned tail** -- a warning, since a worker killed
between its records and its seal leaves exactly that (its restart seals it on its next batch,
if the records carry its tail tags; otherwise it disowns them with a resume seal:
:mod:`shulian.logic.audittrail`).
A record rewritten and re-hashed in the signed part changes every later hash, so the seal
after it no longer verifies -- a break at that seal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shulian.catalog.keys import CHAIN, Keyring, SigningKey
from shulian.logic.audit import AUDIT_VERSION, AuditChain, audit_ts, parse_audit

__all__ = ["RESUMES", "SEAL_KIND", "SealVerdict", "build_seal", "is_resume", "is_seal",
           "seal_holds", "seal_message", "verify_seals", "walk_back"]

SEAL_KIND = "seal"
RESUMES = "resumes"
_DOMAIN = b"shulian/audit-seal/v1"
_RESUME_DOMAIN = b"shulian/audit-resume/v1"
MAX_NAMED = 1000  # disowned offsets a resume seal lists (the count is always complete)


def seal_message(topic: str, partition: int, seq: int, prev_hash: str, ts: str,
                 resumes: str | None = None) -> bytes:
    """``"\\n".join`` of: ``shulian/audit-seal/v1``, audit topic, partition, the seal's seq,
    its prev_hash (the chain head it seals) and its ts (the key must be valid then), UTF-8.
    A resume seal (``resumes`` given: the hash of the last record its writer trusts, "" for
    none in view) uses ``shulian/audit-resume/v1`` and adds ``resumes`` as a last line."""
    parts = [_DOMAIN if resumes is None else _RESUME_DOMAIN, topic.encode("utf-8"),
             str(partition).encode(), str(seq).encode(), prev_hash.encode("ascii"),
             ts.encode("ascii")]
    if resumes is not None:
        parts.append(resumes.encode("ascii"))
    return b"\n".join(parts)


def build_seal(chain: AuditChain, signer: SigningKey, *, topic: str, partition: int,
               ts: datetime, worker: str, resumes: str | None = None,
               disowned: Sequence[int] = ()) -> bytes:
    """Seal ``chain``'s head: the encoded seal record, appended to the chain. With
    ``resumes`` (a writer resuming after records it did not write, ``disowned`` their
    offsets): a resume seal, which vouches for the path behind ``resumes``, not behind its
    own ``prev_hash`` (:mod:`shulian.logic.audittrail`)."""
    when = audit_ts(ts)
    sig = signer.sign(seal_message(topic, partition, chain.next_seq, chain.head, when,
                                   resumes))
    rec: dict[str, Any] = {"v": AUDIT_VERSION, "kind": SEAL_KIND, "ts": when,
                           "worker": worker, "key_id": signer.key_id, "sig": sig}
    if resumes is not None:
        rec[RESUMES] = resumes
        rec["disowned"] = list(disowned[:MAX_NAMED])
        rec["disowned_count"] = len(disowned)
    return chain.seal(rec)


def is_seal(record: dict[str, Any] | None) -> bool:
    return record is not None and record.get("kind") == SEAL_KIND


def is_resume(record: dict[str, Any] | None) -> bool:
    return is_seal(record) and record is not None and RESUMES in record


@dataclass(frozen=True, slots=True)
class SealVerdict:
    breaks: list[tuple[int, str]]  # (offset, why)
    unsigned_tail: int  # records after the last valid seal
    seals: int  # valid seals
    last_sealed_offset: int | None  # offset of the last valid seal


def _check(topic: str, partition: int, rec: dict[str, Any], keys: Keyring) -> str | None:
    key_id, sig, ts = rec.get("key_id"), rec.get("sig"), rec.get("ts")
    if not isinstance(key_id, str) or not isinstance(sig, str) or not isinstance(ts, str):
        return "seal without key_id, sig or ts"
    resumes = rec.get(RESUMES) if RESUMES in rec else None
    if RESUMES in rec and not isinstance(resumes, str):
        return "resume seal with a bad resumes"
    try:
        at = datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(UTC)
        msg = seal_message(topic, partition, int(rec["seq"]), str(rec["prev_hash"]), ts,
                           resumes)
    except (ValueError, UnicodeEncodeError):
        return "seal with a bad ts or link"
    return keys.check(key_id, msg, sig, owner=CHAIN, at=at, now=None)


def seal_holds(topic: str, partition: int, rec: dict[str, Any], keys: Keyring) -> bool:
    """True if ``rec`` is a seal whose signature holds for this partition."""
    return is_seal(rec) and _check(topic, partition, rec, keys) is None


def walk_back(records: Sequence[dict[str, Any] | None], start: int, vouched: set[int],
              valid_seal: Callable[[int], bool]) -> None:
    """Add to ``vouched`` every index on the path behind the seal at ``start``: along
    ``prev_hash``, except from a valid resume seal, whose path goes on at the record it
    ``resumes`` (the records between are not its writer's). Stops at a record vouched for
    already, at a link to nothing in view, and never goes forward."""
    by_hash: dict[str, int] = {}
    for i, rec in enumerate(records):
        if rec is not None:
            by_hash.setdefault(str(rec["hash"]), i)
    j: int | None = start
    while j is not None and j not in vouched:
        vouched.add(j)
        rec = records[j]
        if rec is None:
            break
        if is_resume(rec) and valid_seal(j):
            target = rec.get(RESUMES)
            nxt = by_hash.get(target) if isinstance(target, str) and target else None
        else:
            nxt = by_hash.get(str(rec["prev_hash"]))
        j = nxt if nxt is not None and nxt < j else None


def verify_seals(topic: str, partition: int, items: Sequence[tuple[int, bytes]],
                 keys: Keyring) -> SealVerdict:
    """Seal verdict of one partition's records ``(offset, value)`` in offset order (links
    and hashes are :func:`shulian.logic.audit.verify_chain`'s)."""
    parsed = [(offset, parse_audit(value)) for offset, value in items]
    records = [rec for _, rec in parsed]
    breaks: list[tuple[int, str]] = []
    vouched: set[int] = set()
    valid: set[int] = set()
    disowners: dict[int, int] = {}  # index disowned -> offset of the resume seal
    last_seal: int | None = None
    for i, (offset, rec) in enumerate(parsed):
        if not is_seal(rec):
            continue
        assert rec is not None
        why = _check(topic, partition, rec, keys)
        if why is not None:
            breaks.append((offset, f"seal does not hold ({why}): a record before it was "
                                   "rewritten or the seal forged"))
            continue
        valid.add(i)
        last_seal = i
        walk_back(records, i, vouched, valid.__contains__)
        if is_resume(rec):
            target = rec.get(RESUMES)
            start = next((k for k in range(i - 1, -1, -1) if records[k] is not None
                          and records[k]["hash"] == target), -1)  # type: ignore[index]
            for k in range(start + 1, i):
                disowners.setdefault(k, offset)
    tail = 0
    for i, (offset, rec) in enumerate(parsed):
        if i in vouched or rec is None:  # junk is verify_chain's "bad record"
            continue
        if last_seal is not None and i < last_seal:
            if i in disowners and not is_seal(rec):  # a forged seal is named above
                breaks.append((offset, f"disowned by the resume seal at offset {disowners[i]}:"
                                       " written while its writer was down, by someone "
                                       "without the chain's key"))
            elif not is_seal(rec):
                breaks.append((offset, "not vouched for by any seal: a record inserted by "
                                       "someone without the chain's key"))
        else:
            tail += 1
    return SealVerdict(breaks, tail, len(valid),
                       None if last_seal is None else parsed[last_seal][0])
