"""Signed egress records: the chain's Ed25519 signature over what a consumer receives. Pure.

Every egress record carries, in headers:

- ``shulian.entry``, ``shulian.list.version``: the list entry and version that shaped it;
- ``shulian.digest``: a digest of the consumer's view (:func:`shulian.logic.digests.
  view_digest`: ``view-sha256/v1:`` + SHA-256 over topic, key, value, entry, version), the
  ``egress_digest`` of its ``deliver`` audit record, which ties it to the canonical record's
  ``record_digest``. Never a digest of the canonical record: a consumer could test guesses of
  the fields masked for it against one. Records written before carry the canonical record's
  plain SHA-256 hex; they verify as before;
- ``shulian.sig.scheme``: how it is signed (no such header: ``ed25519/v1``);
- ``shulian.sig.key``: the id of the chain key that signed (a ``chain`` key in
  catalog/keys.yaml);
- ``shulian.sig``: base64 Ed25519 signature.

Scheme ``ed25519-merkle/v2`` (what the chain writes): one signature per batch and egress
topic. Each record's :func:`leaf_message` (topic, SHA-256 of key and value, entry, list version,
canonical digest) is a leaf of a SHA-256 Merkle tree over the batch's records of that topic
(:mod:`shulian.logic.merkle`; :func:`sign_batch` says why per topic);
``shulian.sig`` signs :func:`root_message` (key id, the batch's time, the root), and the record
carries ``shulian.sig.time`` (that time, ISO 8601 UTC) and ``shulian.sig.proof`` (base64 of its
audit path, empty for a one-record batch). A record is verified alone: its leaf and proof give
the root, and the signature must hold over the root. The key must be usable at the signed time.

Scheme ``ed25519/v1`` (records written before per-batch signing; still verified): one signature
per record over :func:`egress_message`; the key must be usable at the record's Kafka timestamp.

Either way a record written by anyone without the chain's private key, or a genuine record
moved to another topic or key, or with its value or headers edited, fails. docs/SECURITY.md
shows the few lines a consumer needs to check on its own.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from shulian.catalog.keys import CHAIN, Keyring, SigningKey, verify_raw
from shulian.logic.audit import audit_ts
from shulian.logic.merkle import Tree, leaf_hash, root_of

__all__ = [
    "DIGEST_HEADER",
    "ENTRY_HEADER",
    "LEAVES_PER_SIGNATURE",
    "PROOF_HEADER",
    "SCHEME_HEADER",
    "SCHEME_V1",
    "SCHEME_V2",
    "SIGNATURE_HEADER",
    "SIGNATURE_KEY_HEADER",
    "SIGNED_AT_HEADER",
    "VERSION_HEADER",
    "EgressContent",
    "egress_message",
    "leaf_message",
    "root_message",
    "sign_batch",
    "verify_egress",
]

# header names (to move into the one module of shulian.* header names)
ENTRY_HEADER = "shulian.entry"
VERSION_HEADER = "shulian.list.version"
DIGEST_HEADER = "shulian.digest"
SCHEME_HEADER = "shulian.sig.scheme"
SIGNATURE_KEY_HEADER = "shulian.sig.key"
SIGNATURE_HEADER = "shulian.sig"
SIGNED_AT_HEADER = "shulian.sig.time"
PROOF_HEADER = "shulian.sig.proof"

SCHEME_V1 = "ed25519/v1"
SCHEME_V2 = "ed25519-merkle/v2"

_DOMAIN_V1 = b"shulian/egress/v1"
_DOMAIN_LEAF = b"shulian/egress/v2"
_DOMAIN_ROOT = b"shulian/egress-root/v2"
_SCHEME_V2 = SCHEME_V2.encode("ascii")

LEAVES_PER_SIGNATURE = 64
"""Records of one egress topic per tree and signature at most: a proof of at most 6 steps (264
base64 characters). Measured with ``python -m shulian.bench.stages --clock cpu --verify``: against
4,096 (one tree per topic and batch, ~11 steps) it saves ~170 header bytes per record at no
measurable cost to the enforce stage or a sink's check (docs/BENCHMARKS.md)."""


