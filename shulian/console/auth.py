"""Who is logged in to the console and what they may see. Pure: no HTTP, no Kafka.

Principals (the embedded stack's, see ``shulian up``):

- ``governance``: the data governance office; sees everything;
- ``auditor``: the audit pages, the sharing list and the catalogue;
- ``agency:<id>``: one agency, logging in with its gateway token; sees its own published
  datasets, its own dead letters, what it receives and the list entries it is party to.

Tokens are kept only as SHA-256 digests; a presented token is hashed once and compared with
every digest by ``hmac.compare_digest`` (constant time, no early exit). Sessions are signed
(HMAC-SHA256) cookie values carrying the principal, a CSRF token and an expiry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Kind", "Page", "Principal", "SessionCodec", "TokenBook", "token_digest"]


class Kind(StrEnum):
    GOVERNANCE = "governance"
    AUDITOR = "auditor"
    AGENCY = "agency"


class Page(StrEnum):
    """The console's areas; :meth:`Principal.may_open` decides per area."""

    OVERVIEW = "overview"
    CATALOGUE = "catalogue"
    SHARING = "sharing"
    DEADLETTERS = "deadletters"
    AUDIT = "audit"


_PAGES: dict[Kind, frozenset[Page]] = {
    Kind.GOVERNANCE: frozenset(Page),
    Kind.AUDITOR: frozenset({Page.AUDIT, Page.SHARING, Page.CATALOGUE}),
    Kind.AGENCY: frozenset({Page.OVERVIEW, Page.CATALOGUE, Page.SHARING, Page.DEADLETTERS}),
}


@dataclass(frozen=True, slots=True)
class Principal:
    kind: Kind
    agency: str | None = None  # set for Kind.AGENCY only

    @property
    def id(self) -> str:
        """What logs and the page header name: never personal data."""
        return f"agency:{self.agency}" if self.kind is Kind.AGENCY else self.kind.value

    @classmethod
    def parse(cls, text: str) -> Principal | None:
        kind, _, agency = text.partition(":")
        if kind == Kind.AGENCY.value and agency:
            return cls(Kind.AGENCY, agency)
        if kind in (Kind.GOVERNANCE.value, Kind.AUDITOR.value) and not agency:
            return cls(Kind(kind))
        return None

    @property
    def sees_all(self) -> bool:
        return self.kind is Kind.GOVERNANCE

    def may_open(self, page: Page) -> bool:
        return page in _PAGES[self.kind]

    def sees_agency(self, agency: str) -> bool:
        """Data that belongs to ``agency`` (its raw records, dead letters, mapping)."""
        return self.kind is Kind.GOVERNANCE or self.agency == agency

    def party_to(self, provider: str, consumer: str) -> bool:
        """A list entry, decision or delivery between ``provider`` and ``consumer``."""
        if self.kind is not Kind.AGENCY:
            return True
        return self.agency in (provider, consumer)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "replace")).digest()


class TokenBook:
    """Principal -> SHA-256 digest of its token."""

    def __init__(self, digests: Mapping[Principal, bytes]) -> None:
        self._digests = dict(digests)

    @classmethod
    def of(cls, *, agencies: Mapping[str, str], governance: str | None,
           auditor: str | None) -> TokenBook:
        """``agencies``: agency -> hex SHA-256 of its token; the others: tokens in clear,
        hashed here at once (None: that principal cannot log in)."""
        digests = {Principal(Kind.AGENCY, a): bytes.fromhex(h) for a, h in agencies.items()}
        if governance:
            digests[Principal(Kind.GOVERNANCE)] = token_digest(governance)
        if auditor:
            digests[Principal(Kind.AUDITOR)] = token_digest(auditor)
        return cls(digests)

    def __len__(self) -> int:
        return len(self._digests)

    def identify(self, token: str) -> Principal | None:
        """The principal whose token this is; every digest is compared, whatever matched."""
        if not token or len(token) > 4096:
            return None
        digest = token_digest(token.strip())
        found: Principal | None = None
        for principal, expected in self._digests.items():
            if hmac.compare_digest(digest, expected) and found is None:
                found = principal
        return found


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Session:
    principal: Principal
    csrf: str
    expires_ms: int


class SessionCodec:
    """Signed cookie values: ``base64(json).base64(hmac)``; tampered or expired -> None."""

    def __init__(self, key: bytes, *, ttl_ms: int = 8 * 3600 * 1000) -> None:
        self._key = key
        self.ttl_ms = ttl_ms

    def _sign(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()

    def issue(self, principal: Principal, *, now_ms: int) -> tuple[str, Session]:
        session = Session(principal, secrets.token_urlsafe(24), now_ms + self.ttl_ms)
        body = json.dumps({"p": principal.id, "c": session.csrf, "e": session.expires_ms},
                          separators=(",", ":")).encode()
        return f"{_b64(body)}.{_b64(self._sign(body))}", session

    def read(self, value: str | None, *, now_ms: int) -> Session | None:
        if not value or value.count(".") != 1 or len(value) > 2048:
            return None
        body_text, sig_text = value.split(".")
        try:
            body, sig = _unb64(body_text), _unb64(sig_text)
        except ValueError:
            return None
        if not hmac.compare_digest(sig, self._sign(body)):
            return None
        try:
            data = json.loads(body)
            principal = Principal.parse(str(data["p"]))
            csrf, expires = str(data["c"]), int(data["e"])
        except (ValueError, KeyError, TypeError):
            return None
        if principal is None or expires <= now_ms:
            return None
        return Session(principal, csrf, expires)

    def login_csrf(self, nonce: str) -> str:
        """The CSRF token of the login form, bound to a pre-session nonce cookie."""
        return _b64(self._sign(b"login:" + nonce.encode()))
