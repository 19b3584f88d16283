"""Signed egress records: the chain's Ed25519 signature over what a consumer receives. Pure.

Every egress record carries, in headers:

- ``shulian.entry``, ``shulian.list.version``: the list entry and version that shaped it;
- ``shulian.digest``: SHA-256 hex of the canonical record it was derived from (the
  ``record_digest`` of its ``deliver`` audit record);
- ``shulian.sig.key``: the id of the chain key that signed (a ``chain`` key in
  catalog/keys.yaml);
- ``shulian.sig``: base64 Ed25519 signature over :func:`egress_message`.

The signed message binds topic, key, value, entry, list version and canonical digest, so a
record written by anyone without the chain's private key, or a genuine record moved to another
topic or key, or with its value or headers edited, fails. docs/SECURITY.md shows the few lines
a consumer needs to check on its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from shulian.catalog.keys import CHAIN, Keyring, SigningKey

__all__ = [
    "DIGEST_HEADER",
    "ENTRY_HEADER",
    "SIGNATURE_HEADER",
    "SIGNATURE_KEY_HEADER",
    "VERSION_HEADER",
    "egress_message",
    "signature_headers",
    "verify_egress",
]

# header names (to move into the one module of shulian.* header names)
ENTRY_HEADER = "shulian.entry"
VERSION_HEADER = "shulian.list.version"
DIGEST_HEADER = "shulian.digest"
SIGNATURE_KEY_HEADER = "shulian.sig.key"
SIGNATURE_HEADER = "shulian.sig"

_DOMAIN = b"shulian/egress/v1"


def egress_message(topic: str, key: bytes | None, value: bytes | None, entry: str,
                   list_version: str, digest: str) -> bytes:
    """``"\\n".join`` of: ``shulian/egress/v1``, topic, SHA-256 hex of the key, SHA-256 hex of
    the value, entry id, list version, canonical digest (all UTF-8)."""
    return b"\n".join((
        _DOMAIN, topic.encode("utf-8"),
        hashlib.sha256(key or b"").hexdigest().encode("ascii"),
        hashlib.sha256(value or b"").hexdigest().encode("ascii"),
        entry.encode("utf-8"), list_version.encode("utf-8"), digest.encode("utf-8"),
    ))


def signature_headers(signer: SigningKey, *, topic: str, key: bytes, value: bytes, entry: str,
                      list_version: int, digest: str) -> list[tuple[str, bytes]]:
    """The digest and signature headers of one egress record (entry and version headers are
    the caller's)."""
    sig = signer.sign(egress_message(topic, key, value, entry, str(list_version), digest))
    return [(DIGEST_HEADER, digest.encode("ascii")),
            (SIGNATURE_KEY_HEADER, signer.key_id.encode("utf-8")),
            (SIGNATURE_HEADER, sig.encode("ascii"))]


def _text(headers: Sequence[tuple[str, bytes | None]], name: str) -> str | None:
    for k, v in headers:
        if k == name:
            try:
                return None if v is None else v.decode("utf-8")
            except UnicodeDecodeError:
                return None
    return None


def verify_egress(*, topic: str, key: bytes | None, value: bytes | None,
                  headers: Sequence[tuple[str, bytes | None]], keys: Keyring, at: datetime,
                  now: datetime | None) -> str | None:
    """Why the record is not a genuine egress record of the chain (None: it is). ``at``: when
    it was written (its timestamp: the key must have been valid then); ``now``: refuse keys
    revoked by now (a stolen key can backdate)."""
    got = {n: _text(headers, n) for n in (ENTRY_HEADER, VERSION_HEADER, DIGEST_HEADER,
                                         SIGNATURE_KEY_HEADER, SIGNATURE_HEADER)}
    missing = [n for n, v in got.items() if v is None]
    if missing:
        return f"not signed by the chain: no {', '.join(missing)} header"
    msg = egress_message(topic, key, value, got[ENTRY_HEADER] or "", got[VERSION_HEADER] or "",
                         got[DIGEST_HEADER] or "")
    why = keys.check(got[SIGNATURE_KEY_HEADER] or "", msg, got[SIGNATURE_HEADER] or "",
                     owner=CHAIN, at=at, now=now)
    return None if why is None else f"egress signature: {why}"
