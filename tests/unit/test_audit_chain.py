"""The audit record and hash chain: format, sealing, resuming, and detection of any single edit,
drop or swap (hypothesis)."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shulian.logic.audit import (
    GENESIS,
    AuditBuilder,
    AuditChain,
    Source,
    audit_ts,
    build_audit,
    encode,
    parse_audit,
    record_digest,
    verify_chain,
)
from shulian.logic.policy import Decision
from tests.fixtures.policy import NOW, H, decide, engine, entry, make_record, mask

SRC = ("canonical.household_change", 2, 41)


def decisions() -> list[Decision]:
    eng = engine(
        entry(id="E1", consumer="health", masks={"name": mask(type="name")}),
        entry(id="E2", consumer="tax", valid_to=NOW - H, valid_from=NOW - 2 * H),
    )
    return decide(eng)


def make_chain(n: int) -> tuple[list[tuple[int, bytes]], str]:
    """n sealed audit records at offsets 100, 102, 104... (offsets may skip) and the head."""
    chain = AuditChain()
    ds = decisions()
    items = []
    for i in range(n):
        d = ds[i % len(ds)]
        rec = build_audit(
            d,
            record_digest=record_digest(f"avro-{i}".encode()),
            source=Source("canonical.household_change", 0, i),
            ts=NOW + timedelta(seconds=i),
            worker="w1",
        )
        items.append((100 + 2 * i, chain.seal(rec)))
    return items, chain.head


def test_build_audit_fields() -> None:
    deliver, withhold = decisions()
    rec = build_audit(
        deliver, record_digest="ab" * 32, source=SRC, ts=NOW, worker="worker-1", kind="decision"
    )
    assert rec == {
        "v": 1,
        "ts": "2026-03-01T04:00:00.000Z",
        "kind": "decision",
        "dataset": "household_change",
        "provider": "psb",
        "consumer": "health",
        "entry_id": "E1",
        "list_version": 3,
        "share_type": "unconditional",
        "decision": "deliver",
        "reason": None,
        "fields_delivered": ["citizen_id", "name", "region"],
        "fields_masked": [["name", "name"]],
        "record_key": "440106199001011234",
        "record_digest": "ab" * 32,
        "source": {"topic": "canonical.household_change", "partition": 2, "offset": 41},
        "egress_topic": "egress.health.household_change",
        "worker": "worker-1",
    }
    w = build_audit(
        withhold, record_digest="cd" * 32, source=SRC, ts=NOW, worker="w", kind="replay"
    )
    assert (w["decision"], w["reason"], w["egress_topic"], w["kind"]) == (
        "withhold",
        "expired",
        None,
        "replay",
    )
    assert w["record_key"] == "440106199001011234"
    assert w["fields_delivered"] == [] and w["fields_masked"] == []
    with pytest.raises(ValueError):
        build_audit(withhold, record_digest="", source=SRC, ts=NOW, worker="w", kind="other")
    with pytest.raises(ValueError):
        build_audit(withhold, record_digest="", source=SRC, ts=datetime(2026, 1, 1), worker="w")


def test_no_personal_data_in_the_audit() -> None:
    rec = make_record()
    deliver = decisions()[0]
    value = AuditChain().seal(
        build_audit(deliver, record_digest="00" * 32, source=SRC, ts=NOW, worker="w")
    )
    text = value.decode()
    # payload values never appear; the record key does, by design (audit names the record)
    for v in ("张三丰", "张**", rec["phone"], rec["birth_date"].isoformat()):
        assert v not in text
    assert '"record_key":"440106199001011234"' in text


def test_seal_encoding_and_hash() -> None:
    chain = AuditChain()
    rec = build_audit(decisions()[0], record_digest="ab" * 32, source=SRC, ts=NOW, worker="w")
    value = chain.seal(rec)
    parsed = json.loads(value)
    assert parsed["seq"] == 0 and parsed["prev_hash"] == GENESIS
    body = {k: v for k, v in parsed.items() if k != "hash"}
    canon = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    expected = hashlib.sha256((GENESIS + "\n" + canon).encode()).hexdigest()
    assert parsed["hash"] == expected == chain.head == rec["hash"]
    assert value == encode(parsed)
    assert list(parsed) == sorted(parsed)
    assert "张**" not in value.decode() and "ab" * 32 in value.decode()
    second = chain.seal(dict(body))
    assert json.loads(second)["prev_hash"] == expected and json.loads(second)["seq"] == 1


def test_record_digest_and_parse() -> None:
    assert record_digest(b"abc") == hashlib.sha256(b"abc").hexdigest()
    items, _ = make_chain(1)
    assert parse_audit(items[0][1]) is not None
    for bad in (
        b"",
        b"{",
        b"[]",
        b'{"v":1}',
        "\xff".encode("latin-1"),
        b'{"v":1,"seq":"0","prev_hash":"x","hash":"y"}',
    ):
        assert parse_audit(bad) is None


def test_untouched_chain_verifies() -> None:
    items, head = make_chain(7)
    assert verify_chain(items) == []
    assert verify_chain(items, expect_tail=head) == []
    assert verify_chain([]) == []
    assert verify_chain([], expect_tail=GENESIS) == []


def test_resume_continues_the_chain_and_reemission_is_fine() -> None:
    items, head = make_chain(3)
    chain = AuditChain.resume(items[-1][1])
    assert chain.head == head and chain.next_seq == 3
    # after a crash the worker re-decides the last record: same content, sealed again
    again = parse_audit(items[-1][1])
    assert again is not None
    for k in ("seq", "prev_hash", "hash"):
        del again[k]
    items.append((200, chain.seal(again)))
    assert verify_chain(items) == []
    assert AuditChain.resume(None).head == GENESIS
    with pytest.raises(ValueError):
        AuditChain.resume(b"not json")


def test_verify_from_a_checkpoint() -> None:
    items, _ = make_chain(6)
    assert verify_chain(items[3:]) != []  # does not start at the genesis
    assert verify_chain(items[3:], expect_head=None, expect_seq=None) == []
    head_before = json.loads(items[2][1])["hash"]
    assert verify_chain(items[3:], expect_head=head_before, expect_seq=3) == []


def test_messages_name_the_likely_cause() -> None:
    items, head = make_chain(6)
    edited = json.loads(items[2][1])
    edited["decision"] = "withhold"
    whats = [b.what for b in verify_chain([*items[:2], (104, encode(edited)), *items[3:]])]
    assert whats == ["hash mismatch: the record was edited"]

    dropped = verify_chain(items[:2] + items[3:])
    assert [b.offset for b in dropped] == [106, 106]
    assert "deleted" in dropped[0].what and dropped[1].what == "seq gap: expected 2, found 3"

    swapped = verify_chain([items[0], items[2], items[1], *items[3:]])
    assert any("reordered" in b.what for b in swapped)

    assert "deleted at the start" in verify_chain(items[1:])[0].what
    assert "deleted at end" in verify_chain(items[:-1], expect_tail=head)[0].what

    garbled = verify_chain([items[0], (102, b"{oops"), *items[2:]])
    assert [b.offset for b in garbled] == [102]  # the next link is not judged against garbage

    spaced = verify_chain([(100, items[0][1].replace(b",", b", ", 1)), *items[1:]])
    assert [b.what for b in spaced] == ["not canonically encoded: the bytes were edited"]


# --- properties ----------------------------------------------------------------------------

PROPS = settings(max_examples=200, deadline=None)


@PROPS
@given(n=st.integers(1, 10))
def test_property_untouched_passes(n: int) -> None:
    items, head = make_chain(n)
    assert verify_chain(items, expect_tail=head) == []


def _rehash_last_if(items: list[tuple[int, bytes]], i: int, rec: dict[str, Any]) -> bytes:
    """An editor who recomputes the edited record's own hash (the following links still break)."""
    body = {k: v for k, v in rec.items() if k != "hash"}
    canon = encode(body).decode()
    rec["hash"] = hashlib.sha256((rec["prev_hash"] + "\n" + canon).encode()).hexdigest()
    return encode(rec)


