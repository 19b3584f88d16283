"""Write commands: check a request against the state and plan the records that carry it out.

Pure: each function reads a :class:`RegistryState` and returns the records to produce plus the
answer to give once they are applied. Nothing changes until the records come back from the topic.
"""

from __future__ import annotations

from dataclasses import dataclass

from shulian.registry import errors as e
from shulian.registry import json_compat
from shulian.registry.avro_schemas import Existing, Level, compact, incompatibilities, parse
from shulian.registry.records import (
    Record,
    Reference,
    config_record,
    delete_subject_record,
    mode_record,
    schema_record,
    schema_tombstone,
)
from shulian.registry.schema_types import SUPPORTED_TYPES, check_type, json_node, validate
from shulian.registry.state import (
    MAX_VERSION,
    Identity,
    Mode,
    RegistryState,
    parse_version,
)

__all__ = ["SUPPORTED_TYPES", "Candidate"]


@dataclass(frozen=True)
class Candidate:
    """A schema as a client sent it (POST /subjects/{s}/versions, lookup, compatibility)."""

    schema: str
    schema_type: str = "AVRO"
    references: tuple[Reference, ...] = ()


def check_candidate(state: RegistryState, cand: Candidate) -> Candidate:
    """Refuse unsupported types and invalid schemas (42201); the candidate in stored (compact)
    form."""
    check_type(cand.schema_type)
    compacted = compact(cand.schema)
    validate(cand.schema_type, compacted, state.resolved(cand.references))
    return Candidate(compacted, cand.schema_type, cand.references)


def compatibility_messages(
    state: RegistryState, subject: str, cand: Candidate, *, version_spec: str | None = None
) -> list[str]:
    """Why ``cand`` may not be registered under ``subject`` (all checked versions, or one)."""
    cand = check_candidate(state, cand)
    level = state.compatibility(subject, default_to_global=True)
    if version_spec is None:
        try:
            entries = state.entries(subject)
        except e.ApiError:
            return []
    else:
        if not any(not v.deleted for v in state.subjects.get(subject, {}).values()):
            # as Confluent: nothing to be incompatible with, unless a numbered version is named
            if parse_version(version_spec) == -1:
                return []
            raise e.version_not_found(version_spec)
        entries = [state.entry(subject, version_spec)]
        if level is Level.NONE:
            level = Level.BACKWARD  # an explicit version is compared with, whatever the level says
        level = Level(level.value.removesuffix("_TRANSITIVE"))
    compared = entries if level.transitive or version_spec is not None else entries[-1:]
    if level is not Level.NONE:
        for x in compared:
            if state.schemas[x.id].schema_type != cand.schema_type:
                return [
                    "Incompatible because of different schema type",
                    f"{{oldSchemaVersion: {x.version}}}",
                    f"{{compatibility: '{level.value}'}}",
                ]
    if cand.schema_type == "JSON":
        node = json_node(cand.schema, state.resolved(cand.references))
        olds = [
            (x.version, state.schemas[x.id].schema,
             json_node(state.schemas[x.id].schema, state.resolved(state.schemas[x.id].references)))
            for x in compared
        ]
        return json_compat.incompatibilities(level, node, olds)
    new = parse(cand.schema, referenced=state.resolved_references(cand.references))
    existing = [
        Existing(x.version, state.schemas[x.id].schema, state.parsed(x.id)) for x in compared
    ]
    return incompatibilities(level, new, existing)


@dataclass(frozen=True)
class Planned:
    schema_id: int
    version: int
    records: list[Record]
    identity: Identity

    def applied(self, state: RegistryState, subject: str) -> bool:
        """Whether the state holds this very schema at this subject version (after a write,
        False means another writer took the version or the id first)."""
        entry = state.subjects.get(subject, {}).get(self.version)
        if entry is None or entry.deleted or entry.id != self.schema_id:
            return False
        return state.schemas[entry.id].identity == self.identity


def plan_register(
    state: RegistryState,
    subject: str,
    cand: Candidate,
    *,
    explicit_id: int | None = None,
    explicit_version: int | None = None,
) -> Planned:
    """Register ``cand`` under ``subject``: the existing version if it is there, else a new one."""
    mode = state.mode(subject, default_to_global=True)
    if mode is Mode.READONLY:
        raise e.not_permitted(f"Subject {subject} is in read-only mode")
    cand = check_candidate(state, cand)
    ident = state.identity_of(cand.schema_type, cand.schema, cand.references)
    known_id = state.ids_by_identity.get(ident)
    live = [v for v in state.subjects.get(subject, {}).values() if not v.deleted]
    for entry in live:
        if entry.id == known_id and explicit_version in (None, entry.version):
            if explicit_id not in (None, known_id):
                raise e.not_permitted(
                    f"Schema already registered with id {known_id} "
                    f"instead of input id {explicit_id}"
                )
            return Planned(entry.id, entry.version, [], ident)
    if mode is not Mode.IMPORT:
        if explicit_id is not None and explicit_id != known_id:
            raise e.not_permitted(f"Subject {subject} is not in import mode")
        if explicit_version is not None:
            raise e.not_permitted(f"Subject {subject} is not in import mode")
        messages = compatibility_messages(state, subject, cand)
        if messages:
            raise e.ApiError(
                409,
                409,
                "Schema being registered is incompatible with an earlier schema for subject "
                f'"{subject}", '
                f"details: [{', '.join(messages)}]",
            )
    if explicit_id is not None:
        if explicit_id < 1:
            raise e.invalid_schema(f"schema id {explicit_id} is not a valid id")
        other = state.schemas.get(explicit_id)
        if other is not None and other.identity != ident:
            raise e.not_permitted(f"Overwrite new schema with id {explicit_id} is not permitted.")
        if known_id is not None and known_id != explicit_id:
            raise e.not_permitted(
                f"Schema already registered with id {known_id} instead of input id {explicit_id}"
            )
        schema_id = explicit_id
    else:
        schema_id = known_id if known_id is not None else state.max_id + 1
    if schema_id in state.schemas:  # the same schema under its first text: one id, one text
        cand = Candidate(state.schemas[schema_id].schema, cand.schema_type, cand.references)
    every = state.subjects.get(subject, {})
    if explicit_version is not None:
        if not 1 <= explicit_version <= MAX_VERSION:
            raise e.invalid_version(str(explicit_version))
        taken = every.get(explicit_version)
        if taken is not None and taken.id != schema_id:
            raise e.not_permitted(
                f"Overwrite new schema with version {explicit_version} is not permitted."
            )
        version = explicit_version
    else:
        version = max(every, default=0) + 1
    record = schema_record(
        subject=subject,
        version=version,
        schema_id=schema_id,
        schema=cand.schema,
        schema_type=cand.schema_type,
        references=cand.references,
        deleted=False,
    )
    return Planned(schema_id, version, [record], ident)


