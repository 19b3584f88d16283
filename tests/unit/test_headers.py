"""Header values are valid UTF-8 whatever the text holds, and say losslessly what it was."""

from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st

from shulian.chain import headers as H
from shulian.connectors.sinks.failures import SinkFailure
from shulian.connectors.sinks.failures import deadletter_headers as sink_headers
from shulian.connectors.sinks.records import SinkRecord
from shulian.logic.result import Reason, Rejected

# every code point, lone surrogates included (what surrogateescape and broken input produce)
any_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF))
any_name = st.binary(min_size=1, max_size=40).filter(lambda b: b"/" not in b and b"\0" not in b)


@given(any_text)
def test_any_text_gives_valid_utf8_and_comes_back(text: str) -> None:
    value = H.text_bytes(text)
    value.decode("utf-8")  # never raises
    assert H.text_of(value) == text


@given(any_name)
def test_any_file_name_bytes_come_back(raw: bytes) -> None:
    name = os.fsdecode(raw)  # what os.listdir/Path hand over on Linux
    value = H.text_bytes(name)
    value.decode("utf-8")
    assert os.fsencode(H.text_of(value)) == raw


def test_gbk_file_name_is_escaped_readably() -> None:
    name = os.fsdecode("报告.csv".encode("gbk"))
    assert H.text_bytes(name) == b"\\xb1\\xa8\\xb8\\xe6.csv"
    assert H.text_bytes("数链\\x") == "数链\\\\x".encode()  # a backslash is escaped itself
    assert H.text_bytes("\ud800") == b"\\ud800"  # a lone surrogate that is not a byte
    assert H.text_bytes(42) == b"42"
    assert H.text_of(b"\\xb1\\\\xb1") == "\udcb1\\xb1"


@given(reason=any_text, detail=any_text, field=st.none() | any_text, check=st.none() | any_text,
       file=any_name, connector=any_text, orig_name=any_text)
def test_deadletter_headers_always_encode(
    reason: str, detail: str, field: str | None, check: str | None, file: bytes,
    connector: str, orig_name: str,
) -> None:
    headers = H.deadletter_headers(
        reason=reason, detail=detail, field=field, check=check,
        extra=[(H.CONNECTOR, connector)], source={"file": os.fsdecode(file), "line": 3},
        original=[(orig_name, b"\xff\x00"), ("k", None)])
    for name, value in headers:
        name.encode("utf-8")  # what the Kafka clients do with a name: never raises
        value.decode("utf-8") if not name.startswith(H.ORIG_PREFIX) else None
    got = dict(headers)
    assert H.text_of(got[H.REASON]) == reason
    assert H.text_of(got[H.DETAIL]) == detail[:H.DETAIL_MAX_CHARS]
    assert os.fsencode(H.text_of(got["shulian.source.file"])) == file
    assert got["shulian.source.line"] == b"3"
    assert got[H.header_name(H.ORIG_PREFIX + orig_name)] == b"\xff\x00"  # untouched
    assert got["orig.k"] == b""
    assert (H.FIELD in got) == bool(field) and (H.CHECK in got) == bool(check)


def test_rejected_and_sink_dead_letters_use_the_same_names() -> None:
    rej = Rejected(Reason.ELEMENT_CHECK_FAILED, "bad \udcb1", field="SFZH", check="check_digit")
    got = dict(H.rejected_headers(rej, source={"topic": "raw.a.d", "partition": 0,
                                                "offset": 7}))
    assert got == {H.REASON: b"element_check_failed", H.DETAIL: b"bad \\xb1",
                   H.FIELD: b"SFZH", H.CHECK: b"check_digit", H.SOURCE_TOPIC: b"raw.a.d",
                   H.SOURCE_PARTITION: b"0", H.SOURCE_OFFSET: b"7"}
    rec = SinkRecord(topic="egress.c.d", partition=1, offset=9, key=None, raw_value=b"v",
                     value={}, timestamp_ms=5, headers=[(H.ENTRY, b"e1")])
    sink = dict(sink_headers(rec, connector="c\udce6", reason=SinkFailure.REJECTED,
                             detail="x" * 5000, first=3, last=9))
    assert sink[H.SINK_CONNECTOR] == b"c\\xe6" and sink[H.SINK_BATCH] == b"3-9"
    assert len(sink[H.DETAIL]) == H.DETAIL_MAX_CHARS
    assert sink[H.SOURCE_TIMESTAMP] == b"5" and sink["orig." + H.ENTRY] == b"e1"
