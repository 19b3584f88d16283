"""Signed egress records (shulian.logic.egress): genuine records verify with public keys only,
one signature per batch over a Merkle root with a proof per record; forgeries by a writer with
topic access fail (edits, swapped or foreign proofs, cut proofs, other keys); key rotation keeps
earlier records verifiable; records signed one by one (scheme v1) still verify; and the few
lines of docs/SECURITY.md, run from the file, verify the same records on their own."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shulian.catalog.keys import CHAIN, Keyring, SigningKey
from shulian.catalog.models import PublicKey, Revocation
from shulian.logic.egress import (
    LEAVES_PER_SIGNATURE,
    PROOF_HEADER,
    SCHEME_HEADER,
    SIGNATURE_HEADER,
    SIGNED_AT_HEADER,
    EgressContent,
    sign_batch,
    verify_egress,
)
from shulian.settings import REPO_ROOT
from tests.fixtures.signing import egress_headers, egress_headers_v1

T0 = datetime(2026, 3, 1, tzinfo=UTC)
TOPIC = "egress.tax.business_licence"
Headers = list[tuple[str, bytes]]
Record = tuple[bytes, bytes, Headers]
CHAIN_KEY = SigningKey.generate("chain-1")


def _keyring(*pairs: tuple[SigningKey, dict[str, object]]) -> Keyring:
    return Keyring([PublicKey.model_validate({
        "id": k.key_id, "owner": CHAIN, "public_key": k.public_b64,
        "valid_from": T0 - timedelta(days=60), **extra}) for k, extra in pairs])


KEYS = _keyring((CHAIN_KEY, {}))


def _content(i: int, topic: str = TOPIC) -> EgressContent:
    return EgressContent(topic, f"K{i}".encode(), b"\x00\x00\x00\x00\x07v" + bytes([i % 256]),
                         "amr-tax-licence", 2, hashlib.sha256(b"canonical%d" % i).hexdigest())


def _batch(n: int, signer: SigningKey = CHAIN_KEY, at: datetime = T0, first: int = 0
           ) -> list[Record]:
    """n egress records signed as one batch, each with every header the chain writes."""
    contents = [_content(first + i) for i in range(n)]
    signed = sign_batch(signer, contents, at=at)
    return [(c.key, c.value, [("shulian.entry", c.entry.encode()),
                              ("shulian.list.version", str(c.list_version).encode()), *h])
            for c, h in zip(contents, signed, strict=True)]


def _record(signer: SigningKey, key: bytes = b"K1", value: bytes = b"\x00\x00\x00\x00\x07v",
            at: datetime = T0) -> Record:
    return key, value, egress_headers(signer, topic=TOPIC, key=key, value=value,
                                      entry="amr-tax-licence", list_version=2,
                                      digest=hashlib.sha256(b"canonical").hexdigest(), at=at)


def _check(keys: Keyring, key: bytes, value: bytes, headers: Headers, topic: str = TOPIC,
           at: datetime = T0, now: datetime | None = None) -> str | None:
    return verify_egress(topic=topic, key=key, value=value,
                         headers=headers, keys=keys, at=at, now=now)


def _with(headers: Headers, name: str, value: bytes | None) -> Headers:
    """``headers`` with header ``name`` set to ``value`` (None: removed)."""
    kept = [(k, v) for k, v in headers if k != name]
    return kept if value is None else [*kept, (name, value)]


def _get(headers: Headers, name: str) -> bytes:
    return dict(headers)[name]


def test_genuine_record_verifies_and_every_forgery_fails() -> None:
    key, value, headers = _record(CHAIN_KEY)
    assert _check(KEYS, key, value, headers) is None
    assert _check(KEYS, b"K2", value, headers) is not None  # moved to a new key
    assert _check(KEYS, key, value + b"x", headers) is not None  # value edited
    assert _check(KEYS, key, value, headers, topic="egress.hrss.business_licence") is not None
    edited = _with(headers, "shulian.list.version", b"3")
    assert _check(KEYS, key, value, edited) is not None  # another list version claimed
    assert _check(KEYS, key, value, _with(headers, "shulian.digest", b"0" * 64)) is not None
    stranger = SigningKey.generate("chain-1")  # same id, not the catalogue's key
    assert "invalid signature" in (_check(KEYS, *_record(stranger)) or "")
    unsigned = [(k, v) for k, v in headers if not k.startswith("shulian.sig")]
    assert "not signed by the chain" in (_check(KEYS, key, value, unsigned) or "")


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 8, 9, 100])
def test_every_record_of_a_batch_verifies_alone(n: int) -> None:
    records = _batch(n)
    trees = -(-n // LEAVES_PER_SIGNATURE)
    assert len({_get(h, SIGNATURE_HEADER) for _, _, h in records}) == trees  # one per tree
    for key, value, headers in records:
        assert _check(KEYS, key, value, headers) is None
    proof = _get(records[0][2], PROOF_HEADER)
    leaves = min(n, LEAVES_PER_SIGNATURE)
    assert len(proof) == 44 * max(0, (leaves - 1).bit_length())  # log2 steps of 33 bytes


def test_single_record_batch_has_an_empty_proof_and_verifies() -> None:
    [(key, value, headers)] = _batch(1)
    assert _get(headers, PROOF_HEADER) == b""
    assert _check(KEYS, key, value, headers) is None
    as_null: list[tuple[str, bytes | None]] = [*_with(headers, PROOF_HEADER, None),
                                                (PROOF_HEADER, None)]
    assert verify_egress(topic=TOPIC, key=key, value=value, headers=as_null, keys=KEYS, at=T0,
                         now=None) is None  # an empty header value read back as None
    assert "no shulian.sig.proof" in (_check(KEYS, key, value,
                                             _with(headers, PROOF_HEADER, None)) or "")
    assert _check(KEYS, key, value + b"x", headers) is not None


def test_tampered_swapped_foreign_truncated_proofs_and_wrong_keys_fail() -> None:
    records = _batch(6)
    (k0, v0, h0), (k1, v1, h1) = records[0], records[1]
    assert "invalid signature" in (_check(KEYS, k0, v0 + b"x", h0) or "")  # value edited
    swapped = _with(h0, PROOF_HEADER, _get(h1, PROOF_HEADER))
    assert _check(KEYS, k0, v0, swapped) is not None  # another record's proof
    assert _check(KEYS, k1, v1, _with(h1, PROOF_HEADER, _get(h0, PROOF_HEADER))) is not None
    k5, v5, _ = records[5]
    assert _check(KEYS, k5, v5, h0) is not None  # every header of another record
    other = _batch(6, at=T0 + timedelta(seconds=1))  # another batch, same records
    mixed = _with(h0, PROOF_HEADER, _get(other[0][2], PROOF_HEADER))
    assert _check(KEYS, k0, v0, _with(mixed, SIGNATURE_HEADER,
                                      _get(other[3][2], SIGNATURE_HEADER))) is not None
    assert _check(KEYS, k0, v0, _with(h0, SIGNATURE_HEADER,
                                      _get(other[0][2], SIGNATURE_HEADER))) is not None
    moved = _with(h0, SIGNED_AT_HEADER, b"2026-02-01T00:00:00.000Z")  # backdated
    assert "invalid signature" in (_check(KEYS, k0, v0, moved) or "")
    proof = _get(h0, PROOF_HEADER)
    assert "malformed" in (_check(KEYS, k0, v0, _with(h0, PROOF_HEADER, proof[:-4])) or "")
    cut = _with(h0, PROOF_HEADER, proof[:-44])  # one whole step cut off
    assert "invalid signature" in (_check(KEYS, k0, v0, cut) or "")
    assert "malformed" in (_check(KEYS, k0, v0, _with(h0, PROOF_HEADER, b"%%")) or "")
    stranger = _batch(6, signer=SigningKey.generate("chain-1"))  # same id, not our key
    assert "invalid signature" in (_check(KEYS, *stranger[2]) or "")
    tax = SigningKey.generate("tax-1")  # a catalogue key, but an agency's
    keys = _keyring((CHAIN_KEY, {}), (tax, {"owner": "tax"}))
    assert "belongs to 'tax'" in (_check(keys, *_batch(3, signer=tax)[1]) or "")
    assert "unknown key" in (_check(KEYS, *_batch(3, signer=SigningKey.generate("x"))[0]) or "")


def test_unknown_scheme_refused_and_stripping_the_scheme_does_not_downgrade() -> None:
    key, value, headers = _batch(4)[2]
    bogus = _with(headers, SCHEME_HEADER, b"none")
    assert "unknown signature scheme 'none'" in (_check(KEYS, key, value, bogus) or "")
    stripped = _with(headers, SCHEME_HEADER, None)  # read as v1: the root signature fails
    assert "invalid signature" in (_check(KEYS, key, value, stripped) or "")


def test_records_signed_one_by_one_v1_still_verify() -> None:
    digest = hashlib.sha256(b"canonical").hexdigest()
    headers = egress_headers_v1(CHAIN_KEY, topic=TOPIC, key=b"K1", value=b"v", entry="e",
                                list_version=2, digest=digest)
    assert SCHEME_HEADER not in dict(headers)
    assert _check(KEYS, b"K1", b"v", headers) is None
    assert _check(KEYS, b"K1", b"w", headers) is not None
    assert _check(KEYS, b"K2", b"v", headers) is not None
    late = _keyring((CHAIN_KEY, {"valid_to": T0}))  # v1: the key is checked at the timestamp
    assert "not valid at" in (_check(late, b"K1", b"v", headers, at=T0) or "")


def test_rotation_keeps_earlier_records_verifiable_and_revocation_refuses_new_ones() -> None:
    old, new = SigningKey.generate("chain-1"), SigningKey.generate("chain-2")
    switch = T0 + timedelta(days=10)
    keys = _keyring((old, {"valid_to": switch}), (new, {"valid_from": switch}))
    before = _record(old, at=T0)  # signed before the switch: valid whenever it is read
    assert _check(keys, *before, at=switch + timedelta(days=1)) is None
    after = _record(old, at=switch + timedelta(days=1))  # the old key after its end
    assert "not valid at" in (_check(keys, *after) or "")
    assert _check(keys, *_record(new, at=switch + timedelta(days=1))) is None
    lost = _keyring((old, {"revoked": Revocation(at=switch, reason="stolen")}))
    assert _check(lost, *before) is None  # history: signed before the theft
    assert "revoked" in (_check(lost, *before, now=switch) or "")  # a sink, today
    assert "revoked" in (_check(lost, *_record(old, at=switch)) or "")


_FIELDS = ("key", "value", "topic", "entry", "list_version", "digest")


@given(st.integers(1, 40), st.data())
def test_property_only_the_untouched_record_verifies(n: int, data: st.DataObject) -> None:
    """For any batch size and any record of it, the record verifies; with any one field of
    what the chain vouches for changed, it does not."""
    records = _batch(n)
    i = data.draw(st.integers(0, n - 1))
    key, value, headers = records[i]
    assert _check(KEYS, key, value, headers) is None
    field = data.draw(st.sampled_from(_FIELDS))
    junk = data.draw(st.binary(min_size=1, max_size=8))
    topic = TOPIC + junk.hex() if field == "topic" else TOPIC
    if field in ("entry", "list_version", "digest"):
        name = {"entry": "shulian.entry", "list_version": "shulian.list.version",
                "digest": "shulian.digest"}[field]
        headers = _with(headers, name, _get(headers, name) + junk.hex().encode())
    key = key + junk if field == "key" else key
    value = value + junk if field == "value" else value
    assert _check(KEYS, key, value, headers, topic=topic) is not None


def _documented_verify() -> Callable[..., None]:
    """The ``verify`` function of docs/SECURITY.md, "Verifying an egress record yourself",
    taken from the file and run as written."""
    doc = (REPO_ROOT / "docs" / "SECURITY.md").read_text(encoding="utf-8")
    section = doc[doc.index("### Verifying an egress record yourself"):]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, "docs/SECURITY.md lost its verification snippet"
    scope: dict[str, object] = {}
    exec(compile(found.group(1), "docs/SECURITY.md", "exec"), scope)
    verify = scope["verify"]
    assert callable(verify)
    return verify


@pytest.mark.parametrize("n", [1, 2, 7])
def test_the_documented_consumer_snippet_verifies_on_its_own(n: int) -> None:
    from cryptography.exceptions import InvalidSignature

    verify = _documented_verify()
    for key, value, headers in _batch(n):
        verify(TOPIC, key, value, dict(headers), CHAIN_KEY.public_b64)  # raises if forged
        with pytest.raises(InvalidSignature):
            verify(TOPIC, key, value + b"x", dict(headers), CHAIN_KEY.public_b64)
    k0, v0, h0 = _batch(n)[0]
    with pytest.raises(InvalidSignature):  # another key's signature
        verify(TOPIC, k0, v0, dict(h0), SigningKey.generate("other").public_b64)


def test_a_batch_split_into_several_trees_verifies_record_by_record() -> None:
    contents = [_content(i) for i in range(7)]
    signed = sign_batch(CHAIN_KEY, contents, at=T0, per_signature=3)
    assert len({_get(h, SIGNATURE_HEADER) for h in signed}) == 3  # trees of 3, 3 and 1
    assert [len(_get(h, PROOF_HEADER)) for h in signed] == [88, 88, 44, 88, 88, 44, 0]
    for c, h in zip(contents, signed, strict=True):
        headers = [("shulian.entry", c.entry.encode()), ("shulian.list.version", b"2"), *h]
        assert _check(KEYS, c.key, c.value, headers) is None
    with pytest.raises(ValueError):
        sign_batch(CHAIN_KEY, contents, at=T0, per_signature=0)


def test_each_egress_topic_has_its_own_tree() -> None:
    """A proof shows sibling hashes: they come from the same consumer's topic only, never from
    another consumer's records (which could be tested against guesses of their view)."""
    contents = [_content(i, topic=TOPIC if i % 3 else "egress.hrss.business_licence")
                for i in range(9)]
    signed = sign_batch(CHAIN_KEY, contents, at=T0)
    sigs: dict[str, set[bytes]] = {c.topic: set() for c in contents}
    for c, h in zip(contents, signed, strict=True):
        sigs[c.topic].add(_get(h, SIGNATURE_HEADER))
        headers = [("shulian.entry", c.entry.encode()), ("shulian.list.version", b"2"), *h]
        assert _check(KEYS, c.key, c.value, headers, topic=c.topic) is None
    assert all(len(v) == 1 for v in sigs.values()) and len(set.union(*sigs.values())) == 2
    assert [len(_get(h, PROOF_HEADER)) for h in signed[:3]] == [88, 132, 132]  # 3 and 6 leaves


def test_a_signature_header_given_twice_is_refused() -> None:
    """Readers differ on which of two same-named headers counts (the first here, the last in
    ``dict(headers)``): a record must not verify with one value and be read with another."""
    key, value, headers = _batch(3)[1]
    for name in ("shulian.list.version", "shulian.entry", PROOF_HEADER, SIGNATURE_HEADER):
        twice = [*headers, (name, b"9")]
        assert "more than once" in (_check(KEYS, key, value, twice) or ""), name
    assert _check(KEYS, key, value, [*headers, ("shulian.provider", b"amr")]) is None
