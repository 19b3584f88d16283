"""Fuzz (hypothesis) over the per-record boundary: the wire-format decoder, the ingest stage and
the mapping engine. Whatever comes in, nothing raises: every raw message becomes exactly one
output (a canonical message or a dead letter carrying the original bytes and a closed-enum
reason), and the harmoniser answers ``Accepted`` or ``Rejected``.

The schema lookup is built from the example catalogue's own schemas (schemas/raw/*,
schemas/canonical/*) with fixed ids, so the stage decodes with the schemas agencies really use.
"""

from __future__ import annotations

import io
import json
import random
import struct
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from shulian.catalog.load import load_catalog
from shulian.catalog.models import Catalog
from shulian.chain.ingest import CanonicalSchema, IngestStage
from shulian.chain.messages import InMessage, header
from shulian.chain.topology import Topology, subject_of
from shulian.chain.wire import decode_body, split_wire
from shulian.logic.generate import generators_for
from shulian.logic.harmonise import Harmonised, Harmoniser
from shulian.logic.result import Accepted, Reason, Rejected
from shulian.settings import REPO_ROOT
from tests.fixtures.clock import EXAMPLE_CLOCK

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
REASONS = {r.value for r in Reason}
CANONICAL_ID_BASE = 100  # canonical schema ids; raw ids are 1..n; 999 is "another subject"
OTHER_ID = 999


class FileSchemas:
    """A :class:`~shulian.chain.messages.SchemaLookup` over the repository's schema files."""

    def __init__(self, by_id: dict[int, tuple[Any, frozenset[str]]]) -> None:
        self._by_id = by_id

    def parsed(self, schema_id: int) -> Any | None:
        found = self._by_id.get(schema_id)
        return None if found is None else found[0]

    def subjects_of(self, schema_id: int) -> frozenset[str]:
        found = self._by_id.get(schema_id)
        return frozenset() if found is None else found[1]


class World:
    """The example catalogue, its raw schemas by id, an ingest stage and a harmoniser."""

    def __init__(self) -> None:
        self.catalog: Catalog = load_catalog(REPO_ROOT / "catalog",
                                             schemas_dir=REPO_ROOT / "schemas")
        self.topology = Topology(partitions=3)
        self.pairs = sorted(self.catalog.mappings)
        self.raw_json: dict[tuple[str, str], dict[str, Any]] = {}
        self.raw_ids: dict[tuple[str, str], int] = {}
        by_id: dict[int, tuple[Any, frozenset[str]]] = {}
        for i, pair in enumerate(self.pairs, start=1):
            path = REPO_ROOT / "schemas" / self.catalog.mappings[pair].raw_schema
            schema = json.loads(path.read_text(encoding="utf-8"))
            self.raw_json[pair] = schema
            self.raw_ids[pair] = i
            by_id[i] = (parse_schema(schema), frozenset({subject_of(self.topology.raw(*pair))}))
        canonical: dict[str, CanonicalSchema] = {}
        for j, ds in enumerate(sorted(self.catalog.datasets)):
            schema = json.loads((REPO_ROOT / "schemas" / "canonical" / f"{ds}.avsc")
                                .read_text(encoding="utf-8"))
            sid = CANONICAL_ID_BASE + j
            canonical[ds] = CanonicalSchema(sid, parse_schema(schema))
            by_id[sid] = (canonical[ds].parsed, frozenset({f"canonical.{ds}-value"}))
        # a record schema registered under some other subject only
        by_id[OTHER_ID] = (parse_schema({"type": "record", "name": "Other", "fields": [
            {"name": "x", "type": "string"}]}), frozenset({"something.else-value"}))
        self.canonical = canonical
        self.schemas = FileSchemas(by_id)
        self.harmoniser = Harmoniser(self.catalog, clock=EXAMPLE_CLOCK)
        self.generators = generators_for(self.catalog, self.raw_json)

    def stage(self) -> IngestStage:
        return IngestStage(topology=self.topology, harmoniser=self.harmoniser,
                           schemas=self.schemas, canonical=self.canonical)

    def parsed_raw(self, pair: tuple[str, str]) -> Any:
        return self.schemas.parsed(self.raw_ids[pair])


@cache
def world() -> World:
    return World()