@PROPS
@given(data=st.data(), n=st.integers(1, 10))
def test_property_any_single_edit_is_detected(data: st.DataObject, n: int) -> None:
    items, head = make_chain(n)
    i = data.draw(st.integers(0, n - 1))
    offset, value = items[i]
    how = data.draw(st.sampled_from(["byte", "field", "field_rehashed"]))
    if how == "byte":
        pos = data.draw(st.integers(0, len(value) - 1))
        new = value[pos] ^ data.draw(st.integers(1, 255))  # always a different byte
        edited = value[:pos] + bytes([new]) + value[pos + 1 :]
    else:
        rec = json.loads(value)
        key = data.draw(
            st.sampled_from(["decision", "consumer", "record_digest", "ts", "list_version"])
        )
        rec[key] = {
            "decision": "withhold",
            "consumer": "market",
            "record_digest": "0" * 64,
            "ts": "2020-01-01T00:00:00.000Z",
            "list_version": 99,
        }[key]
        if rec[key] == json.loads(value)[key]:
            rec[key] = "changed"
        edited = _rehash_last_if(items, i, rec) if how == "field_rehashed" else encode(rec)
    tampered = [*items[:i], (offset, edited), *items[i + 1 :]]
    assert verify_chain(tampered, expect_tail=head) != []


