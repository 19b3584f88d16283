"""The registry's operations, blocking: plan against the state, write through the store, answer.

Answers are JSON-ready values shaped as Confluent Schema Registry returns them. Errors are
:class:`~shulian.registry.errors.ApiError`. A lookup that finds nothing first catches up with the
topic's high watermark once (another instance may just have written it), so reads after writes
agree across instances.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from shulian.log import get_logger, mask_id
from shulian.registry import commands as c
from shulian.registry import errors as e
from shulian.registry.records import Record, parse_references
from shulian.registry.state import RegistryState, StoredSchema, VersionEntry
from shulian.registry.store import KafkaStore

log = get_logger(__name__)
T = TypeVar("T")
MAX_ATTEMPTS = 8


def schema_json(stored: StoredSchema) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if stored.schema_type != "AVRO":
        out["schemaType"] = stored.schema_type
    out["schema"] = stored.schema
    if stored.references:
        out["references"] = [r.to_json() for r in stored.references]
    return out


def version_json(state: RegistryState, entry: VersionEntry) -> dict[str, Any]:
    return {
        "subject": entry.subject,
        "version": entry.version,
        "id": entry.id,
        **schema_json(state.schemas[entry.id]),
    }


def candidate(body: dict[str, Any]) -> c.Candidate:
    """The schema a request body carries (42201 when absent or malformed)."""
    schema = body.get("schema")
    if not isinstance(schema, str) or not schema.strip():
        raise e.invalid_schema("Empty schema")
    schema_type = body.get("schemaType") or "AVRO"
    if not isinstance(schema_type, str):
        raise e.invalid_schema("schemaType must be a string")
    refs = parse_references(body.get("references"))
    if refs is None:
        raise e.invalid_schema("references must be a list of {name, subject, version}")
    refuse_data_contracts(body)
    return c.Candidate(schema, schema_type.upper(), refs)


def _empty(value: object) -> bool:
    if isinstance(value, dict):
        return all(_empty(v) for v in value.values())
    if isinstance(value, list):
        return not value
    return value is None


def refuse_data_contracts(body: dict[str, Any]) -> None:
    """Confluent data contracts (``metadata``, ``ruleSet``) are refused rather than dropped;
    empty ones (``{}``, empty lists and maps, null) are what clients send by default."""
    for name in ("metadata", "ruleSet"):
        if not _empty(body.get(name)):
            raise e.ApiError(
                422,
                e.INVALID_SCHEMA,
                f"Invalid schema: {name} (Confluent data contracts) is not supported by this "
                "registry; register the schema without it",
            )


def _bind(fn: Callable[[RegistryState, T], bool], result: T) -> Callable[[RegistryState], bool]:
    return lambda s: fn(s, result)


class RegistryService:
    def __init__(self, store: KafkaStore) -> None:
        self.store = store

    # ------------------------------------------------------------------ plumbing
    def read(self, fn: Callable[[RegistryState], T]) -> T:
        """``fn`` on the state; on a 404, once more after catching up with the topic (unless
        catching up applied nothing new: then the first answer stands)."""
        before = self.store.position
        try:
            return self.store.view(fn)
        except e.ApiError as exc:
            if exc.status != 404:
                raise
            self.store.catch_up()
            if self.store.position == before:
                raise
        return self.store.view(fn)

    def write(
        self,
        plan: Callable[[RegistryState], tuple[T, list[Record]]],
        applied: Callable[[RegistryState, T], bool] = lambda _s, _r: True,
    ) -> T:
        """Plan, produce, wait, verify; plan again when another writer got there first."""
        with self.store.write_lock:
            for _ in range(MAX_ATTEMPTS):
                result, records = self.store.view(plan)
                if not records:
                    return result
                self.store.commit(records)
                if self.store.view(_bind(applied, result)):
                    return result
                log.info("registry.write.conflict_retry")
        raise e.ApiError(500, e.STORE_ERROR, "Error in the backend data store: conflicting writers")

    # ------------------------------------------------------------------ subjects
    def subjects(self, *, deleted: bool, prefix: str) -> list[str]:
        return self.store.view(lambda s: s.subject_names(deleted=deleted, prefix=prefix))

    def versions(self, subject: str, *, deleted: bool) -> list[int]:
        return self.read(lambda s: [v.version for v in s.entries(subject, deleted=deleted)])

    def version(self, subject: str, spec: str, *, deleted: bool) -> dict[str, Any]:
        return self.read(lambda s: version_json(s, s.entry(subject, spec, deleted=deleted)))

    def referenced_by(self, subject: str, spec: str) -> list[int]:
        def q(s: RegistryState) -> list[int]:
            entry = s.entry(subject, spec)
            return s.referenced_by(subject, entry.version)

        return self.read(q)

    def lookup(self, subject: str, body: dict[str, Any], *, deleted: bool) -> dict[str, Any]:
        cand = candidate(body)

        def q(s: RegistryState) -> dict[str, Any]:
            checked = c.check_candidate(s, cand)
            entry = s.lookup(
                subject, checked.schema_type, checked.schema, checked.references, deleted=deleted
            )
            return version_json(s, entry)

        return self.read(q)

    def register(self, subject: str, body: dict[str, Any]) -> dict[str, Any]:
        cand = candidate(body)
        explicit_id, explicit_version = body.get("id"), body.get("version")
        for name, raw in (("id", explicit_id), ("version", explicit_version)):
            if raw is not None and (not isinstance(raw, int) or isinstance(raw, bool)):
                raise e.invalid_schema(f"{name} must be an integer")
        # -1 / 0 mean "not given" in Confluent's clients
        explicit_id = explicit_id if explicit_id and explicit_id > 0 else None
        explicit_version = explicit_version if explicit_version and explicit_version > 0 else None

        def plan(s: RegistryState) -> tuple[c.Planned, list[Record]]:
            p = c.plan_register(
                s, subject, cand, explicit_id=explicit_id, explicit_version=explicit_version
            )
            return p, p.records

        def applied(s: RegistryState, p: c.Planned) -> bool:
            return p.applied(s, subject)

        planned = self.write(plan, applied)
        if planned.records:
            log.info(
                "registry.registered",
                subject=mask_id(subject),
                id=planned.schema_id,
                version=planned.version,
            )
        return {"id": planned.schema_id}

    def delete_subject(self, subject: str, *, permanent: bool) -> list[int]:
        self.read(lambda s: s.subjects[subject] if subject in s.subjects else s.entries(subject))
        return self.write(lambda s: c.plan_delete_subject(s, subject, permanent=permanent))

    def delete_version(self, subject: str, spec: str, *, permanent: bool) -> int:
        self.read(lambda s: s.subjects[subject] if subject in s.subjects else s.entries(subject))
        return self.write(lambda s: c.plan_delete_version(s, subject, spec, permanent=permanent))

    # ------------------------------------------------------------------ schemas
    def schema_by_id(self, schema_id: int, *, fetch_max_id: bool = False) -> dict[str, Any]:
        def q(s: RegistryState) -> dict[str, Any]:
            out = schema_json(s.schema(schema_id))
            if fetch_max_id:
                out["maxId"] = s.max_id
            return out

        return self.read(q)

    def schemas(
        self, *, prefix: str, deleted: bool, latest_only: bool, offset: int, limit: int
    ) -> list[dict[str, Any]]:
        """GET /schemas: every (or every latest) version of the subjects under ``prefix``."""

        def q(s: RegistryState) -> list[dict[str, Any]]:
            out = []
            for subject in s.subject_names(deleted=deleted, prefix=prefix):
                entries = s.entries(subject, deleted=deleted)
                for entry in entries[-1:] if latest_only else entries:
                    out.append(version_json(s, entry))
            return out[offset:] if limit < 0 else out[offset : offset + limit]

        return self.store.view(q)

    def id_versions(self, schema_id: int, *, deleted: bool) -> list[dict[str, Any]]:
        def q(s: RegistryState) -> list[dict[str, Any]]:
            s.schema(schema_id)
            return [
                {"subject": v.subject, "version": v.version}
                for v in s.id_versions(schema_id, deleted=deleted)
            ]

        return self.read(q)

    def id_subjects(self, schema_id: int, *, deleted: bool) -> list[str]:
        return sorted({v["subject"] for v in self.id_versions(schema_id, deleted=deleted)})

    # ------------------------------------------------------------------ compatibility
    def check(
        self, subject: str, spec: str | None, body: dict[str, Any], *, verbose: bool
    ) -> dict[str, Any]:
        cand = candidate(body)
        messages = self.read(
            lambda s: c.compatibility_messages(s, subject, cand, version_spec=spec)
        )
        out: dict[str, Any] = {"is_compatible": not messages}
        if verbose:
            out["messages"] = messages
        return out

    # ------------------------------------------------------------------ config and mode
    def get_config(self, subject: str | None, *, default_to_global: bool) -> dict[str, Any]:
        level = self.read(lambda s: s.compatibility(subject, default_to_global=default_to_global))
        return {"compatibilityLevel": level.value}

    def set_config(self, subject: str | None, body: dict[str, Any]) -> dict[str, Any]:
        level = self.write(lambda s: c.plan_set_config(subject, body.get("compatibility")))
        return {"compatibility": level.value}

    def delete_config(self, subject: str | None) -> dict[str, Any]:
        level = self.write(lambda s: c.plan_delete_config(s, subject))
        return {"compatibilityLevel": level.value}

    def get_mode(self, subject: str | None, *, default_to_global: bool) -> dict[str, Any]:
        mode = self.read(lambda s: s.mode(subject, default_to_global=default_to_global))
        return {"mode": mode.value}

    def set_mode(self, subject: str | None, body: dict[str, Any], *, force: bool) -> dict[str, Any]:
        mode = self.write(lambda s: c.plan_set_mode(s, subject, body.get("mode"), force=force))
        return {"mode": mode.value}

    def delete_mode(self, subject: str | None) -> dict[str, Any]:
        mode = self.write(lambda s: c.plan_delete_mode(s, subject))
        return {"mode": mode.value}

    # ------------------------------------------------------------------ types
    def schema_types(self) -> list[str]:
        return list(c.SUPPORTED_TYPES)

    def cluster_metadata(self) -> dict[str, Any]:
        """GET /v1/metadata/id: the Kafka cluster and this registry's "cluster" (its topic)."""
        return {
            "scope": {
                "path": [],
                "clusters": {
                    "kafka-cluster": self.store.cluster_id,
                    "schema-registry-cluster": self.store.topic,
                },
            }
        }
