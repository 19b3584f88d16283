"""The benchmark's records, generated once per invocation and reused by every phase and run.

Records are the reference agency's dialect (bench/catalog: amr -> business_licence), encoded in
the Confluent wire format with the raw subject's registered schema id, 1% failing one element
check on purpose (they end as dead letters in the chain; the hops pass them through).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastavro import parse_schema

from shulian.catalog.load import load_catalog
from shulian.catalog.models import AgencyId, Catalog, DatasetId
from shulian.chain.wire import encode_wire
from shulian.logic.generate import DialectGenerator

AGENCY = AgencyId("amr")
DATASET = DatasetId("business_licence")
KEY_FIELD = "TYSHXYDM"  # the raw credit code: the canonical record key of valid records


@dataclass(frozen=True)
class Batch:
    """(key, wire value) pairs and how many of them are valid."""

    records: list[tuple[bytes, bytes]]
    valid: int

    @property
    def invalid(self) -> int:
        return len(self.records) - self.valid


@dataclass(frozen=True)
class Workload:
    throughput: Batch
    latency: Batch
    warmup: Batch
    schema_id: int
    raw_schema: dict[str, Any]


def reference_catalog(catalog_dir: Path, schemas_dir: Path) -> Catalog:
    return load_catalog(catalog_dir, schemas_dir=schemas_dir)


def raw_schema(catalog: Catalog, schemas_dir: Path) -> dict[str, Any]:
    mapping = catalog.mappings[(AGENCY, DATASET)]
    with (schemas_dir / mapping.raw_schema).open(encoding="utf-8") as fh:
        schema: dict[str, Any] = json.load(fh)
    return schema


def generate_batch(gen: DialectGenerator, parsed: Any, schema_id: int, n: int, *,
                   rng: random.Random, invalid_rate: float) -> Batch:
    records: list[tuple[bytes, bytes]] = []
    valid = 0
    for _ in range(n):
        g = gen.generate(rng, invalid_rate=invalid_rate)
        valid += g.valid
        records.append((str(g.raw[KEY_FIELD]).encode(), encode_wire(schema_id, parsed, g.raw)))
    return Batch(records=records, valid=valid)


def generate_workload(catalog: Catalog, schemas_dir: Path, *, schema_id: int, records: int,
                      latency_records: int, warmup_records: int = 500,
                      invalid_rate: float = 0.01, seed: int = 20260105) -> Workload:
    """Throughput records (with ``invalid_rate`` invalid), valid latency-phase records and valid
    warm-up records (the chain's start-up: group join, schema fetches, audit heads)."""
    schema = raw_schema(catalog, schemas_dir)
    parsed = parse_schema(schema)
    gen = DialectGenerator(catalog=catalog, mapping=catalog.mappings[(AGENCY, DATASET)],
                           raw_schema=schema)
    rng = random.Random(seed)
    return Workload(
        throughput=generate_batch(gen, parsed, schema_id, records, rng=rng,
                                  invalid_rate=invalid_rate),
        latency=generate_batch(gen, parsed, schema_id, latency_records, rng=rng,
                               invalid_rate=0.0),
        warmup=generate_batch(gen, parsed, schema_id, warmup_records, rng=rng,
                              invalid_rate=0.0),
        schema_id=schema_id,
        raw_schema=schema,
    )