def _check_writable(state: RegistryState, subject: str) -> None:
    if state.mode(subject, default_to_global=True) is Mode.READONLY:
        raise e.not_permitted(f"Subject {subject} is in read-only mode")


def _check_not_referenced(state: RegistryState, subject: str, versions: list[int]) -> None:
    for v in versions:
        if state.referenced_by(subject, v):
            raise e.ApiError(
                422,
                e.REFERENCE_EXISTS,
                f"One or more references exist to the schema {{subject={subject},version={v}}}.",
            )


def plan_delete_subject(
    state: RegistryState, subject: str, *, permanent: bool
) -> tuple[list[int], list[Record]]:
    _check_writable(state, subject)
    every = state.subjects.get(subject, {})
    if not every:
        raise e.subject_not_found(subject)
    if permanent:
        if any(not v.deleted for v in every.values()):
            raise e.ApiError(
                404,
                e.SUBJECT_NOT_SOFT_DELETED,
                f"Subject '{subject}' was not deleted first before being permanently deleted",
            )
        versions = sorted(every)
        return versions, [schema_tombstone(subject, v) for v in versions]
    live = sorted(v for v, entry in every.items() if not entry.deleted)
    if not live:
        raise e.ApiError(
            404,
            e.SUBJECT_SOFT_DELETED,
            f"Subject '{subject}' was soft deleted.Set permanent=true to delete permanently",
        )
    _check_not_referenced(state, subject, live)
    return live, [delete_subject_record(subject, live[-1])]


def plan_delete_version(
    state: RegistryState, subject: str, version_spec: str, *, permanent: bool
) -> tuple[int, list[Record]]:
    _check_writable(state, subject)
    version = parse_version(version_spec)
    entry = state.entry(subject, version_spec, deleted=permanent and version != -1)
    if permanent:
        if not entry.deleted:
            raise e.ApiError(
                404,
                e.VERSION_NOT_SOFT_DELETED,
                f"Subject '{subject}' Version {entry.version} was not deleted first "
                "before being permanently deleted",
            )
        return entry.version, [schema_tombstone(subject, entry.version)]
    if entry.deleted:  # pragma: no cover - entry() hides soft-deleted versions here
        raise e.ApiError(
            404,
            e.VERSION_SOFT_DELETED,
            f"Subject '{subject}' Version {entry.version} was soft deleted",
        )
    _check_not_referenced(state, subject, [entry.version])
    stored = state.schemas[entry.id]
    return entry.version, [
        schema_record(
            subject=subject,
            version=entry.version,
            schema_id=entry.id,
            schema=stored.schema,
            schema_type=stored.schema_type,
            references=stored.references,
            deleted=True,
        )
    ]


def parse_level(raw: object) -> Level:
    try:
        return Level(str(raw).upper()) if isinstance(raw, str) else Level("?")
    except ValueError:
        raise e.invalid_compatibility_level() from None


def plan_set_config(subject: str | None, raw_level: object) -> tuple[Level, list[Record]]:
    level = parse_level(raw_level)
    return level, [config_record(subject, level.value)]


def plan_delete_config(state: RegistryState, subject: str | None) -> tuple[Level, list[Record]]:
    if subject is None:
        return state.compatibility(None), [config_record(None, None)]
    if subject not in state.subjects and subject not in state.configs:
        raise e.subject_not_found(subject)
    return state.compatibility(subject), [config_record(subject, None)]


def plan_set_mode(
    state: RegistryState, subject: str | None, raw_mode: object, *, force: bool
) -> tuple[Mode, list[Record]]:
    try:
        mode = Mode(raw_mode.upper()) if isinstance(raw_mode, str) else Mode("?")
    except ValueError:
        raise e.invalid_mode(raw_mode) from None
    if mode is Mode.IMPORT and not force:
        names = (
            state.subject_names()
            if subject is None
            else [s for s in state.subject_names() if s == subject]
        )
        if names:
            raise e.not_permitted("Cannot import since found existing subjects")
    return mode, [mode_record(subject, mode.value)]


def plan_delete_mode(state: RegistryState, subject: str | None) -> tuple[Mode, list[Record]]:
    """The mode removed (the global one falls back to READWRITE)."""
    return state.mode(subject), [mode_record(subject, None)]
