"""Signed batch seals over the audit chain, attacked the way a writer to the audit topic would:
valid SHA-256 links computed as the worker computes them, real encoding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shulian.catalog.keys import CHAIN, Keyring, SigningKey
from shulian.catalog.models import PublicKey
from shulian.logic.audit import AuditChain, encode, hash_record, parse_audit, verify_chain
from shulian.logic.auditseal import build_seal, verify_seals

T0 = datetime(2026, 3, 1, tzinfo=UTC)
TOPIC = "audit.d"


def _key(key_id: str, start: datetime, end: datetime | None = None
         ) -> tuple[SigningKey, PublicKey]:
    k = SigningKey.generate(key_id)
    return k, PublicKey(id=key_id, owner=CHAIN, public_key=k.public_b64, valid_from=start,
                        valid_to=end)


SIGNER, PUBLIC = _key("chain-1", T0 - timedelta(days=1))
KEYS = Keyring([PUBLIC])


def _rec(i: int) -> dict[str, Any]:
    return {"v": 1, "kind": "decision", "ts": "2026-03-01T00:00:00.000Z", "decision": "withhold",
            "record_key": f"k{i}", "source": {"topic": "canonical.d", "partition": 0,
                                               "offset": i}}


def _batches(chain: AuditChain, sizes: list[int], signer: SigningKey = SIGNER,
             ts: datetime = T0, start: int = 0) -> list[bytes]:
    out: list[bytes] = []
    n = start
    for size in sizes:
        for _ in range(size):
            out.append(chain.seal(_rec(n)))
            n += 1
        out.append(build_seal(chain, signer, topic=TOPIC, partition=0, ts=ts, worker="w"))
    return out


def _items(values: list[bytes]) -> list[tuple[int, bytes]]:
    return list(enumerate(values))


def test_sealed_batches_verify() -> None:
    values = _batches(AuditChain(), [3, 2, 4])
    v = verify_seals(TOPIC, 0, _items(values), KEYS)
    assert v.breaks == [] and v.unsigned_tail == 0 and v.seals == 3
    assert verify_chain(_items(values)) == []


def test_a_seal_is_bound_to_its_partition_and_topic() -> None:
    values = _batches(AuditChain(), [2])
    assert verify_seals(TOPIC, 1, _items(values), KEYS).breaks
    assert verify_seals("audit.other", 0, _items(values), KEYS).breaks


def test_worker_killed_mid_batch_leaves_an_unsigned_tail_not_a_forgery() -> None:
    chain = AuditChain()
    values = [*_batches(chain, [3]), chain.seal(_rec(10)), chain.seal(_rec(11))]
    v = verify_seals(TOPIC, 0, _items(values), KEYS)
    assert v.breaks == [] and v.unsigned_tail == 2
    # the restarted worker resumes from the last record and seals its next batch: covered
    resumed = AuditChain.resume(values[-1])
    values += _batches(resumed, [1], start=12)
    v = verify_seals(TOPIC, 0, _items(values), KEYS)
    assert v.breaks == [] and v.unsigned_tail == 0


def test_forged_record_with_a_correct_link_is_named() -> None:
    chain = AuditChain()
    values = _batches(chain, [3])
    # the attacker appends a record linked to the head exactly as the worker would
    attacker = AuditChain.resume(values[-1])
    values.append(attacker.seal({**_rec(99), "decision": "deliver"}))
    v = verify_seals(TOPIC, 0, _items(values), KEYS)
    assert v.breaks == [] and v.unsigned_tail == 1  # alone it is only unsigned
    # the worker's next batch links to its own head, not the forgery; its seal vouches for it
    values += _batches(chain, [2], start=3)
    v = verify_seals(TOPIC, 0, _items(values), KEYS)
    assert v.breaks and v.breaks[0][0] == 4 and "not vouched for" in v.breaks[0][1]
    assert [o for o, _ in v.breaks] == [4] and v.unsigned_tail == 0


def test_rehashed_edit_in_the_signed_part_fails_at_the_seal() -> None:
    values = _batches(AuditChain(), [3, 3])
    recs = [parse_audit(v) for v in values]
    assert all(r is not None for r in recs)
    recs[1] = {**recs[1], "decision": "deliver"}  # type: ignore[dict-item]
    head = recs[0]["hash"]  # type: ignore[index]
    rewritten: list[bytes] = [values[0]]
    for r in recs[1:]:  # re-link and re-hash everything after, as the worker would
        assert r is not None
        r = {**r, "prev_hash": head}
        r["hash"] = hash_record(r)
        head = r["hash"]
        rewritten.append(encode(r))
    assert verify_chain(_items(rewritten)) == []  # the links alone are fine
    v = verify_seals(TOPIC, 0, _items(rewritten), KEYS)
    assert [o for o, _ in v.breaks][:1] == [3] and "seal does not hold" in v.breaks[0][1]


def test_junk_does_not_hide_the_rest() -> None:
    values = _batches(AuditChain(), [2, 2])
    values.insert(2, b"\x00junk")
    items = _items(values)
    chain_breaks = verify_chain(items)
    assert [b.offset for b in chain_breaks][:1] == [2]
    v = verify_seals(TOPIC, 0, items, KEYS)
    assert v.seals == 2 and v.breaks == [] and v.unsigned_tail == 0


def test_key_rotation_keeps_earlier_seals_verifiable() -> None:
    switch = T0 + timedelta(days=30)
    old, old_pub = _key("chain-old", T0 - timedelta(days=1), switch)
    new, new_pub = _key("chain-new", switch)
    keys = Keyring([old_pub, new_pub])
    chain = AuditChain()
    values = _batches(chain, [2], signer=old, ts=T0)
    values += _batches(chain, [2], signer=new, ts=switch + timedelta(hours=1), start=2)
    v = verify_seals(TOPIC, 0, _items(values), keys)
    assert v.breaks == [] and v.seals == 2
    # the old key cannot seal after the switch
    late = _batches(AuditChain.resume(values[-1]), [1], signer=old,
                    ts=switch + timedelta(days=1), start=9)
    v = verify_seals(TOPIC, 0, _items(values + late), keys)
    assert len(v.breaks) == 1 and "not valid" in v.breaks[0][1]
