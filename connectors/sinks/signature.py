"""Webhook request signing: HMAC-SHA256 over the timestamp and the exact body.

The scheme (what a receiver must check):

- ``X-Shulian-Timestamp: <unix seconds>``: when the request was signed;
- ``X-Shulian-Signature: sha256=<hex>``: ``HMAC-SHA256(secret, b"<timestamp>." + body)``,
  lower-case hex, computed over the body bytes exactly as sent;
- ``Idempotency-Key: <key>``: the batch id, the same for every retry of one batch.

Including the timestamp in the signed material stops replays: a receiver rejects signatures
whose timestamp is further than ``tolerance_s`` from its own clock, and a captured request cannot
be re-dated without the secret. Receivers compare in constant time (:func:`verify_signature`)
and deduplicate on the idempotency key. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = [
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "SIGNATURE_PREFIX",
    "TIMESTAMP_HEADER",
    "sign",
    "signature_headers",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Shulian-Signature"
TIMESTAMP_HEADER = "X-Shulian-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SIGNATURE_PREFIX = "sha256="


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def sign(*, body: bytes, timestamp: int, secret: str | bytes) -> str:
    """The ``X-Shulian-Signature`` value (``sha256=<hex>``) for ``body`` signed at ``timestamp``."""
    mac = hmac.new(_key(secret), str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def signature_headers(
    *, body: bytes, secret: str | bytes, now: float | None = None
) -> dict[str, str]:
    """Timestamp and signature headers for one request."""
    ts = int(time.time() if now is None else now)
    return {TIMESTAMP_HEADER: str(ts),
            SIGNATURE_HEADER: sign(body=body, timestamp=ts, secret=secret)}


def verify_signature(
    *,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    secret: str | bytes,
    tolerance_s: float = 300.0,
    now: float | None = None,
) -> bool:
    """True when ``signature`` is valid for ``body`` and ``timestamp`` is within tolerance.

    ``timestamp`` and ``signature`` are the raw header values (either may be missing). A
    receiver calls this with the body bytes exactly as received, before parsing them.
    """
    if not timestamp or not signature or not signature.startswith(SIGNATURE_PREFIX):
        return False
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:
        return False
    expected = sign(body=body, timestamp=ts, secret=secret)
    return hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii", "replace"))
