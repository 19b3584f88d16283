"""Publish records the way an agency system does: confluent-kafka's AvroSerializer, the
Confluent wire format, the registry's id for the agency's raw subject.

Used by ``shulian demo``, the benchmarks and the tests; also the reference for agencies.
"""

from __future__ import annotations

import json
import random
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext, Serializer

from shulian.catalog.models import Catalog
from shulian.chain.topology import Topology
from shulian.io.sender import Sender
from shulian.logic.generate import DialectGenerator, generators_for
from shulian.settings import Settings


def load_raw_schemas(catalog: Catalog, schemas_dir: Path) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for pair, mapping in catalog.mappings.items():
        with (schemas_dir / mapping.raw_schema).open(encoding="utf-8") as fh:
            out[pair] = json.load(fh)
    return out


@dataclass
class PublishTally:
    """What was published, by (agency, dataset): valid, invalid by element, bad wire."""

    valid: Counter[tuple[str, str]] = field(default_factory=Counter)
    invalid: Counter[tuple[str, str]] = field(default_factory=Counter)
    garbage: Counter[tuple[str, str]] = field(default_factory=Counter)
    garbage_kinds: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Wire garbage by (what it is, the dead-letter reason it must get)."""

    @property
    def total(self) -> int:
        return sum(self.valid.values()) + sum(self.invalid.values()) + sum(self.garbage.values())


class AgencyPublisher:
    """Produces generated dialect records for every mapping of a catalogue."""

    def __init__(self, settings: Settings, catalog: Catalog, topology: Topology) -> None:
        self._topology = topology
        self._sender = Sender(settings)
        registry = SchemaRegistryClient(settings.registry_client_conf())
        raw_schemas = load_raw_schemas(catalog, settings.schemas_dir)
        self._generators: dict[tuple[str, str], DialectGenerator] = generators_for(
            catalog, raw_schemas)
        conf = {"auto.register.schemas": False, "use.latest.version": True}
        json_raw: dict[tuple[str, str], bool] = {
            (a, d): m.raw_schema_type == "JSON" for (a, d), m in catalog.mappings.items()}
        self._serializers: dict[tuple[str, str], Serializer] = {
            pair: JSONSerializer(json.dumps(schema), registry, conf=conf)
            if json_raw[pair]
            else AvroSerializer(registry, json.dumps(schema), conf=conf)
            for pair, schema in raw_schemas.items()
        }

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return sorted(self._generators)

    def publish(self, pair: tuple[str, str], count: int, *, rng: random.Random,
                invalid_rate: float = 0.0, garbage: int = 0) -> PublishTally:
        tally = PublishTally()
        agency, dataset = pair
        topic = self._topology.raw(agency, dataset)
        ctx = SerializationContext(topic.split(".", 1)[1] if self._topology.namespace
                                   else topic, MessageField.VALUE)
        serializer = self._serializers[pair]
        gen = self._generators[pair]
        for i in range(count):
            g = gen.generate(rng, invalid_rate=invalid_rate)
            value = serializer(g.raw, ctx)
            assert value is not None  # a record always serialises to bytes
            self._produce(topic, f"{agency}-{i}".encode(), value)
            (tally.valid if g.valid else tally.invalid)[pair] += 1
        for kind, reason, value in _garbage(rng, garbage):
            self._produce(topic, None, value)
            tally.garbage[pair] += 1
            tally.garbage_kinds[(kind, reason)] += 1
        return tally

    def _produce(self, topic: str, key: bytes | None, value: bytes) -> None:
        self._sender.send(topic, value, key)
        self._sender.poll(0)

    def flush(self) -> None:
        self._sender.settle(60, what="published records")


GARBAGE_KINDS: tuple[tuple[str, str, bytes], ...] = (
    # (what it is, the dead-letter reason it must get, the value)
    ("empty value", "empty_value", b""),
    ("JSON, not Avro", "bad_wire_format", b'{"not": "avro"}'),
    ("wrong magic byte", "bad_wire_format", b"\x07" + struct.pack(">I", 1) + b"\x02a"),
    ("unregistered schema id", "unknown_schema_id",
     b"\x00" + struct.pack(">I", 987_654_321) + b"\x02a"),
    ("truncated header", "bad_wire_format", b"\x00\x00"),
)


def _garbage(rng: random.Random, n: int) -> list[tuple[str, str, bytes]]:
    """Values that must be dead-lettered at the wire level, with what each is."""
    return [GARBAGE_KINDS[i % len(GARBAGE_KINDS)] for i in range(n)] if n else []