@PROPS
@given(data=st.data(), n=st.integers(1, 10))
def test_property_any_single_drop_is_detected(data: st.DataObject, n: int) -> None:
    items, head = make_chain(n)
    i = data.draw(st.integers(0, n - 1))
    tampered = items[:i] + items[i + 1 :]
    assert verify_chain(tampered, expect_tail=head) != []
    if i < n - 1:  # inside the chain even without a trusted head
        assert verify_chain(tampered) != []


@PROPS
@given(data=st.data(), n=st.integers(2, 10))
def test_property_any_single_swap_is_detected(data: st.DataObject, n: int) -> None:
    items, _ = make_chain(n)
    i = data.draw(st.integers(0, n - 2))
    j = data.draw(st.integers(i + 1, n - 1))
    tampered = list(items)
    # swap the values, keep the offsets increasing (as the log would show them)
    (oi, vi), (oj, vj) = tampered[i], tampered[j]
    tampered[i], tampered[j] = (oi, vj), (oj, vi)
    assert verify_chain(tampered) != []


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(st.text(), _json_values, max_size=8))
def test_encode_is_byte_identical_to_the_json_definition(record: dict[str, object]) -> None:
    # the documented definition of the format; orjson is only a faster way to the same bytes
    expected = json.dumps(record, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode("utf-8")
    assert encode(record) == expected


def test_encode_falls_back_where_orjson_refuses() -> None:
    record = {"big": 2**70, "v": 1}
    assert encode(record) == b'{"big":1180591620717411303424,"v":1}'


def test_audit_builder_prepared_records_equal_fresh_ones() -> None:
    # build_audit is one record through a fresh builder: the reused builder's prepared
    # (copied) parts must give the same records, round after round
    builder = AuditBuilder(worker="w1")
    ds = decisions() * 3  # the second round comes from the prepared part
    for i, d in enumerate(ds):
        ts = NOW + timedelta(milliseconds=i)
        kw: dict[str, Any] = {"record_digest": f"{i:064x}", "origin": ("raw.psb.x", 1, i),
                              "part": (i % 2, 2)}
        expected = build_audit(d, source=SRC, ts=ts, worker="w1", **kw)
        got = builder.build(d, source=SRC, ts=audit_ts(ts), **kw)
        assert got == expected
        assert encode(got) == encode(expected)
    # records do not share their per-record parts
    a = builder.build(ds[0], record_digest="a", source=SRC, ts="t")
    b = builder.build(ds[0], record_digest="b", source=("x", 1, 2), ts="u")
    assert a["record_digest"] == "a" and a["source"]["topic"] == SRC[0]
    assert b["record_digest"] == "b" and b["source"]["topic"] == "x"
