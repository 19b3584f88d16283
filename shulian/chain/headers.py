"""The chain's Kafka header names, and the one way header values are made from text.

Every ``shulian.*`` header name is defined here; every dead letter (the chain's, a source
connector's, a sink's) gets its headers from :func:`deadletter_headers`.

Header values are always valid UTF-8, whatever the text holds. Text from outside (a dropped
file's name read from a Linux directory in a legacy encoding such as GBK, a field name, a
reason's detail) can hold lone surrogates: Python hands undecodable file-name bytes over as
U+DC80..U+DCFF (``surrogateescape``), and ``str.encode()`` raises on them. :func:`text_bytes`
encodes losslessly instead, with backslash escapes:

* ``\\`` for a backslash;
* ``\\xNN`` for the byte ``NN`` that ``surrogateescape`` carried (U+DC80..U+DCFF): the GBK name
  ``报告`` read as bytes ``b1 a8 b8 e6`` becomes ``\\xb1\\xa8\\xb8\\xe6``;
* ``\\uDNNN`` for any other lone surrogate;
* every other character as UTF-8, unchanged.

:func:`text_of` reverses it exactly (``text_of(text_bytes(s)) == s`` for every ``str``; with
:func:`os.fsencode` a file name's original bytes come back). Names (keys) are escaped the same
way and kept as ``str``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from shulian.logic.result import Rejected

__all__ = [
    "CHECK",
    "CONNECTOR",
    "DETAIL",
    "DETAIL_MAX_CHARS",
    "ENTRY",
    "FIELD",
    "LIST_VERSION",
    "MAPPING_VERSION",
    "ORIG_PREFIX",
    "PROVIDER",
    "RAW_SCHEMA_ID",
    "REASON",
    "SINK_BATCH",
    "SINK_CONNECTOR",
    "SOURCE_OFFSET",
    "SOURCE_PARTITION",
    "SOURCE_PREFIX",
    "SOURCE_TIMESTAMP",
    "SOURCE_TOPIC",
    "deadletter_headers",
    "header_name",
    "rejected_headers",
    "source_header",
    "text_bytes",
    "text_of",
]

# --- names
REASON = "shulian.reason"
"""Why a record was dead-lettered: a :class:`~shulian.logic.result.Reason` or a sink failure."""
DETAIL = "shulian.detail"
FIELD = "shulian.field"
CHECK = "shulian.check"
CONNECTOR = "shulian.connector"  # the source connector that dead-lettered a record
SINK_CONNECTOR = "shulian.sink.connector"
SINK_BATCH = "shulian.sink.batch"  # first-last offsets of a failed sink batch
SOURCE_PREFIX = "shulian.source."
SOURCE_TOPIC = SOURCE_PREFIX + "topic"
SOURCE_PARTITION = SOURCE_PREFIX + "partition"
SOURCE_OFFSET = SOURCE_PREFIX + "offset"
SOURCE_TIMESTAMP = SOURCE_PREFIX + "timestamp"
PROVIDER = "shulian.provider"
ENTRY = "shulian.entry"
LIST_VERSION = "shulian.list.version"
MAPPING_VERSION = "shulian.mapping.version"
RAW_SCHEMA_ID = "shulian.raw.schema_id"
ORDER = "shulian.order"  # a verification changelog record's source order (logic/supersede.py)
ORIG_PREFIX = "orig."
"""A dead letter carries the original record's headers untouched, their names prefixed."""

DETAIL_MAX_CHARS = 1000

_NEEDS_ESCAPE = re.compile(r"[\\\ud800-\udfff]")
_ESCAPED = re.compile(r"\\(?:\\|x([89a-f][0-9a-f])|u(d[89a-f][0-9a-f]{2}))")


def _escape(m: re.Match[str]) -> str:
    c = m.group()
    if c == "\\":
        return "\\\\"
    n = ord(c)
    if 0xDC80 <= n <= 0xDCFF:
        return f"\\x{n - 0xDC00:02x}"
    return f"\\u{n:04x}"


def _escaped_text(text: str) -> str:
    return _NEEDS_ESCAPE.sub(_escape, text) if _NEEDS_ESCAPE.search(text) else text


def text_bytes(value: str | int) -> bytes:
    """A header value: ``value`` as valid UTF-8, escaped as the module says (never raises)."""
    if isinstance(value, int):
        return str(value).encode()
    return _escaped_text(value).encode("utf-8")


def _unescape(m: re.Match[str]) -> str:
    byte, surrogate = m.group(1), m.group(2)
    if byte is not None:
        return chr(0xDC00 + int(byte, 16))
    if surrogate is not None:
        return chr(int(surrogate, 16))
    return "\\"


def text_of(value: bytes) -> str:
    """The text :func:`text_bytes` encoded (bytes that are not UTF-8 are decoded with
    ``surrogateescape``, so nothing raises)."""
    text = value.decode("utf-8", "surrogateescape")
    return _ESCAPED.sub(_unescape, text) if "\\" in text else text


def header_name(name: str) -> str:
    """A header name that encodes as UTF-8 (escaped as values are)."""
    return _escaped_text(name)


def source_header(key: str) -> str:
    """``shulian.source.<key>``: where in its source a record came from."""
    return header_name(SOURCE_PREFIX + key)


def deadletter_headers(
    *,
    reason: str,
    detail: str,
    field: str | None = None,
    check: str | None = None,
    extra: Iterable[tuple[str, str | int]] = (),
    source: Mapping[str, str | int] | None = None,
    original: Sequence[tuple[str, bytes | None]] = (),
) -> list[tuple[str, bytes]]:
    """The headers of every dead letter, in this order: ``shulian.reason``, ``.detail`` (at
    most :data:`DETAIL_MAX_CHARS` characters), ``.field`` and ``.check`` when known, ``extra``
    (the writer's own, e.g. ``shulian.connector``), ``shulian.source.<key>`` for each of
    ``source`` (topic/partition/offset/timestamp in the chain, file/line for a file drop) and
    the original headers under ``orig.<name>`` with their values untouched."""
    out: list[tuple[str, bytes]] = [
        (REASON, text_bytes(reason)),
        (DETAIL, text_bytes(detail[:DETAIL_MAX_CHARS])),
    ]
    if field:
        out.append((FIELD, text_bytes(field)))
    if check:
        out.append((CHECK, text_bytes(check)))
    out.extend((header_name(k), text_bytes(v)) for k, v in extra)
    if source:
        out.extend((source_header(k), text_bytes(v)) for k, v in source.items())
    out.extend((header_name(ORIG_PREFIX + k), b"" if v is None else v) for k, v in original)
    return out


def rejected_headers(
    rejected: Rejected,
    *,
    extra: Iterable[tuple[str, str | int]] = (),
    source: Mapping[str, str | int] | None = None,
    original: Sequence[tuple[str, bytes | None]] = (),
) -> list[tuple[str, bytes]]:
    """:func:`deadletter_headers` for a record rejected by a check."""
    return deadletter_headers(reason=str(rejected.reason), detail=rejected.detail,
                              field=rejected.field, check=rejected.check, extra=extra,
                              source=source, original=original)