def encode(parsed: Any, record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    schemaless_writer(buf, parsed, record)
    return buf.getvalue()


def wire(schema_id: int, body: bytes, magic: int = 0) -> bytes:
    return struct.pack(">bI", magic, schema_id) + body


def run_one(topic: str, value: bytes | None, key: bytes | None = None,
            headers: list[tuple[str, bytes | None]] | None = None) -> tuple[Any, list[Rejected]]:
    """One message through a fresh ingest stage; checks the one-output invariant."""
    w = world()
    msg = InMessage(topic=topic, partition=1, offset=42, key=key, value=value,
                    timestamp_ms=1_700_000_000_000, headers=headers or [])
    out, rejected = w.stage().process([msg])
    assert len(out) == 1, out
    (o,) = out
    parsed = w.topology.parse_raw(topic)
    assert parsed is not None
    if rejected:
        assert len(rejected) == 1 and rejected[0].reason.value in REASONS
        assert o.topic == w.topology.deadletter(*parsed)
        assert o.value == (value or b"") and o.key == key  # original bytes untouched
        assert o.partition == 1
        reason = header(o.headers, "shulian.reason")
        assert reason is not None and reason.decode() == rejected[0].reason.value
        # the detail header never carries the offending value itself
        detail = header(o.headers, "shulian.detail") or b""
        assert value is None or len(value) < 8 or value not in detail
    else:
        assert o.topic == w.topology.canonical(parsed[1])
        assert o.partition == 1  # canonical partition = raw partition (one audit writer)
        sid = struct.unpack(">bI", o.value[:5])[1]
        target = w.canonical[parsed[1]]
        assert sid == target.schema_id
        assert isinstance(schemaless_reader(io.BytesIO(o.value[5:]), target.parsed, None), dict)
    return o, rejected


# --- the wire-format decoder ---------------------------------------------------------------


@FUZZ
@given(data=st.binary(max_size=300), idx=st.integers(0, 3))
@example(data=b"\x00" * 5 + b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", idx=0)  # huge varint
def test_wire_decoder_on_arbitrary_bytes(data: bytes, idx: int) -> None:
    w = world()
    pair = w.pairs[idx % len(w.pairs)]
    split = split_wire(data)
    if isinstance(split, Rejected):
        assert split.reason is Reason.BAD_WIRE_FORMAT
        return
    _, body = split
    result = decode_body(w.parsed_raw(pair), body)
    assert isinstance(result, dict | Rejected)
    if isinstance(result, Rejected):
        assert result.reason is Reason.DECODE_ERROR


# --- the ingest stage: garbage values ------------------------------------------------------


@FUZZ
@given(idx=st.integers(0, 3), sid=st.sampled_from([1, 2, 3, 4, 100, 101, OTHER_ID, 0, 2**31 - 1]),
       magic=st.sampled_from([0, 0, 0, 1, -1]), body=st.binary(max_size=400),
       key=st.none() | st.binary(max_size=20),
       headers=st.lists(st.tuples(st.text(max_size=10), st.none() | st.binary(max_size=20)),
                        max_size=3))
@example(idx=0, sid=1, magic=0, body=b"", key=b"\xff\xfe", headers=[("\x00", None)])
def test_ingest_never_raises_on_garbage(idx: int, sid: int, magic: int, body: bytes,
                                        key: bytes | None,
                                        headers: list[tuple[str, bytes | None]]) -> None:
    w = world()
    topic = w.topology.raw(*w.pairs[idx])
    run_one(topic, wire(sid, body, magic), key, headers)


@FUZZ
@given(idx=st.integers(0, 3), value=st.none() | st.binary(max_size=8))
@example(idx=0, value=b"\x00\x00\x00\x00\x00")  # schema id 0, empty body
def test_ingest_short_or_missing_values(idx: int, value: bytes | None) -> None:
    w = world()
    _, rejected = run_one(w.topology.raw(*w.pairs[idx]), value)
    assert rejected
    if value is None or len(value) < 5:  # no room for the header
        assert rejected[0].reason in (Reason.EMPTY_VALUE, Reason.BAD_WIRE_FORMAT)
    else:  # a header and at most 3 body bytes: no raw record is that short
        assert rejected[0].reason in (Reason.BAD_WIRE_FORMAT, Reason.UNKNOWN_SCHEMA_ID,
                                      Reason.SCHEMA_NOT_ALLOWED, Reason.DECODE_ERROR)


# --- the ingest stage: well-formed Avro with arbitrary field values --------------------------


def _value_for(avro_type: Any) -> st.SearchStrategy[Any]:
    if isinstance(avro_type, list):
        return st.one_of(*[_value_for(t) for t in avro_type])
    if isinstance(avro_type, dict):
        logical = avro_type.get("logicalType")
        if logical == "date":
            return st.dates()
        if logical in ("timestamp-millis", "timestamp-micros"):
            return st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1),
                                timezones=st.just(UTC))
        return _value_for(avro_type["type"])
    match avro_type:
        case "null":
            return st.none()
        case "string":
            return st.one_of(st.text(max_size=40), st.text(alphabet="0123456789Xx -",
                                                           max_size=20))
        case "int":
            return st.integers(-(2**31), 2**31 - 1)
        case "long":
            return st.integers(-(2**63), 2**63 - 1)
        case "boolean":
            return st.booleans()
        case "float" | "double":
            return st.floats(allow_nan=True, allow_infinity=True)
    raise AssertionError(f"raw schemas use no {avro_type!r} (extend the fuzz strategy)")