@dataclass(frozen=True, slots=True)
class EgressContent:
    """What the chain vouches for in one egress record."""

    topic: str
    key: bytes
    value: bytes
    entry: str
    list_version: int
    digest: str  # the shulian.digest header (shulian.logic.digests.view_digest)


def _content(domain: bytes, topic: str, key: bytes | None, value: bytes | None, entry: str,
             list_version: str, digest: str) -> bytes:
    return b"\n".join((
        domain, topic.encode("utf-8"),
        hashlib.sha256(key or b"").hexdigest().encode("ascii"),
        hashlib.sha256(value or b"").hexdigest().encode("ascii"),
        entry.encode("utf-8"), list_version.encode("utf-8"), digest.encode("utf-8"),
    ))


def egress_message(topic: str, key: bytes | None, value: bytes | None, entry: str,
                   list_version: str, digest: str) -> bytes:
    """Scheme v1's signed message: ``"\\n".join`` of ``shulian/egress/v1``, topic, SHA-256 hex
    of the key, SHA-256 hex of the value, entry id, list version, canonical digest (UTF-8)."""
    return _content(_DOMAIN_V1, topic, key, value, entry, list_version, digest)


def leaf_message(topic: str, key: bytes | None, value: bytes | None, entry: str,
                 list_version: str, digest: str) -> bytes:
    """Scheme v2's leaf data: as :func:`egress_message`, headed ``shulian/egress/v2``."""
    return _content(_DOMAIN_LEAF, topic, key, value, entry, list_version, digest)


def root_message(key_id: str, signed_at: str, root: bytes) -> bytes:
    """Scheme v2's signed message: ``"\\n".join`` of ``shulian/egress-root/v2``, key id, the
    batch's time as in ``shulian.sig.time``, the root's hex."""
    return b"\n".join((_DOMAIN_ROOT, key_id.encode("utf-8"), signed_at.encode("utf-8"),
                       root.hex().encode("ascii")))


def sign_batch(signer: SigningKey, records: Sequence[EgressContent], *, at: datetime,
               per_signature: int = LEAVES_PER_SIGNATURE) -> list[list[tuple[str, bytes]]]:
    """The signature headers of each record of a batch (digest, scheme, key, time, signature,
    proof; entry and version headers are the caller's), in the order of ``records``.

    One tree, and one signature over its root, per egress topic of the batch and per
    ``per_signature`` records of it: a proof shows its siblings' hashes, and a sibling from
    another consumer's topic would let a consumer test guesses of that consumer's view (a field
    masked for one and clear for the other), so a tree holds only records its one consumer
    receives anyway."""
    if per_signature < 1:
        raise ValueError("per_signature must be at least 1")
    signed_at = audit_ts(at)
    by_topic: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by_topic.setdefault(r.topic, []).append(i)
    out: list[list[tuple[str, bytes]]] = [[] for _ in records]
    for indexes in by_topic.values():
        for start in range(0, len(indexes), per_signature):
            chunk = indexes[start:start + per_signature]
            _sign_tree(signer, signed_at, records, chunk, out)
    return out


def _sign_tree(signer: SigningKey, signed_at: str, records: Sequence[EgressContent],
               chunk: Sequence[int], out: list[list[tuple[str, bytes]]]) -> None:
    tree = Tree([leaf_hash(leaf_message(r.topic, r.key, r.value, r.entry, str(r.list_version),
                                        r.digest)) for r in (records[i] for i in chunk)])
    sig = signer.sign(root_message(signer.key_id, signed_at, tree.root))
    common = [(SCHEME_HEADER, _SCHEME_V2),
              (SIGNATURE_KEY_HEADER, signer.key_id.encode("utf-8")),
              (SIGNED_AT_HEADER, signed_at.encode("ascii")),
              (SIGNATURE_HEADER, sig.encode("ascii"))]
    for leaf, i in enumerate(chunk):
        out[i] = [(DIGEST_HEADER, records[i].digest.encode("ascii")), *common,
                  (PROOF_HEADER, base64.b64encode(tree.proof(leaf)))]


def _text(headers: Sequence[tuple[str, bytes | None]], name: str) -> str | None:
    for k, v in headers:
        if k == name:
            try:
                return None if v is None else v.decode("utf-8")
            except UnicodeDecodeError:
                return None
    return None


