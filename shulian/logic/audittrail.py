"""What a writer resuming an audit chain may vouch for: the trusted tail of a partition. Pure.

A writer (the enforce stage, the verification gateway, ``replay deliver``) that starts again
continues its partition's chain, and its next seal vouches for every record on the path
behind it (:mod:`shulian.logic.auditseal`). Someone who can write to the topic while it is down
can append records with correct SHA-256 links; if the writer continued after them, its seal
would vouch for them, and their ``source``/``origin`` fields would tell its restart
de-duplication that records were decided which never were (a delivery suppressed).

So a writer trusts only what a holder of the chain's key wrote:

- records **vouched for by the last valid seal** in view (its signature checked with the
  catalogue's public keys, the walk back along the links as ``audit verify`` does);
- after that seal, records carrying a valid **tail tag**: every record a writer seals into a
  chain carries ``mac``, HMAC-SHA256 (first 128 bits, hex) under a key derived from the chain's
  private signing key, over the topic, the partition and the record's canonical bytes without
  ``mac`` and ``hash`` (``seq`` and ``prev_hash`` included: the tag binds the position). Only a
  holder of the signing key can make one; checking one needs that key too, so auditors never
  check tags (they check seals), the writer checks them once, at restart. A tagged record
  is trusted only if it links to the trusted head (hash, canonical bytes and link hold).

Everything else after the last valid seal is **disowned**: the writer does not learn from it
(de-duplication ignores it) and does not vouch for it. It links its next record to the
physical end of the partition (the links stay one line for ``verify_chain``) but writes first
a **resume seal**: a seal whose signed ``resumes`` names the hash of the last trusted record,
listing the disowned offsets. ``audit verify`` walks back from a resume seal to ``resumes``,
not to its ``prev_hash``, so the disowned records are vouched for by no seal and are named as
breaks, with the resume seal's offset.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization

from shulian.catalog.keys import Keyring, SigningKey
from shulian.logic.audit import AuditChain, encode, hash_record, parse_audit
from shulian.logic.auditseal import is_seal, seal_holds, walk_back

__all__ = ["MAC_FIELD", "Tail", "TailTrust", "tail_tagger", "trusted_tail"]

MAC_FIELD = "mac"
_KEY_LABEL = b"shulian/audit-tail-tag/v1"

Tagger = Callable[[bytes], str]


def tail_tagger(signer: SigningKey, topic: str, partition: int) -> Tagger:
    """The tag function of one partition: ``body`` (canonical bytes without ``mac``/``hash``)
    -> hex tag. The key is HMAC-SHA256(raw private key, ``shulian/audit-tail-tag/v1``): never
    the signing key itself, never stored, never logged."""
    raw = signer.private.private_bytes(serialization.Encoding.Raw,
                                       serialization.PrivateFormat.Raw,
                                       serialization.NoEncryption())
    key = hmac.digest(raw, _KEY_LABEL, "sha256")
    prefix = topic.encode("utf-8") + b"\n" + str(partition).encode() + b"\n"

    def tag(body: bytes) -> str:
        return hmac.digest(key, prefix + body, "sha256")[:16].hex()

    return tag


def tag_holds(rec: dict[str, Any], tag: Tagger) -> bool:
    mac = rec.get(MAC_FIELD)
    if not isinstance(mac, str):
        return False
    body = encode({k: v for k, v in rec.items() if k not in (MAC_FIELD, "hash")})
    return hmac.compare_digest(mac, tag(body))


@dataclass(frozen=True)
class TailTrust:
    """How a writer judges a partition's tail: ``keys`` checks seal signatures and ``tag``
    the tail tags (both None: a writer without a key, as in pure tests; every sound, linked
    record is trusted then)."""

    keys: Keyring | None = None
    tag: Tagger | None = None


@dataclass(frozen=True)
class Tail:
    """The verdict on a partition's last records."""

    trusted: list[dict[str, Any]]  # records this writer may learn from, in offset order
    head: tuple[int, str] | None  # (seq, hash) to link the next record to (None: empty)
    resumes: tuple[int, str] | None  # (seq, hash) of the last trusted record
    disowned: list[int] = field(default_factory=list)  # offsets nobody with the key wrote
    unsealed: int = 0  # trusted records after the last valid seal (a writer cut short)

    def chain(self, tag: Tagger | None = None) -> AuditChain:
        """The chain to continue: after the physical end (a resume seal comes first when
        records were disowned: :attr:`needs_resume_seal`)."""
        if self.head is None:
            return AuditChain(tag=tag)
        return AuditChain(self.head[1], next_seq=self.head[0] + 1, tag=tag)

    @property
    def needs_resume_seal(self) -> bool:
        return bool(self.disowned)

    @property
    def resumes_hash(self) -> str:
        """What a resume seal names ("" when no trusted record is in view)."""
        return "" if self.resumes is None else self.resumes[1]


def _sound(rec: dict[str, Any] | None, value: bytes) -> bool:
    return rec is not None and encode(rec) == value and hash_record(rec) == rec["hash"]


def trusted_tail(topic: str, partition: int, items: Sequence[tuple[int, bytes]],
                 trust: TailTrust) -> Tail:
    """Judge the last records ``(offset, value)`` of one audit partition, in offset order."""
    parsed = [(offset, parse_audit(value), value) for offset, value in items]
    checked: dict[int, bool] = {}

    def holds(i: int) -> bool:
        if i not in checked:
            rec = parsed[i][1]
            checked[i] = is_seal(rec) and (trust.keys is None or rec is None
                                           or seal_holds(topic, partition, rec, trust.keys))
        return checked[i]

    last_seal = next((i for i in range(len(parsed) - 1, -1, -1)
                      if is_seal(parsed[i][1]) and holds(i)), -1)
    trusted: set[int] = set()
    if last_seal >= 0:
        walk_back([p[1] for p in parsed], last_seal, trusted, holds)
    head: str | None = None if last_seal < 0 else str(parsed[last_seal][1]["hash"])  # type: ignore[index]
    resumes = last_seal if last_seal >= 0 else None
    disowned: list[int] = []
    unsealed = 0
    for i in range(last_seal + 1, len(parsed)):
        offset, rec, value = parsed[i]
        ok = (_sound(rec, value) and rec is not None
              and (head is None or rec["prev_hash"] == head)
              and (trust.tag is None or tag_holds(rec, trust.tag)))
        if ok and rec is not None:
            trusted.add(i)
            head, resumes = str(rec["hash"]), i
            unsealed += 1
        else:
            disowned.append(offset)
    physical = next(((int(r["seq"]), str(r["hash"])) for _, r, _ in reversed(parsed)
                     if r is not None), None)
    last = None if resumes is None else parsed[resumes][1]
    return Tail(trusted=[parsed[i][1] for i in sorted(trusted)  # type: ignore[misc]
                         if parsed[i][1] is not None],
                head=physical,
                resumes=None if last is None else (int(last["seq"]), str(last["hash"])),
                disowned=disowned, unsealed=unsealed)
