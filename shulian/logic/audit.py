"""The audit record and its hash chain (one chain per audit-topic partition).

An audit record is a JSON object, encoded canonically: UTF-8, keys sorted, separators
``(",", ":")``, ``ensure_ascii=False``. Format version 1 (``v``) has these fields:

============== ===============================================================================
v              1
seq            position in the partition's chain, 0, 1, 2, ... (set by :meth:`AuditChain.seal`;
               independent of Kafka offsets, which may skip)
ts             decision time (the ``now`` the policy used), ISO 8601 UTC, milliseconds, ``Z``
kind           ``decision`` (live) or ``replay``
dataset, provider, consumer, entry_id, list_version, share_type
decision       ``deliver`` | ``withhold``
reason         withhold reason or null
fields_delivered  [field, ...]
fields_masked  [[field, mask type], ...] (``drop`` included)
record_key     canonical record key
record_digest  SHA-256 hex of the canonical record's Avro body (:func:`record_digest`)
source         {"topic", "partition", "offset"} of the canonical record
egress_topic   ``egress.<consumer>.<dataset>`` when delivered, else null
origin         {"topic", "partition", "offset"} of the raw record the canonical record was made
               from (live decisions; absent in records written before it was added)
part           [i, n]: this is decision i (from 0) of the n taken for the record (live
               decisions; lets a restarted worker finish a record whose audit was cut short)
worker         the worker that decided
mac            the writer's tail tag (:mod:`shulian.logic.audittrail`): lets a restarted writer
               recognise its own records after the last seal; checked by nobody else
prev_hash      ``hash`` of the previous record of the partition, ``"0" * 64`` for the first
hash           SHA-256 hex of ``prev_hash + "\\n" + canonical JSON of the record without hash``
============== ===============================================================================

No personal data is written: the record is named by key and digest only.

A verification (``kind`` ``verification``, :func:`build_verification`, written by the gateway
that answered it to ``audit.verify.<dataset>``) has the entry fields above with ``decision``
``verify`` (answered) or ``refused`` (``reason`` says why: a limit, the entry's validity, a claim
the entry does not allow), ``fields_delivered`` empty, and instead of a record:
``key_digest`` (keyed HMAC-SHA256 of the lookup key) and ``claims``: ``[field, how, answer,
value digest]`` per claim (``answer`` null when refused; the claimed value only as a keyed
digest).

After a crash a worker resumes the chain after the last record on the partition and skips
what the tail says it decided already (``source``, ``part``, ``origin``; see
:mod:`shulian.chain.dedup`), so each record is decided once; it learns only from records the
chain wrote, and disowns the rest with a resume seal (:mod:`shulian.logic.audittrail`).
:func:`verify_chain` checks the links, not uniqueness. Dropping the *last* records of a
partition leaves a shorter but valid chain: that is only detectable against a head hash kept
elsewhere (``expect_tail``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from shulian.logic.policy import Decision, Outcome
from shulian.logic.views import egress_topic

__all__ = [
    "AUDIT_VERSION",
    "GENESIS",
    "AuditBuilder",
    "AuditChain",
    "ChainBreak",
    "Source",
    "audit_ts",
    "build_audit",
    "build_verification",
    "encode",
    "hash_record",
    "parse_audit",
    "record_digest",
    "verify_chain",
]

AUDIT_VERSION = 1
GENESIS = "0" * 64
KINDS = frozenset({"decision", "replay"})
_REQUIRED = ("v", "seq", "prev_hash", "hash")


@dataclass(frozen=True, slots=True)
class Source:
    """Where the canonical record was read from."""

    topic: str
    partition: int
    offset: int


def record_digest(avro_bytes: bytes) -> str:
    """SHA-256 hex of the canonical record's Avro bytes."""
    return hashlib.sha256(avro_bytes).hexdigest()


