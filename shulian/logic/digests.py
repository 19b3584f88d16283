"""The canonical-record digest an egress record carries: keyed, per egress topic. Pure.

An egress record names the canonical record it was derived from, so that an auditor can tie
it to its ``deliver`` audit record and, through that record's ``record_digest`` (plain SHA-256
of the canonical record's bytes), to the canonical record itself. A plain SHA-256 in the
egress header would defeat masking: a consumer who sees a masked view knows every field but
the masked ones, and where those have little entropy (sex, a birth date, a district code, a
citizen ID with a few digits hidden) it could hash each guess of the whole canonical record
and compare with the header. So the header carries

    egress_digest = "hmac-sha256/v1:" + hex(HMAC-SHA256(k_topic, record_digest))
    k_topic       = HMAC-SHA256(master_key, b"shulian/egress-digest/v1\\n" + egress topic)

``master_key`` is the chain's ``SHULIAN_HMAC_MASTER_KEY`` (the worker and the replay tooling
hold it, no consumer does); the label keeps these keys apart from the per-consumer pseudonym
keys (:func:`shulian.logic.masking.consumer_key`), and the key differs per egress topic, so two
consumers given views of one canonical record cannot link them by the header either. Without
the master key the value is indistinguishable from random; with it, an auditor recomputes it
from the audited ``record_digest`` (no canonical record needed). The scheme name is part of the
value, so it is covered by the egress signature (the leaf signs the header's text); a bare
64-hex value is the old scheme (plain SHA-256, records written before this one), which
:func:`digest_scheme` names so that old records stay verifiable.
"""

from __future__ import annotations

import hmac
from functools import lru_cache

__all__ = ["DIGEST_KEYED", "DIGEST_PLAIN", "digest_scheme", "egress_digest",
           "egress_digest_key"]

DIGEST_KEYED = "hmac-sha256/v1"
"""What the chain writes: keyed, per egress topic."""
DIGEST_PLAIN = "sha256"
"""Records written before keyed digests: SHA-256 of the canonical record, 64 hex, no prefix."""

_LABEL = b"shulian/egress-digest/v1\n"
_PREFIX = DIGEST_KEYED + ":"


@lru_cache(maxsize=1024)
def egress_digest_key(master_key: bytes, topic: str) -> bytes:
    """The egress topic's digest key (derived, never stored)."""
    return hmac.digest(master_key, _LABEL + topic.encode("utf-8"), "sha256")


def egress_digest(master_key: bytes, topic: str, record_digest: str) -> str:
    """The ``shulian.digest`` header of an egress record on ``topic`` derived from the
    canonical record whose SHA-256 hex is ``record_digest``."""
    key = egress_digest_key(master_key, topic)
    return _PREFIX + hmac.digest(key, record_digest.encode("ascii"), "sha256").hex()


def digest_scheme(value: str) -> str | None:
    """The scheme of a ``shulian.digest`` value: :data:`DIGEST_KEYED`, :data:`DIGEST_PLAIN`,
    or None when it is neither."""
    keyed = value.startswith(_PREFIX)
    body = value[len(_PREFIX):] if keyed else value
    if len(body) != 64 or any(c not in "0123456789abcdef" for c in body):
        return None
    return DIGEST_KEYED if keyed else DIGEST_PLAIN