@st.composite
def raw_records(draw: st.DrawFn) -> tuple[tuple[str, str], dict[str, Any]]:
    """A record of one agency's raw schema: a valid generated one with some fields replaced by
    arbitrary values of the schema's type."""
    w = world()
    pair = draw(st.sampled_from(w.pairs))
    seed = draw(st.integers(0, 2**32 - 1))
    rec = dict(w.generators[pair].generate(random.Random(seed)).raw)
    for f in w.raw_json[pair]["fields"]:
        if draw(st.integers(0, 3)) == 0:
            rec[f["name"]] = draw(_value_for(f["type"]))
    return pair, rec


@FUZZ
@given(item=raw_records())
def test_ingest_never_raises_on_arbitrary_avro_records(
        item: tuple[tuple[str, str], dict[str, Any]]) -> None:
    w = world()
    pair, rec = item
    value = wire(w.raw_ids[pair], encode(w.parsed_raw(pair), rec))
    _, rejected = run_one(w.topology.raw(*pair), value, b"k")
    if rejected:
        assert rejected[0].reason not in (Reason.ENCODE_ERROR, Reason.BAD_WIRE_FORMAT,
                                          Reason.DECODE_ERROR), rejected[0]


@FUZZ
@given(item=raw_records(), cut=st.integers(1, 50), junk=st.binary(min_size=1, max_size=8))
def test_truncated_or_padded_valid_bodies_are_dead_lettered(
        item: tuple[tuple[str, str], dict[str, Any]], cut: int, junk: bytes) -> None:
    w = world()
    pair, rec = item
    body = encode(w.parsed_raw(pair), rec)
    topic = w.topology.raw(*pair)
    for bad in (body[:max(0, len(body) - cut)], body + junk):
        _, rejected = run_one(topic, wire(w.raw_ids[pair], bad))
        assert rejected and rejected[0].reason is Reason.DECODE_ERROR


# --- the mapping engine with arbitrary Python values ---------------------------------------

ANY_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
    | st.binary(max_size=10) | st.dates() | st.datetimes()
    | st.datetimes(timezones=st.just(UTC)) | st.decimals(allow_nan=True),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=6,
)


@FUZZ
@given(idx=st.integers(0, 3), seed=st.integers(0, 2**32 - 1),
       replace=st.dictionaries(st.integers(0, 30), ANY_VALUE, max_size=6),
       extra=st.dictionaries(st.text(max_size=8), ANY_VALUE, max_size=2))
@example(idx=0, seed=1, replace={0: float("nan"), 5: "\x00" * 3}, extra={})
@example(idx=2, seed=2, replace={3: 10**40, 4: date.max, 6: datetime.min}, extra={})
def test_harmoniser_answers_every_value(idx: int, seed: int, replace: dict[int, Any],
                                        extra: dict[str, Any]) -> None:
    w = world()
    pair = w.pairs[idx]
    rec = dict(w.generators[pair].generate(random.Random(seed)).raw)
    names = [f["name"] for f in w.raw_json[pair]["fields"]]
    for i, v in replace.items():
        rec[names[i % len(names)]] = v
    rec.update(extra)
    result = w.harmoniser.harmonise(*pair, rec)
    assert isinstance(result, Accepted | Rejected)
    if isinstance(result, Rejected):
        assert result.reason.value in REASONS
        return
    harmonised = result.value
    assert isinstance(harmonised, Harmonised) and isinstance(harmonised.key, str)
    # whatever the harmoniser accepts, the canonical schema encodes
    encode(w.canonical[pair[1]].parsed, harmonised.record)


@FUZZ
@given(idx=st.integers(0, 3), raw=ANY_VALUE)
def test_harmoniser_on_records_that_are_not_maps(idx: int, raw: Any) -> None:
    w = world()
    result = w.harmoniser.harmonise(*w.pairs[idx], raw)
    assert isinstance(result, Accepted | Rejected)
    if not isinstance(raw, dict):
        assert isinstance(result, Rejected) and result.reason is Reason.MAPPING_ERROR


def test_world_is_the_example_catalogue() -> None:
    """The fuzz runs over every mapping of the shipped catalogue and a valid record passes."""
    w = world()
    assert len(w.pairs) == 4
    for pair in w.pairs:
        g = w.generators[pair].generate(random.Random(1))
        value = wire(w.raw_ids[pair], encode(w.parsed_raw(pair), g.raw))
        _, rejected = run_one(w.topology.raw(*pair), value, b"k")
        assert not rejected, rejected
    # another subject's schema id is refused as such
    _, rejected = run_one(w.topology.raw(*w.pairs[0]),
                          wire(OTHER_ID, encode(w.schemas.parsed(OTHER_ID), {"x": "y"})))
    assert rejected[0].reason is Reason.SCHEMA_NOT_ALLOWED
