"""What a writer resuming an audit chain trusts (shulian.logic.audittrail), attacked the way a
writer to the audit topic would: valid links, the real encoder, tags copied from genuine
records. The resume seal it writes then lets ``verify_seals`` name every disowned record."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from shulian.catalog.keys import CHAIN, Keyring, SigningKey
from shulian.catalog.models import PublicKey
from shulian.logic.audit import AuditChain, encode, hash_record, verify_chain
from shulian.logic.auditseal import build_seal, verify_seals
from shulian.logic.audittrail import TailTrust, tail_tagger, trusted_tail

T0 = datetime(2026, 3, 1, tzinfo=UTC)
TOPIC = "audit.d"
SIGNER = SigningKey.generate("chain-1")
KEYS = Keyring([PublicKey(id="chain-1", owner=CHAIN, public_key=SIGNER.public_b64,
                          valid_from=T0 - timedelta(days=1))])
TAG = tail_tagger(SIGNER, TOPIC, 0)
TRUST = TailTrust(KEYS, TAG)


def _rec(i: int) -> dict[str, Any]:
    return {"v": 1, "kind": "decision", "ts": "2026-03-01T00:00:00.000Z", "decision": "deliver",
            "record_key": f"k{i}", "source": {"topic": "canonical.d", "partition": 0,
                                               "offset": i}}


def _written(records: int, *, sealed: bool, chain: AuditChain | None = None,
             start: int = 0) -> tuple[list[bytes], AuditChain]:
    chain = chain or AuditChain(tag=TAG)
    values = [chain.seal(_rec(start + i)) for i in range(records)]
    if sealed:
        values.append(build_seal(chain, SIGNER, topic=TOPIC, partition=0, ts=T0, worker="w"))
    return values, chain


def _forged_after(values: list[bytes], i: int) -> bytes:
    """Linked to the last record, hashed and encoded as the worker does, tag copied."""
    last = json.loads(values[-1])
    rec = {**_rec(i), "mac": last["mac"], "seq": last["seq"] + 1, "prev_hash": last["hash"]}
    rec["hash"] = hash_record(rec)
    return encode(rec)


def _items(values: list[bytes]) -> list[tuple[int, bytes]]:
    return list(enumerate(values))


def test_the_writers_own_unsealed_records_are_trusted() -> None:
    values, chain = _written(3, sealed=True)
    more, _ = _written(2, sealed=False, chain=chain, start=3)
    tail = trusted_tail(TOPIC, 0, _items(values + more), TRUST)
    assert tail.disowned == [] and tail.unsealed == 2 and len(tail.trusted) == 6
    assert tail.head == tail.resumes == (5, chain.head)


def test_a_forged_record_is_disowned_even_with_a_copied_tag() -> None:
    values, chain = _written(3, sealed=True)
    values.append(_forged_after(values, 99))
    tail = trusted_tail(TOPIC, 0, _items(values), TRUST)
    assert tail.disowned == [4] and [r.get("record_key") for r in tail.trusted][-2] == "k2"
    assert tail.resumes == (3, chain.head)
    # without the chain's trust (no tag, no key) it would have been learnt from
    assert trusted_tail(TOPIC, 0, _items(values), TailTrust()).disowned == []


def test_a_tag_is_bound_to_its_partition() -> None:
    values, _ = _written(3, sealed=True)
    moved, _ = _written(1, sealed=False, chain=AuditChain(
        json.loads(values[-1])["hash"], next_seq=4, tag=tail_tagger(SIGNER, TOPIC, 1)))
    assert trusted_tail(TOPIC, 0, _items(values + moved), TRUST).disowned == [4]


def test_junk_and_a_forged_seal_are_disowned_and_genuine_records_after_them_kept() -> None:
    values, chain = _written(2, sealed=True)
    values.append(b"\x00junk")
    mine, _ = _written(1, sealed=False, chain=chain, start=2)  # links to the worker's head
    values += mine
    values.append(_forged_after(values, 98))
    last = json.loads(values[-1])
    values.append(build_seal(AuditChain(last["hash"], next_seq=last["seq"] + 1),
                             SigningKey.generate("chain-1"), topic=TOPIC, partition=0, ts=T0,
                             worker="x"))
    tail = trusted_tail(TOPIC, 0, _items(values), TRUST)
    assert tail.disowned == [3, 5, 6] and tail.resumes == (3, chain.head)
    assert tail.head == (last["seq"] + 1, json.loads(values[-1])["hash"])


def test_the_resume_seal_makes_verify_name_each_disowned_record() -> None:
    values, _ = _written(3, sealed=True)
    values += [_forged_after(values, 90)]
    values += [_forged_after(values, 91)]
    tail = trusted_tail(TOPIC, 0, _items(values), TRUST)
    chain = tail.chain(TAG)
    values.append(build_seal(chain, SIGNER, topic=TOPIC, partition=0, ts=T0, worker="w",
                             resumes=tail.resumes_hash, disowned=tail.disowned))
    more, _ = _written(2, sealed=True, chain=chain, start=3)
    values += more
    assert verify_chain(_items(values)) == []
    v = verify_seals(TOPIC, 0, _items(values), KEYS)
    assert [o for o, _ in v.breaks] == [4, 5] and v.unsigned_tail == 0 and v.seals == 3
    assert all("disowned by the resume seal at offset 6" in why for _, why in v.breaks)
    # a resume seal whose 'resumes' was changed no longer holds
    edited = json.loads(values[6])
    edited["resumes"] = edited["prev_hash"]
    edited["hash"] = hash_record(edited)
    bad = [*values[:6], encode(edited)]
    assert "seal does not hold" in verify_seals(TOPIC, 0, _items(bad), KEYS).breaks[0][1]


def test_a_rotated_key_disowns_the_old_keys_unsealed_records() -> None:
    """Rotate the chain's key after a clean stop (every batch sealed): records the old key
    tagged but never sealed cannot be recognised by the new one, so they are disowned (named,
    never learnt from), while everything the old key sealed stays verifiable."""
    new = SigningKey.generate("chain-2")
    old = KEYS.get("chain-1")
    assert old is not None
    keys = Keyring([old, PublicKey(id="chain-2", owner=CHAIN, public_key=new.public_b64,
                              valid_from=T0)])
    values, chain = _written(2, sealed=True)
    more, _ = _written(1, sealed=False, chain=chain, start=2)
    tail = trusted_tail(TOPIC, 0, _items(values + more),
                        TailTrust(keys, tail_tagger(new, TOPIC, 0)))
    assert tail.disowned == [3] and len(tail.trusted) == 3
    assert trusted_tail(TOPIC, 0, _items(values), TailTrust(keys, tail_tagger(new, TOPIC, 0))
                        ).disowned == []