def _has(headers: Sequence[tuple[str, bytes | None]], name: str) -> bool:
    return any(k == name for k, _ in headers)


_SIGNED = frozenset({ENTRY_HEADER, VERSION_HEADER, DIGEST_HEADER, SCHEME_HEADER,
                     SIGNATURE_KEY_HEADER, SIGNATURE_HEADER, SIGNED_AT_HEADER, PROOF_HEADER})


def _twice(headers: Sequence[tuple[str, bytes | None]]) -> list[str]:
    """Signature headers that occur more than once (readers differ on which one counts: this
    module reads the first, ``dict(headers)`` the last)."""
    seen: set[str] = set()
    twice: list[str] = []
    for k, _ in headers:
        if k in _SIGNED:
            if k in seen and k not in twice:
                twice.append(k)
            seen.add(k)
    return twice


@lru_cache(maxsize=256)
def _signature_holds(public_key: str, message: bytes, sig: str) -> bool:
    """Ed25519 verification, remembered: a batch's records share one root signature."""
    return verify_raw(public_key, message, sig)


def verify_egress(*, topic: str, key: bytes | None, value: bytes | None,
                  headers: Sequence[tuple[str, bytes | None]], keys: Keyring, at: datetime,
                  now: datetime | None) -> str | None:
    """Why the record is not a genuine egress record of the chain (None: it is). ``at``: when
    it was written (its timestamp; scheme v1's key must have been valid then, v2's at its
    signed time); ``now``: refuse keys revoked by now (a stolen key can backdate)."""
    twice = _twice(headers)
    if twice:
        return f"not signed by the chain: {', '.join(twice)} header more than once"
    scheme = _text(headers, SCHEME_HEADER)
    if scheme is None and not _has(headers, SCHEME_HEADER):
        scheme = SCHEME_V1
    names = [ENTRY_HEADER, VERSION_HEADER, DIGEST_HEADER, SIGNATURE_KEY_HEADER,
             SIGNATURE_HEADER]
    if scheme == SCHEME_V2:
        names.append(SIGNED_AT_HEADER)
    elif scheme != SCHEME_V1:
        return f"not signed by the chain: unknown signature scheme {scheme!r}"
    got = {n: _text(headers, n) for n in names}
    missing = [n for n, v in got.items() if v is None]
    if scheme == SCHEME_V2 and not _has(headers, PROOF_HEADER):
        missing.append(PROOF_HEADER)
    if missing:
        return f"not signed by the chain: no {', '.join(missing)} header"
    content = (topic, key, value, got[ENTRY_HEADER] or "", got[VERSION_HEADER] or "",
               got[DIGEST_HEADER] or "")
    key_id, sig = got[SIGNATURE_KEY_HEADER] or "", got[SIGNATURE_HEADER] or ""
    if scheme == SCHEME_V1:
        why = keys.check(key_id, egress_message(*content), sig, owner=CHAIN, at=at, now=now)
        return None if why is None else f"egress signature: {why}"
    return _verify_v2(content, key_id, sig, got[SIGNED_AT_HEADER] or "",
                      _text(headers, PROOF_HEADER) or "", keys, now)


def _verify_v2(content: tuple[str, bytes | None, bytes | None, str, str, str], key_id: str,
               sig: str, signed_at: str, proof_b64: str, keys: Keyring, now: datetime | None
               ) -> str | None:
    try:
        when = datetime.fromisoformat(signed_at)
        proof = base64.b64decode(proof_b64.encode("ascii"), validate=True)
    except (ValueError, binascii.Error, UnicodeEncodeError):
        return f"egress signature: malformed {SIGNED_AT_HEADER} or {PROOF_HEADER} header"
    root = root_of(leaf_hash(leaf_message(*content)), proof)
    if root is None:
        return (f"egress signature: malformed {PROOF_HEADER} header (not whole 33-byte steps "
                "of L or R and a hash, or too long)")
    why = keys.unusable(key_id, owner=CHAIN, at=when, now=now)
    if why is None:
        public = keys.get(key_id)
        assert public is not None  # usable implies known
        if not _signature_holds(public.public_key, root_message(key_id, signed_at, root), sig):
            why = (f"invalid signature by key '{key_id}' (or the record is not the one its "
                   "proof was made for)")
    return None if why is None else f"egress signature: {why}"
