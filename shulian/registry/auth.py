"""Who may use the registry: HTTP Basic with the perimeter's principals (Confluent clients'
``basic.auth.user.info`` works unchanged) and a pure table of what each may do.

    read anything (GET, lookup POST /subjects/<s>, POST /compatibility/...)  any principal
    register under raw.<a>.<d>-value / -key                  agency.<a>, chain, governance
    register under canonical.* and egress.* subjects         chain, governance
    PUT /config/<egress subject> (views have compatibility NONE)   chain, governance
    any other config or mode change, any delete, anything else    governance

Unauthenticated: 401 ``{"error_code": 40101, ...}`` with ``WWW-Authenticate: Basic``; refused:
403 ``{"error_code": 40301, ...}``. Auth is off only when no credentials are configured (the
embedded developer stack); the registry then logs ``registry.unauthenticated`` once.

An ASGI middleware around the app (:func:`protect`): the routes themselves do not change.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from pydantic import SecretStr

from shulian.chain import topology as names
from shulian.chain.topology import Topology
from shulian.log import get_logger
from shulian.perimeter.identities import Principal, Role

__all__ = ["Action", "Decision", "authorize", "classify", "load_registry_credentials",
           "protect"]

log = get_logger(__name__)
UNAUTHORIZED = 40101
FORBIDDEN = 40301
_TOPOLOGY = Topology()
_ID = re.compile(r"^[a-z][a-z0-9_]*$")  # agency and dataset ids (shulian.catalog.models)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Action(StrEnum):
    READ = "read"
    REGISTER = "register"
    CONFIG = "config"
    MODE = "mode"
    DELETE = "delete"
    OTHER = "other"  # any other change: governance only (fail closed on new endpoints)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    why: str


def _segments(path: str) -> list[str]:
    """Path segments, each percent-decoded once (``raw.a.b%2Fx`` stays one segment)."""
    return [unquote(s) for s in path.split("/") if s]


def classify(method: str, raw_path: str) -> tuple[Action, str | None]:
    """What a request does and the subject it concerns (from the undecoded path)."""
    m = method.upper()
    seg = _segments(raw_path)
    head = seg[0] if seg else ""
    subject = seg[1] if len(seg) > 1 and head in ("subjects", "config", "mode") else None
    if head == "compatibility" and len(seg) > 2:
        subject = seg[2]
    if m in ("GET", "HEAD", "OPTIONS"):
        return Action.READ, subject
    if m == "POST" and head == "subjects" and len(seg) == 2:
        return Action.READ, subject  # lookup: is this schema registered under the subject?
    if m == "POST" and head == "compatibility":
        return Action.READ, subject
    if m == "POST" and head == "subjects" and len(seg) == 3 and seg[2] == "versions":
        return Action.REGISTER, subject
    if m == "DELETE" and head == "subjects":
        return Action.DELETE, subject
    if head == "config":
        return Action.CONFIG, subject
    if head == "mode":
        return Action.MODE, subject
    return Action.OTHER, subject


def _topic_of(subject: str) -> str | None:
    for suffix in ("-value", "-key"):
        if subject.endswith(suffix):
            return subject[: -len(suffix)]
    return None


def _family(subject: str | None) -> tuple[str, str | None] | None:
    """(family, owning agency or None) of a TopicNameStrategy subject of a chain topic."""
    topic = _topic_of(subject or "")
    if topic is None:
        return None
    raw = _TOPOLOGY.parse_raw(topic)
    if raw is not None:
        return (names.RAW, raw[0]) if all(map(_ID.match, raw)) else None
    if _TOPOLOGY.parse_canonical(topic) is not None:
        return names.CANONICAL, None
    if _TOPOLOGY.parse_egress(topic) is not None:
        return names.EGRESS, None
    return None


def authorize(principal: Principal, action: Action, subject: str | None,
              method: str = "PUT") -> Decision:
    """May ``principal`` do ``action`` on ``subject``? (Pure; the table in the module doc.)"""
    if principal.role is Role.GOVERNANCE:
        return Decision(True, "governance")
    if action is Action.READ:
        return Decision(True, "any principal reads")
    fam = _family(subject)
    if action is Action.REGISTER and fam is not None:
        family, owner = fam
        if principal.role is Role.CHAIN:
            return Decision(True, "the chain registers chain subjects")
        if principal.role is Role.AGENCY and family == names.RAW and owner == principal.subject:
            return Decision(True, "an agency registers its own raw subjects")
    if (action is Action.CONFIG and method == "PUT" and principal.role is Role.CHAIN
            and fam is not None and fam[0] == names.EGRESS):
        return Decision(True, "the chain sets its view subjects' compatibility")
    what = f"{action} on {subject}" if subject else str(action)
    return Decision(False, f"{principal.name} may not {what}")


def load_registry_credentials(directory: Path | None) -> dict[str, SecretStr]:
    """Every principal's secret in ``directory`` (files named like a principal; others are
    ignored). Empty when ``directory`` is None: the registry then runs unauthenticated."""
    from shulian.perimeter.identities import load_credentials

    if directory is None:
        return {}
    found = [p for p in (Principal.parse(f.name) for f in sorted(directory.iterdir())
                         if f.is_file()) if p is not None]
    return load_credentials(directory, found)


def _basic(headers: list[tuple[bytes, bytes]]) -> tuple[str, str] | None:
    for k, v in headers:
        if k.lower() == b"authorization":
            scheme, _, token = v.decode("latin-1").partition(" ")
            if scheme.lower() != "basic":
                return None
            try:
                text = base64.b64decode(token.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
            user, sep, pw = text.partition(":")
            return (user, pw) if sep else None
    return None


def authenticate(headers: list[tuple[bytes, bytes]],
                 secrets: Mapping[str, SecretStr]) -> Principal | None:
    found = _basic(headers)
    if found is None:
        return None
    user, pw = found
    expected = secrets.get(user)
    # compare against something even for unknown users: no timing difference to probe names
    want = expected.get_secret_value() if expected is not None else "\0" * 43
    ok = hmac.compare_digest(want.encode(), pw.encode()) and expected is not None
    return Principal.parse(user) if ok else None


async def _answer(send: Send, status: int, code: int, message: str,
                  extra: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    body = json.dumps({"error_code": code, "message": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/vnd.schemaregistry.v1+json"),
                            (b"content-length", str(len(body)).encode()), *extra]})
    await send({"type": "http.response.body", "body": body})


def protect(app: ASGIApp, secrets: Mapping[str, SecretStr]) -> ASGIApp:
    """``app`` behind authentication and the authorisation table; ``app`` itself when no
    credentials are configured (logged once: the registry is unauthenticated)."""
    if not secrets:
        log.warning("registry.unauthenticated",
                    note="no credentials configured: anyone who reaches it may change schemas")
        return app
    log.info("registry.authenticated", principals=len(secrets))

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        principal = authenticate(scope.get("headers", []), secrets)
        if principal is None:
            await _answer(send, 401, UNAUTHORIZED, "Unauthorized: valid credentials required",
                          ((b"www-authenticate", b'Basic realm="shulian-registry"'),))
            return
        raw = scope.get("raw_path") or scope["path"].encode()
        action, subject = classify(scope["method"], raw.decode("latin-1").split("?", 1)[0])
        decision = authorize(principal, action, subject, scope["method"].upper())
        if not decision.allowed:
            log.warning("registry.refused", principal=principal.name, action=str(action))
            await _answer(send, 403, FORBIDDEN, f"Forbidden: {decision.why}")
            return
        await app(scope, receive, send)

    return guarded
