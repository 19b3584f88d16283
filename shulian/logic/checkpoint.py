"""Signed checkpoints of the audit chain heads, kept outside Kafka. Pure.

Seals (:mod:`shulian.logic.auditseal`) live in the audit topic, so whoever can delete or
replace that topic can remove them too: truncating a partition back to an earlier seal, or
replacing the whole topic, leaves a log that verifies on its own. A checkpoint closes that:
every N records or T seconds the worker signs the heads of every audit partition it writes,

    {"v": 1, "kind": "checkpoint", "ts": ..., "worker": ..., "key_id": ...,
     "heads": [[topic, partition, seq, hash], ...], "sig": ...}

(signature over :func:`checkpoint_message`), and appends it to a store outside Kafka (an
INSERT-only PostgreSQL table, or a file: :mod:`shulian.io.checkpoints`). ``audit verify``
then demands that every checkpointed head is still in its partition: the record with that
``seq`` must carry that ``hash``. A partition that now ends before it was truncated; one whose
record at that seq has another hash was replaced or rewritten.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shulian.catalog.keys import CHAIN, Keyring, SigningKey
from shulian.logic.audit import AUDIT_VERSION, audit_ts, encode, parse_audit

__all__ = ["Checkpoint", "build_checkpoint", "checkpoint_breaks", "checkpoint_message",
           "parse_checkpoint"]

_DOMAIN = b"shulian/audit-checkpoint/v1\n"
Head = tuple[str, int, int, str]  # audit topic, partition, seq, hash


def checkpoint_message(ts: str, worker: str, heads: Sequence[Head]) -> bytes:
    """``shulian/audit-checkpoint/v1`` + newline + canonical JSON of ``{"heads", "ts",
    "worker"}`` (heads sorted)."""
    return _DOMAIN + encode({"heads": [list(h) for h in sorted(heads)], "ts": ts,
                             "worker": worker})


@dataclass(frozen=True, slots=True)
class Checkpoint:
    ts: str
    worker: str
    key_id: str
    sig: str
    heads: tuple[Head, ...]

    def to_record(self) -> dict[str, Any]:
        return {"v": AUDIT_VERSION, "kind": "checkpoint", "ts": self.ts, "worker": self.worker,
                "key_id": self.key_id, "sig": self.sig,
                "heads": [list(h) for h in self.heads]}

    def why_invalid(self, keys: Keyring) -> str | None:
        try:
            at = datetime.fromisoformat(self.ts.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            return "bad ts"
        return keys.check(self.key_id, checkpoint_message(self.ts, self.worker, self.heads),
                          self.sig, owner=CHAIN, at=at, now=None)


def build_checkpoint(heads: Iterable[Head], signer: SigningKey, *, ts: datetime,
                     worker: str) -> Checkpoint:
    ordered = tuple(sorted(heads))
    when = audit_ts(ts)
    sig = signer.sign(checkpoint_message(when, worker, ordered))
    return Checkpoint(when, worker, signer.key_id, sig, ordered)


def parse_checkpoint(data: Mapping[str, Any]) -> Checkpoint | None:
    try:
        heads = tuple((str(t), int(p), int(s), str(h)) for t, p, s, h in data["heads"])
        return Checkpoint(str(data["ts"]), str(data["worker"]), str(data["key_id"]),
                          str(data["sig"]), heads)
    except (KeyError, TypeError, ValueError):
        return None


def checkpoint_breaks(
    checkpoints: Iterable[Checkpoint],
    partitions: Mapping[tuple[str, int], Sequence[tuple[int, bytes]]],
    keys: Keyring,
) -> list[tuple[str, int, int, str]]:
    """``(topic, partition, offset, why)`` for every checkpointed head (of a partition that
    was read) the partition no longer holds; a checkpoint whose signature fails is reported
    once at offset -1 and not used."""
    seqs: dict[tuple[str, int], dict[int, tuple[int, str]]] = {}
    for tp, items in partitions.items():
        by_seq: dict[int, tuple[int, str]] = {}
        for offset, value in items:
            rec = parse_audit(value)
            if rec is not None:
                by_seq.setdefault(int(rec["seq"]), (offset, str(rec["hash"])))
        seqs[tp] = by_seq
    out: list[tuple[str, int, int, str]] = []
    for cp in checkpoints:
        why = cp.why_invalid(keys)
        if why is not None:
            out.append((cp.heads[0][0] if cp.heads else "", -1, -1,
                        f"checkpoint of {cp.ts} by {cp.worker} does not hold: {why}"))
            continue
        for topic, partition, seq, head in cp.heads:
            held = seqs.get((topic, partition))
            if held is None:
                continue
            found = held.get(seq)
            if found is None:
                last = max(held, default=-1)
                end = held[last][0] if last >= 0 else -1
                out.append((topic, partition, end, f"truncated: the checkpoint of {cp.ts} "
                            f"holds seq {seq}, the partition ends at seq {last}"))
            elif found[1] != head:
                out.append((topic, partition, found[0], f"replaced: the checkpoint of {cp.ts} "
                            f"holds another hash for seq {seq}"))
    return out
