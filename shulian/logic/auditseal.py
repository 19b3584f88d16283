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
between its records and its seal leaves exactly that (its restart seals it on its next batch).
A record rewritten and re-hashed in the signed part changes every later hash, so the seal
after it no longer verifies -- a break at that seal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shulian.catalog.keys import CHAIN, Keyring, SigningKey
from shulian.logic.audit import AUDIT_VERSION, AuditChain, audit_ts, parse_audit

__all__ = ["SEAL_KIND", "SealVerdict", "build_seal", "is_seal", "seal_message",
           "verify_seals"]

SEAL_KIND = "seal"
_DOMAIN = b"shulian/audit-seal/v1"


def seal_message(topic: str, partition: int, seq: int, prev_hash: str, ts: str) -> bytes:
    """``"\\n".join`` of: ``shulian/audit-seal/v1``, audit topic, partition, the seal's seq,
    its prev_hash (the chain head it seals) and its ts (the key must be valid then), UTF-8."""
    return b"\n".join((_DOMAIN, topic.encode("utf-8"), str(partition).encode(),
                       str(seq).encode(), prev_hash.encode("ascii"), ts.encode("ascii")))


def build_seal(chain: AuditChain, signer: SigningKey, *, topic: str, partition: int,
               ts: datetime, worker: str) -> bytes:
    """Seal ``chain``'s head: the encoded seal record, appended to the chain."""
    when = audit_ts(ts)
    sig = signer.sign(seal_message(topic, partition, chain.next_seq, chain.head, when))
    return chain.seal({"v": AUDIT_VERSION, "kind": SEAL_KIND, "ts": when,
                       "worker": worker, "key_id": signer.key_id, "sig": sig})


def is_seal(record: dict[str, Any] | None) -> bool:
    return record is not None and record.get("kind") == SEAL_KIND


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
    try:
        at = datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return "seal with a bad ts"
    msg = seal_message(topic, partition, int(rec["seq"]), str(rec["prev_hash"]), ts)
    return keys.check(key_id, msg, sig, owner=CHAIN, at=at, now=None)


def verify_seals(topic: str, partition: int, items: Sequence[tuple[int, bytes]],
                 keys: Keyring) -> SealVerdict:
    """Seal verdict of one partition's records ``(offset, value)`` in offset order (links
    and hashes are :func:`shulian.logic.audit.verify_chain`'s)."""
    parsed = [(offset, parse_audit(value)) for offset, value in items]
    by_hash = {rec["hash"]: i for i, (_, rec) in enumerate(parsed) if rec is not None}
    breaks: list[tuple[int, str]] = []
    vouched: set[int] = set()
    last_seal: int | None = None
    seals = 0
    for i, (offset, rec) in enumerate(parsed):
        if not is_seal(rec):
            continue
        assert rec is not None
        why = _check(topic, partition, rec, keys)
        if why is not None:
            breaks.append((offset, f"seal does not hold ({why}): a record before it was "
                                   "rewritten or the seal forged"))
            continue
        seals += 1
        last_seal = i
        j: int | None = i
        while j is not None and j not in vouched:  # walk back along the links
            vouched.add(j)
            prev = parsed[j][1]
            j = None if prev is None else by_hash.get(str(prev["prev_hash"]))
            if j is not None and j >= i:
                break
    tail = 0
    for i, (offset, rec) in enumerate(parsed):
        if i in vouched or rec is None:  # junk is verify_chain's "bad record"
            continue
        if last_seal is not None and i < last_seal:
            if not is_seal(rec):
                breaks.append((offset, "not vouched for by any seal: a record inserted by "
                                       "someone without the chain's key"))
        else:
            tail += 1
    return SealVerdict(breaks, tail, seals,
                       None if last_seal is None else parsed[last_seal][0])
