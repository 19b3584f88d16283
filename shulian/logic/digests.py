"""The digest an egress record carries (``shulian.digest``): of the consumer's view only. Pure.

It used to be the SHA-256 of the whole canonical record. That defeats masking: a consumer sees
every field of its view and knows the dataset's schema, and where the fields masked for it have
little entropy (sex, a birth date, a district code, a citizen ID with a few digits hidden) it
can hash each guess of the whole canonical record and compare with the header. Keying that
hash (HMAC under a key only the chain holds) stops the guessing but still tells the consumer
whether two records it received came from the same canonical record, so two records that
differ only in a masked field (an ID corrected, a phone changed) remain distinguishable. So the
header is a function of what the consumer receives and nothing else:

    view_digest = "view-sha256/v1:" + hex(SHA-256(b"\\n".join([b"shulian/egress-view/v1",
                  topic, sha256hex(key), sha256hex(value), entry, list_version])))

It reveals nothing the record does not (a key would add no secrecy and would take from an
outside auditor the means to recompute it from the egress record with public data only). The
tie to the canonical record is the ``deliver`` audit record, sealed by the chain's key: it
carries this value as ``egress_digest`` next to ``record_digest`` (SHA-256 of the canonical
record) and ``source`` (where the canonical record is). An auditor matches an egress record to
its audit record on (topic, key, entry, version, digest), then the audit record to the
canonical record on ``record_digest``.

The scheme name is part of the value, so the egress signature covers it (the leaf signs the
header's text). A bare 64-hex value is the old scheme (:data:`DIGEST_PLAIN`, records written
before this one: SHA-256 of the canonical record, the ``record_digest`` of their audit record);
they stay verifiable and matchable.
"""

from __future__ import annotations

import hashlib

__all__ = ["DIGEST_PLAIN", "DIGEST_VIEW", "digest_scheme", "view_digest"]

DIGEST_VIEW = "view-sha256/v1"
"""What the chain writes: a digest of the consumer's view (topic, key, value, entry, version)."""
DIGEST_PLAIN = "sha256"
"""Records written before: SHA-256 hex of the canonical record, no prefix."""

_DOMAIN = b"shulian/egress-view/v1"
_PREFIX = DIGEST_VIEW + ":"
_HEX = frozenset("0123456789abcdef")


def view_digest(topic: str, key: bytes | None, value: bytes | None, entry: str,
                list_version: int | str) -> str:
    """The ``shulian.digest`` header of an egress record: see the module's docstring."""
    msg = b"\n".join((
        _DOMAIN, topic.encode("utf-8"),
        hashlib.sha256(key or b"").hexdigest().encode("ascii"),
        hashlib.sha256(value or b"").hexdigest().encode("ascii"),
        entry.encode("utf-8"), str(list_version).encode("utf-8"),
    ))
    return _PREFIX + hashlib.sha256(msg).hexdigest()


def digest_scheme(value: str) -> str | None:
    """The scheme of a ``shulian.digest`` value: :data:`DIGEST_VIEW`, :data:`DIGEST_PLAIN`,
    or None when it is neither."""
    view = value.startswith(_PREFIX)
    body = value[len(_PREFIX):] if view else value
    if len(body) != 64 or not _HEX.issuperset(body):
        return None
    return DIGEST_VIEW if view else DIGEST_PLAIN
