"""The gateway's pure parts: bearer-token checks and the idempotency store.

Tokens are never kept in clear: each agency's config holds the SHA-256 of its token (or the env
var holding the token, hashed as soon as it is read). A presented token is hashed once and
compared with every agency's hash by ``hmac.compare_digest`` (constant time, no early exit), so
timing reveals neither which agency nor how much of a hash matched.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["AuthOutcome", "Authenticator", "IdemEntry", "IdempotencyStore", "token_sha256"]


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class AuthOutcome(StrEnum):
    OK = "ok"
    UNAUTHENTICATED = "unauthenticated"  # 401: no token, malformed, or unknown
    FORBIDDEN = "forbidden"  # 403: a valid token of another agency, or a dataset not granted
    NOT_FOUND = "not_found"  # 404 (to a valid token only): no such agency or dataset here


class Authenticator:
    """agency -> token hash, and which datasets each agency may publish."""

    def __init__(self, hashes: Mapping[str, str], datasets: Mapping[str, frozenset[str]]) -> None:
        self._hashes = {a: bytes.fromhex(h) for a, h in hashes.items()}
        self._datasets = dict(datasets)
        self._known = frozenset(d for ds in datasets.values() for d in ds)

    def identify(self, authorization: str | None) -> str | None:
        """The agency whose token is presented in an ``Authorization: Bearer`` header."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > 4096:
            return None
        digest = hashlib.sha256(token.encode("utf-8", "replace")).digest()
        found: str | None = None
        for agency, expected in self._hashes.items():
            if hmac.compare_digest(digest, expected) and found is None:
                found = agency
        return found

    def check(self, authorization: str | None, *, agency: str, dataset: str) -> AuthOutcome:
        who = self.identify(authorization)
        if who is None:
            return AuthOutcome.UNAUTHENTICATED
        if agency not in self._hashes or dataset not in self._known:
            return AuthOutcome.NOT_FOUND  # a misspelt name: say so rather than "forbidden"
        if who != agency or dataset not in self._datasets.get(who, frozenset()):
            return AuthOutcome.FORBIDDEN
        return AuthOutcome.OK


@dataclass
class IdemEntry:
    body_sha256: str
    expires: float
    status: int | None = None  # None while the first request is in flight
    reply: bytes | None = None


class IdempotencyStore:
    """Replies by (agency, dataset, Idempotency-Key), kept ``ttl_s``, at most ``max_keys``.

    In memory: a gateway restart forgets the keys (documented). Meant for one asyncio loop.
    """

    def __init__(self, *, ttl_s: float, max_keys: int) -> None:
        self.ttl_s = ttl_s
        self.max_keys = max_keys
        self._entries: OrderedDict[tuple[str, str, str], IdemEntry] = OrderedDict()

    def _expire(self, now: float) -> None:
        while self._entries:
            key, first = next(iter(self._entries.items()))
            if first.expires > now and len(self._entries) <= self.max_keys:
                break
            if first.status is None and first.expires > now:
                break  # never drop an in-flight entry
            del self._entries[key]

    def begin(self, key: tuple[str, str, str], body_sha256: str,
              *, now: float | None = None) -> IdemEntry | None:
        """None: go ahead (the key is now reserved). Else the existing entry: a stored reply,
        one in flight (``status`` None), or a different body (compare ``body_sha256``)."""
        t = time.monotonic() if now is None else now
        self._expire(t)
        found = self._entries.get(key)
        if found is not None:
            return found
        self._entries[key] = IdemEntry(body_sha256, t + self.ttl_s)
        return None

    def finish(self, key: tuple[str, str, str], *, status: int, reply: bytes) -> None:
        entry = self._entries.get(key)
        if entry is not None:
            entry.status = status
            entry.reply = reply

    def abandon(self, key: tuple[str, str, str]) -> None:
        """Forget a reservation whose request failed for infrastructure reasons (retryable)."""
        entry = self._entries.get(key)
        if entry is not None and entry.status is None:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)
