"""Topic and schema initialisation for a catalogue (``shulian init``, also run by ``shulian up``).

- every topic of the plan, with explicit partition counts;
- raw agency schemas (schemas/raw/<agency>/<dataset>.avsc) under ``raw.<agency>.<dataset>-value``;
- canonical schemas (schemas/canonical/<dataset>.avsc) under ``canonical.<dataset>-value``;
- consumer-view schemas per list entry under ``egress.<consumer>.<dataset>-value`` (compatibility
  NONE on those subjects: a view changes when the list changes, and every egress record names the
  list version and entry that shaped it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastavro import parse_schema

from shulian.catalog.models import DELIVERING, Catalog, SharingList
from shulian.chain.enforce import ViewSchema
from shulian.chain.ingest import CanonicalSchema
from shulian.chain.topology import Topology, plan_topics, subject_of
from shulian.errors import RegistryError
from shulian.io.kafka import MAX_MESSAGE_BYTES, TopicSpec, admin_client, ensure_topics
from shulian.log import get_logger
from shulian.logic.views import view_schema
from shulian.settings import Settings

log = get_logger(__name__)


@dataclass(frozen=True)
class InitReport:
    topics: int
    subjects: int


def registry_client(settings: Settings) -> SchemaRegistryClient:
    """A registry client whose every call times out (``SHULIAN_REGISTRY_TIMEOUT_S``)."""
    return SchemaRegistryClient(settings.registry_client_conf())


def _register(client: SchemaRegistryClient, subject: str, schema: dict[str, Any],
              schema_type: str = "AVRO") -> int:
    try:
        return int(client.register_schema(subject, Schema(json.dumps(schema), schema_type)))
    except SchemaRegistryError as exc:
        raise RegistryError(f"cannot register {subject}: {exc}") from exc
    except Exception as exc:  # connection errors from httpx/requests
        raise RegistryError(f"schema registry unreachable at registration of {subject}: "
                            f"{exc}") from exc


def _load_avsc(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


def register_raw_and_canonical(
    settings: Settings, catalog: Catalog, topology: Topology, client: SchemaRegistryClient
) -> dict[str, CanonicalSchema]:
    """Register raw and canonical schemas; returns the canonical schema per dataset."""
    for (agency, dataset), mapping in sorted(catalog.mappings.items()):
        raw = _load_avsc(settings.schemas_dir / mapping.raw_schema)
        _register(client, subject_of(topology.unprefix(topology.raw(agency, dataset)) or ""), raw,
                  mapping.raw_schema_type)
    canonical: dict[str, CanonicalSchema] = {}
    for dataset in sorted(catalog.datasets):
        schema = _load_avsc(settings.schemas_dir / "canonical" / f"{dataset}.avsc")
        sid = _register(client, subject_of(Topology().canonical(dataset)), schema)
        canonical[dataset] = CanonicalSchema(schema_id=sid, parsed=parse_schema(schema))
    return canonical


def register_views(
    catalog: Catalog, sharing_list: SharingList, client: SchemaRegistryClient
) -> dict[tuple[int, str], ViewSchema]:
    """Register the consumer-view schema of every entry that can deliver."""
    views: dict[tuple[int, str], ViewSchema] = {}
    for entry in sharing_list.entries:
        if entry.share_type not in DELIVERING:
            continue
        dataset = catalog.datasets[entry.dataset]
        schema = view_schema(dataset, catalog.elements, entry)
        subject = subject_of(Topology().egress(entry.consumer, entry.dataset))
        try:
            client.set_compatibility(subject_name=subject, level="NONE")
        except Exception as exc:
            raise RegistryError(f"cannot set compatibility of {subject}: {exc}") from exc
        sid = _register(client, subject, schema)
        views[(sharing_list.version, entry.id)] = ViewSchema(sid, parse_schema(schema))
    return views


CHANGELOG_CONFIG = (
    ("cleanup.policy", "compact"),
    # a record stays at least 7 days before compaction may drop it for a later one of its key:
    # a changelog keeper (streams/keeper.py) down for less than that still finds a newer record
    # that an older one was written after, and writes it again (docs/VERIFY.md)
    ("min.compaction.lag.ms", str(7 * 24 * 3600 * 1000)),
)


def init_topology(settings: Settings, catalog: Catalog, topology: Topology) -> InitReport:
    """Create every topic and register every schema the catalogue needs. Idempotent."""
    plan = plan_topics(catalog, topology)
    compacted = set(plan.changelog)
    ensure_topics(
        admin_client(settings),
        [TopicSpec(name, parts, (("max.message.bytes", str(MAX_MESSAGE_BYTES)),
                                 *(CHANGELOG_CONFIG if name in compacted else ())))
         for name, parts in plan.all()],
        replication_factor=settings.replication_factor,
    )
    client = registry_client(settings)
    register_raw_and_canonical(settings, catalog, topology, client)
    subjects = len(catalog.mappings) + len(catalog.datasets)
    for sl in catalog.sharing_lists.values():
        subjects += len(register_views(catalog, sl, client))
    log.info("init.done", topics=len(plan.all()), subjects=subjects)
    return InitReport(topics=len(plan.all()), subjects=subjects)
