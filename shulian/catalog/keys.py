"""Ed25519 keys: the catalogue's public keys (``catalog/keys.yaml``) and signing with a private
key held outside the repository. Pure (no I/O but :func:`load_private_key`, which reads one
file the caller names).

Who owns a key: ``governance`` (the data governance office), an agency id, or ``chain`` (the
chain's workers: egress and audit signatures). A key signs items dated inside
``[valid_from, valid_to)``; a revoked key signs nothing dated at or after ``revoked.at``, and
when ``now`` is given (a version about to be applied) nothing at all once revoked: a stolen key
can backdate. See docs/SECURITY.md, "Key lifecycle".
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shulian.catalog.models import PublicKey

__all__ = [
    "CHAIN",
    "GOVERNANCE",
    "Keyring",
    "SigningKey",
    "load_private_key",
    "public_key_b64",
    "verify_raw",
]

GOVERNANCE = "governance"
CHAIN = "chain"


def _b64decode(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None


def public_key_b64(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def parse_public_key(text: str) -> Ed25519PublicKey | None:
    raw = _b64decode(text)
    if raw is None or len(raw) != 32:
        return None
    return Ed25519PublicKey.from_public_bytes(raw)


def verify_raw(public_key_text: str, message: bytes, signature_b64: str) -> bool:
    """True when ``signature_b64`` is a valid Ed25519 signature of ``message``."""
    key = parse_public_key(public_key_text)
    sig = _b64decode(signature_b64)
    if key is None or sig is None or len(sig) != 64:
        return False
    try:
        key.verify(sig, message)
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class SigningKey:
    """A private key with the catalogue id of its public half."""

    key_id: str
    private: Ed25519PrivateKey

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self.private.sign(message)).decode("ascii")

    @property
    def public_b64(self) -> str:
        return public_key_b64(self.private.public_key())

    @classmethod
    def generate(cls, key_id: str) -> SigningKey:
        return cls(key_id, Ed25519PrivateKey.generate())

    def pem(self) -> bytes:
        return self.private.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption())


def private_key_from_text(data: bytes) -> Ed25519PrivateKey:
    """A PKCS#8 PEM private key, or base64 of the 32-byte seed. Raises ValueError."""
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        key = serialization.load_pem_private_key(text, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("not an Ed25519 private key")
        return key
    seed = _b64decode(text.decode("ascii", "replace"))
    if seed is None or len(seed) != 32:
        raise ValueError("neither a PEM private key nor base64 of a 32-byte Ed25519 seed")
    return Ed25519PrivateKey.from_private_bytes(seed)


def load_private_key(path: Path, keys: Mapping[str, PublicKey]) -> SigningKey:
    """The private key in ``path``, named by the catalogue key with the same public half.
    Raises ValueError (unreadable, or no catalogue key matches)."""
    try:
        private = private_key_from_text(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    public = public_key_b64(private.public_key())
    for k in keys.values():
        if k.public_key == public:
            return SigningKey(k.id, private)
    raise ValueError(f"{path}: its public key is not in the catalogue (catalog/keys.yaml)")


class Keyring:
    """The catalogue's public keys, by id, with the rules of their use."""

    def __init__(self, keys: Mapping[str, PublicKey] | Iterable[PublicKey]) -> None:
        items = keys.values() if isinstance(keys, Mapping) else keys
        self._keys = {k.id: k for k in items}

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def get(self, key_id: str) -> PublicKey | None:
        return self._keys.get(key_id)

    def of(self, owner: str) -> list[PublicKey]:
        return [k for k in self._keys.values() if k.owner == owner]

    def development(self) -> list[str]:
        return sorted(k.id for k in self._keys.values() if k.development)

    def unusable(self, key_id: str, *, owner: str | None, at: datetime,
                 now: datetime | None = None) -> str | None:
        """Why key ``key_id`` may not sign an item dated ``at`` (None: it may). ``owner``:
        whose key it must be (None: anyone's). ``now``: also refuse a key revoked by then."""
        key = self._keys.get(key_id)
        if key is None:
            return f"unknown key '{key_id}'"
        if owner is not None and key.owner != owner:
            return f"key '{key_id}' belongs to '{key.owner}', not '{owner}'"
        if at.tzinfo is None:
            return "the signed item's time has no timezone"
        if at < key.valid_from or (key.valid_to is not None and at >= key.valid_to):
            return f"key '{key_id}' is not valid at {at.isoformat()}"
        if key.revoked is not None:
            if at >= key.revoked.at:
                return f"key '{key_id}' was revoked at {key.revoked.at.isoformat()}"
            if now is not None and now >= key.revoked.at:
                return (f"key '{key_id}' is revoked ({key.revoked.reason}); nothing new "
                        "signed with it is accepted")
        return None

    def check(self, key_id: str, message: bytes, sig: str, *, owner: str | None,
              at: datetime, now: datetime | None = None) -> str | None:
        """Why the signature does not hold (None: it is valid and the key was usable)."""
        why = self.unusable(key_id, owner=owner, at=at, now=now)
        if why is not None:
            return why
        if not verify_raw(self._keys[key_id].public_key, message, sig):
            return f"invalid signature by key '{key_id}'"
        return None
