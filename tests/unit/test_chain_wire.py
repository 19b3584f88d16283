"""The Confluent wire format: split, decode and encode never raise on bad input."""

from __future__ import annotations

import struct

from fastavro import parse_schema
from hypothesis import given
from hypothesis import strategies as st

from shulian.chain.wire import decode_body, encode_wire, split_wire
from shulian.logic.result import Reason, Rejected

SCHEMA = parse_schema({
    "type": "record", "name": "R", "fields": [
        {"name": "a", "type": "string"}, {"name": "n", "type": "long"}]})


def test_roundtrip() -> None:
    wire = encode_wire(42, SCHEMA, {"a": "x", "n": 7})
    assert wire[:5] == struct.pack(">bI", 0, 42)
    split = split_wire(wire)
    assert not isinstance(split, Rejected)
    sid, body = split
    assert sid == 42
    assert decode_body(SCHEMA, body) == {"a": "x", "n": 7}


def test_short_and_bad_magic_are_rejected() -> None:
    for value in (b"", b"\x00", b"\x00\x00\x00\x01"):
        r = split_wire(value)
        assert isinstance(r, Rejected)
        assert r.reason is Reason.BAD_WIRE_FORMAT and r.check == "length"
    r = split_wire(b"\x01\x00\x00\x00\x01abc")
    assert isinstance(r, Rejected) and r.check == "magic_byte"


def test_truncated_and_trailing_bodies_are_decode_errors() -> None:
    body = encode_wire(1, SCHEMA, {"a": "hello", "n": 123456})[5:]
    r = decode_body(SCHEMA, body[:-2])
    assert isinstance(r, Rejected) and r.reason is Reason.DECODE_ERROR
    r = decode_body(SCHEMA, body + b"\x00\x00")
    assert isinstance(r, Rejected) and "trailing" in r.detail


@given(st.binary(max_size=64))
def test_decoder_never_raises(data: bytes) -> None:
    split = split_wire(data)
    if isinstance(split, Rejected):
        return
    result = decode_body(SCHEMA, split[1])
    assert isinstance(result, (dict, Rejected))
