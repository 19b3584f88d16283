"""The worker's enforce stage decides on the record its ingest stage encoded (not decoded again:
``OutMessage.decoded``), while replay decides on the canonical bytes read back. The two are the
same only if decoding the canonical bytes gives the harmonised record back exactly: equal
values, the same Python types (a date is not a datetime, a UTC datetime with milliseconds), the
same fields in the same order. Held here for every mapping of the shipped and the benchmark
catalogues, over generated records."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from fastavro import parse_schema

from shulian.bench.data import reference_catalog
from shulian.bench.harness import CATALOG_DIR, SCHEMAS_DIR
from shulian.catalog.load import load_catalog
from shulian.catalog.models import Catalog
from shulian.chain.wire import decode_body, encode_wire, split_wire
from shulian.io.publish import load_raw_schemas
from shulian.logic.generate import generators_for
from shulian.logic.harmonise import Harmoniser
from shulian.logic.result import Accepted
from shulian.settings import load_settings
from tests.fixtures.clock import EXAMPLE_CLOCK


def _shipped() -> tuple[Catalog, Path]:
    s = load_settings()
    return load_catalog(s.catalog_dir, schemas_dir=s.schemas_dir), s.schemas_dir


def _bench() -> tuple[Catalog, Path]:
    return reference_catalog(CATALOG_DIR, SCHEMAS_DIR), SCHEMAS_DIR


@pytest.mark.parametrize("which", [_shipped, _bench], ids=["shipped", "bench"])
def test_canonical_bytes_decode_to_the_harmonised_record(which: object) -> None:
    catalog, schemas_dir = which()  # type: ignore[operator]
    harmoniser = Harmoniser(catalog, clock=EXAMPLE_CLOCK)
    rng = random.Random(7)
    checked = 0
    for (agency, dataset), gen in generators_for(
            catalog, load_raw_schemas(catalog, schemas_dir)).items():
        with (schemas_dir / "canonical" / f"{dataset}.avsc").open(encoding="utf-8") as fh:
            parsed = parse_schema(json.load(fh))
        for _ in range(300):
            result = harmoniser.harmonise(agency, dataset, gen.generate(rng).raw)
            if not isinstance(result, Accepted):
                continue
            record = result.value.record
            wire = split_wire(encode_wire(1, parsed, record))
            assert isinstance(wire, tuple)
            back = decode_body(parsed, wire[1])
            assert back == record
            assert list(back) == list(record)
            assert {k: type(v) for k, v in back.items()} == {k: type(v) for k, v in record.items()}
            checked += 1
    assert checked > 100
