"""Signed JSON records (list-version audit records, audit checkpoints): the chain's Ed25519
signature over the record's canonical JSON without its ``sig`` field. Pure.

``sig`` = ``{"key": <catalogue key id>, "sig": <base64>}`` over
``b"shulian/" + kind + b"/v1\\n" + canonical JSON of the record without "sig"`` where ``kind``
is the record's own ``kind`` field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shulian.catalog.keys import CHAIN, Keyring, SigningKey

__all__ = ["check_signed", "sign_record"]


def _message(record: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in record.items() if k != "sig"}
    kind = str(record.get("kind", ""))
    return (f"shulian/{kind}/v1\n".encode() + json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def sign_record(record: dict[str, Any], signer: SigningKey) -> dict[str, Any]:
    """``record`` with its ``sig`` (a new dict)."""
    body = {k: v for k, v in record.items() if k != "sig"}
    return {**body, "sig": {"key": signer.key_id, "sig": signer.sign(_message(body))}}


def check_signed(record: Mapping[str, Any], keys: Keyring, *, at: datetime,
                 owner: str = CHAIN) -> str | None:
    """Why ``record``'s signature does not hold (None: it does)."""
    sig = record.get("sig")
    if not isinstance(sig, dict) or not isinstance(sig.get("key"), str) \
            or not isinstance(sig.get("sig"), str):
        return "not signed"
    return keys.check(sig["key"], _message(record), sig["sig"], owner=owner, at=at)