def _encode_json(record: Mapping[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


_SORTED = orjson.OPT_SORT_KEYS


def encode(record: Mapping[str, Any]) -> bytes:
    """Canonical JSON bytes of an audit record.

    The definition is ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
    in UTF-8. Audit records hold strings, integers, booleans, nulls, lists and objects only; for
    those orjson writes the same bytes ten times faster (a property test holds it to that).
    Anything orjson refuses (e.g. an integer beyond 64 bits, a non-string key) goes through
    ``json`` itself; a float, where the two could differ, is never written.
    """
    try:
        return orjson.dumps(record, option=_SORTED)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _encode_json(record)


def _hash_body(prev_hash: str, body: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("utf-8") + b"\n" + body).hexdigest()


def hash_record(record: Mapping[str, Any]) -> str:
    """The hash a record must carry: over ``prev_hash`` and the record without ``hash``."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return _hash_body(str(record.get("prev_hash", "")), encode(body))


def _iso(ts: datetime) -> str:
    if ts.tzinfo is None:
        raise ValueError("audit ts must be timezone-aware")
    return ts.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def audit_ts(ts: datetime) -> str:
    """``ts`` as an audit record writes it (ISO 8601 UTC, milliseconds, ``Z``)."""
    return _iso(ts)


def build_audit(
    decision: Decision,
    *,
    record_digest: str,
    source: Source | tuple[str, int, int],
    ts: datetime,
    worker: str,
    kind: str = "decision",
    record_key: str | None = None,
    origin: Source | tuple[str, int, int] | None = None,
    part: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """The audit record of one decision, without ``seq``/``prev_hash``/``hash`` (see ``seal``).

    ``record_key`` overrides the decision's own ``record_key``; ``origin`` (the raw record)
    and ``part`` (decision i of n) are added when given.
    """
    src = source if isinstance(source, Source) else Source(*source)
    org = origin if origin is None or isinstance(origin, Source) else Source(*origin)
    rec = AuditBuilder(worker=worker, kind=kind).build(
        decision, record_digest=record_digest, source=(src.topic, src.partition, src.offset),
        ts=_iso(ts), origin=None if org is None else (org.topic, org.partition, org.offset),
        part=part)
    if record_key is not None:
        rec["record_key"] = record_key
    return rec


def _entry_part(decision: Decision, *, worker: str, kind: str) -> dict[str, Any]:
    delivered = decision.outcome is Outcome.DELIVER
    return {
        "v": AUDIT_VERSION,
        "kind": kind,
        "dataset": decision.dataset,
        "provider": decision.provider,
        "consumer": decision.consumer,
        "entry_id": decision.entry_id,
        "list_version": decision.list_version,
        "share_type": decision.share_type.value,
        "decision": decision.outcome.value,
        "reason": None if decision.reason is None else decision.reason.value,
        "fields_delivered": list(decision.fields_delivered),
        "fields_masked": [[f, m] for f, m in decision.fields_masked],
        "egress_topic": egress_topic(decision.consumer, decision.dataset) if delivered else None,
        "worker": worker,
    }


def build_verification(
    *,
    entry_id: str,
    list_version: int,
    dataset: str,
    provider: str,
    consumer: str,
    ts: datetime,
    worker: str,
    claims: Iterable[tuple[str, str, str | None, str]],
    key_digest: str | None,
    refused: str | None = None,
) -> dict[str, Any]:
    """The audit record of one verification query (or one refused request), unsealed.

    ``claims``: (field, how, answer or None, keyed digest of the claimed value)."""
    return {
        "v": AUDIT_VERSION, "kind": "verification", "ts": _iso(ts), "dataset": dataset,
        "provider": provider, "consumer": consumer, "entry_id": entry_id,
        "list_version": list_version, "share_type": "verify",
        "decision": "refused" if refused else "verify", "reason": refused,
        "fields_delivered": [], "fields_masked": [], "egress_topic": None, "worker": worker,
        "record_key": None, "key_digest": key_digest,
        "claims": [[f, h, a, d] for f, h, a, d in claims],
    }


class AuditBuilder:
    """The one builder of decision audit records (``build_audit`` is one record through it),
    for a stream of decisions (the enforce stage: one record per list entry per canonical
    record). What depends only on the entry and the outcome is built once per (entry, list
    version, outcome) and copied. The prepared lists are shared between records: records
    are sealed and encoded, never edited."""

    MAX_PREPARED = 4096

    def __init__(self, *, worker: str, kind: str = "decision") -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}")
        self._worker = worker
        self._kind = kind
        self._prepared: dict[tuple[Any, ...], dict[str, Any]] = {}

    def build(
        self,
        decision: Decision,
        *,
        record_digest: str,
        source: tuple[str, int, int],
        ts: str,
        origin: tuple[str, int, int] | None = None,
        part: tuple[int, int] | None = None,
    ) -> dict[str, Any]:
        """The record of one decision; ``ts`` as :func:`audit_ts` writes it."""
        key = (decision.entry_id, decision.list_version, decision.outcome, decision.reason,
               decision.provider, decision.consumer, decision.dataset, decision.share_type,
               decision.fields_delivered, decision.fields_masked)
        static = self._prepared.get(key)
        if static is None:
            if len(self._prepared) >= self.MAX_PREPARED:
                self._prepared.clear()
            static = self._prepared[key] = _entry_part(decision, worker=self._worker,
                                                       kind=self._kind)
        rec = static.copy()
        rec["ts"] = ts
        rec["record_key"] = decision.record_key
        rec["record_digest"] = record_digest
        rec["source"] = {"topic": source[0], "partition": source[1], "offset": source[2]}
        if origin is not None:
            rec["origin"] = {"topic": origin[0], "partition": origin[1], "offset": origin[2]}
        if part is not None:
            rec["part"] = [part[0], part[1]]
        return rec


class AuditChain:
    """The running head of one partition's chain; seal records in the order they are produced."""

    def __init__(self, head: str = GENESIS, *, next_seq: int = 0,
                 tag: Callable[[bytes], str] | None = None) -> None:
        """``tag``: the writer's tail tag over a record's canonical bytes without ``mac``
        and ``hash`` (:func:`shulian.logic.audittrail.tail_tagger`), set as ``mac`` on every
        record sealed (None: records carry no tag)."""
        self._head = head
        self._seq = next_seq
        self._tag = tag

    @classmethod
    def resume(cls, last: bytes | None) -> AuditChain:
        """Continue after the last record found on the partition (``None``: empty partition).

        Raises ``ValueError`` if that record is not a parseable audit record.
        """
        if last is None:
            return cls()
        rec = parse_audit(last)
        if rec is None:
            raise ValueError("the last audit record is not a valid audit record")
        return cls(rec["hash"], next_seq=rec["seq"] + 1)

    @property
    def head(self) -> str:
        return self._head

    @property
    def next_seq(self) -> int:
        return self._seq

    def seal(self, record: dict[str, Any]) -> bytes:
        """Set ``seq``, ``prev_hash`` and ``hash`` on ``record`` (in place), advance the head,
        return the encoded bytes to produce."""
        record.pop("hash", None)
        record.pop("mac", None)
        record["seq"] = self._seq
        record["prev_hash"] = self._head
        if self._tag is not None:
            record["mac"] = self._tag(encode(record))
        record["hash"] = _hash_body(self._head, encode(record))  # = hash_record(record)
        self._head = record["hash"]
        self._seq += 1
        return encode(record)


def parse_audit(value: bytes) -> dict[str, Any] | None:
    """The audit record in ``value``, or ``None`` if it is not one (bad JSON or shape)."""
    try:
        rec = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(rec, dict) or any(k not in rec for k in _REQUIRED):
        return None
    if not isinstance(rec["seq"], int) or isinstance(rec["seq"], bool):
        return None
    if not isinstance(rec["prev_hash"], str) or not isinstance(rec["hash"], str):
        return None
    return rec


@dataclass(frozen=True, slots=True)
class ChainBreak:
    offset: int
    what: str


def verify_chain(
    items: Iterable[tuple[int, bytes]],
    *,
    expect_head: str | None = GENESIS,
    expect_seq: int | None = 0,
    expect_tail: str | None = None,
) -> list[ChainBreak]:
    """Check one partition's audit records, given as ``(offset, value)`` in offset order.

    ``expect_head``/``expect_seq``: what the first record must link to (defaults: the genesis
    and seq 0; pass ``None`` to verify from a checkpoint without knowing what preceded it).
    ``expect_tail``: the head hash known from elsewhere; the last record must carry it (this is
    what detects records dropped from the end). Returns every break found, empty when intact.
    """
    parsed: list[tuple[int, bytes, dict[str, Any] | None]] = [
        (offset, value, parse_audit(value)) for offset, value in items
    ]
    position: dict[str, int] = {}  # stored hash -> index
    for i, (_, _, rec) in enumerate(parsed):
        if rec is not None:
            position.setdefault(rec["hash"], i)

    breaks: list[ChainBreak] = []
    prev_hash: str | None = expect_head  # None: unknown, do not check the next link
    prev_seq: int | None = None if expect_seq is None else expect_seq - 1
    for i, (offset, value, rec) in enumerate(parsed):
        if rec is None:
            breaks.append(ChainBreak(offset, "bad record: not JSON or not an audit record"))
            prev_hash, prev_seq = None, None
            continue
        if encode(rec) != value:
            breaks.append(ChainBreak(offset, "not canonically encoded: the bytes were edited"))
        if hash_record(rec) != rec["hash"]:
            breaks.append(ChainBreak(offset, "hash mismatch: the record was edited"))
        if prev_hash is not None and rec["prev_hash"] != prev_hash:
            at = position.get(rec["prev_hash"])
            if at is not None and at >= i:
                why = "links to a later record: records were reordered"
            elif at is not None:
                why = "links to an earlier record: records were reordered (or one re-inserted)"
            elif i == 0 and prev_hash == GENESIS:
                why = "first record does not link to the genesis: records deleted at the start"
            else:
                why = "links to a record not present: records were deleted before this one"
            breaks.append(ChainBreak(offset, f"prev_hash mismatch: {why}"))
        if prev_seq is not None and rec["seq"] != prev_seq + 1:
            gap = "seq went back" if rec["seq"] <= prev_seq else "seq gap"
            breaks.append(ChainBreak(offset, f"{gap}: expected {prev_seq + 1}, found {rec['seq']}"))
        prev_hash, prev_seq = rec["hash"], rec["seq"]
    if expect_tail is not None:
        last = parsed[-1][2] if parsed else None
        tail = GENESIS if not parsed else (None if last is None else last["hash"])
        if tail != expect_tail:
            offset = parsed[-1][0] if parsed else -1
            breaks.append(
                ChainBreak(offset, "chain ends before the expected head: records deleted at end")
            )
    return breaks
