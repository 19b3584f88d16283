"""Signed egress records (shulian.logic.egress): genuine records verify with public keys only;
forgeries by a writer with topic access fail; key rotation keeps earlier records verifiable;
and the few lines of docs/SECURITY.md verify the same records on their own."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from shulian.catalog.keys import CHAIN, Keyring, SigningKey
from shulian.catalog.models import PublicKey, Revocation
from shulian.logic.egress import verify_egress
from tests.fixtures.signing import egress_headers

T0 = datetime(2026, 3, 1, tzinfo=UTC)
TOPIC = "egress.tax.business_licence"


def _keyring(*pairs: tuple[SigningKey, dict[str, object]]) -> Keyring:
    return Keyring([PublicKey.model_validate({
        "id": k.key_id, "owner": CHAIN, "public_key": k.public_b64,
        "valid_from": T0 - timedelta(days=60), **extra}) for k, extra in pairs])


def _record(signer: SigningKey, key: bytes = b"K1", value: bytes = b"\x00\x00\x00\x00\x07v"
            ) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    return key, value, egress_headers(signer, topic=TOPIC, key=key, value=value,
                                      entry="amr-tax-licence", list_version=2,
                                      digest=hashlib.sha256(b"canonical").hexdigest())


def _check(keys: Keyring, key: bytes, value: bytes, headers: list[tuple[str, bytes]],
           topic: str = TOPIC, at: datetime = T0, now: datetime | None = None) -> str | None:
    return verify_egress(topic=topic, key=key, value=value,
                         headers=headers, keys=keys, at=at, now=now)


def test_genuine_record_verifies_and_every_forgery_fails() -> None:
    chain = SigningKey.generate("chain-1")
    keys = _keyring((chain, {}))
    key, value, headers = _record(chain)
    assert _check(keys, key, value, headers) is None
    assert _check(keys, b"K2", value, headers) is not None  # moved to a new key
    assert _check(keys, key, value + b"x", headers) is not None  # value edited
    assert _check(keys, key, value, headers, topic="egress.hrss.business_licence") is not None
    edited = [(k, b"3" if k == "shulian.list.version" else v) for k, v in headers]
    assert _check(keys, key, value, edited) is not None  # another list version claimed
    stranger = SigningKey.generate("chain-1")  # same id, not the catalogue's key
    assert "invalid signature" in (_check(keys, *_record(stranger)) or "")
    unsigned = [(k, v) for k, v in headers if not k.startswith("shulian.sig")]
    assert "not signed by the chain" in (_check(keys, key, value, unsigned) or "")


def test_rotation_keeps_earlier_records_verifiable_and_revocation_refuses_new_ones() -> None:
    old, new = SigningKey.generate("chain-1"), SigningKey.generate("chain-2")
    switch = T0 + timedelta(days=10)
    keys = _keyring((old, {"valid_to": switch}), (new, {"valid_from": switch}))
    before = _record(old)
    assert _check(keys, *before, at=T0) is None  # written before the switch: still valid
    assert "not valid at" in (_check(keys, *before, at=switch + timedelta(days=1)) or "")
    assert _check(keys, *_record(new), at=switch + timedelta(days=1)) is None
    lost = _keyring((old, {"revoked": Revocation(at=switch, reason="stolen")}))
    assert _check(lost, *before, at=T0) is None  # history: signed before the theft
    assert "revoked" in (_check(lost, *before, at=T0, now=switch) or "")  # a sink, today


def test_the_documented_consumer_snippet_verifies_on_its_own() -> None:
    chain = SigningKey.generate("chain-1")
    key, value, headers = _record(chain)
    h = dict(headers)
    # --- docs/SECURITY.md, "Verifying an egress record yourself" ----------------------------
    msg = b"\n".join([b"shulian/egress/v1", TOPIC.encode(),
                      hashlib.sha256(key).hexdigest().encode(),
                      hashlib.sha256(value).hexdigest().encode(),
                      h["shulian.entry"], h["shulian.list.version"], h["shulian.digest"]])
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(chain.public_b64))
    public.verify(base64.b64decode(h["shulian.sig"]), msg)  # raises InvalidSignature if forged
