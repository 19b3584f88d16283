"""The registry's state machine: records from the ``_schemas`` topic in, answers out.

Pure: ``RegistryState.apply(key, value)`` folds one record into the state (no I/O), and the query
methods answer from it or raise :class:`~shulian.registry.errors.ApiError`. The same log always
gives the same state, so every registry reading one topic answers alike.

Conflicts between writers are settled here, first record wins: a SCHEMA record is ignored when
its subject/version already holds another id, when its id already names another schema, or when
its exact text already has another id. A writer that finds its record ignored plans again.

"The same schema" is decided on the schema's normal form (``schema_types.normal_form``: for
Avro, the parsed schema written with full names, defaults dropped, keys sorted), so cosmetically
different texts are one schema. Two ids whose texts share a normal form (written by an older
version, or by a race) both stay valid; look-ups find the first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

import avro.schema

from shulian.registry import errors as e
from shulian.registry.avro_schemas import Level, parse
from shulian.registry.records import KeyType, Reference, decode_key, decode_value, parse_references
from shulian.registry.schema_types import Resolved, normal_form, text_form

MAX_VERSION = 2**31 - 1
DEFAULT_LEVEL = Level.BACKWARD


class Mode(StrEnum):
    READWRITE = "READWRITE"
    READONLY = "READONLY"
    IMPORT = "IMPORT"


_S = TypeVar("_S", Level, Mode)

Identity = tuple[str, str, tuple[Reference, ...]]


@dataclass(frozen=True)
class StoredSchema:
    id: int
    schema_type: str
    schema: str
    references: tuple[Reference, ...]
    identity: Identity  # its normal form: equal for "the same schema"


def text_identity(schema_type: str, schema: str, references: tuple[Reference, ...]) -> Identity:
    return (schema_type, text_form(schema), references)


@dataclass(frozen=True)
class VersionEntry:
    subject: str
    version: int
    id: int
    deleted: bool


@dataclass
class RegistryState:
    schemas: dict[int, StoredSchema] = field(default_factory=dict)
    ids_by_identity: dict[Identity, int] = field(default_factory=dict)
    ids_by_text: dict[Identity, int] = field(default_factory=dict)
    subjects: dict[str, dict[int, VersionEntry]] = field(default_factory=dict)
    configs: dict[str | None, Level] = field(default_factory=dict)
    modes: dict[str | None, Mode] = field(default_factory=dict)
    max_id: int = 0
    applied: int = 0
    skipped: int = 0
    _parsed: dict[int, avro.schema.Schema] = field(default_factory=dict, repr=False)

    # ----------------------------------------------------------------- apply
    def apply(self, key: bytes | None, value: bytes | None) -> bool:
        """Fold one record in; False when it was skipped (foreign, malformed or conflicting)."""
        ok = self._apply(key, value)
        self.applied += 1
        if not ok:
            self.skipped += 1
        return ok

    def _apply(self, raw_key: bytes | None, raw_value: bytes | None) -> bool:
        key = decode_key(raw_key)
        if key is None:
            return False
        value = decode_value(raw_value)
        if raw_value is not None and raw_value != b"" and value is None:
            return False
        if key.keytype is KeyType.NOOP:  # may carry the highest id issued (records.noop_record)
            issued = (value or {}).get("maxId")
            if isinstance(issued, int) and not isinstance(issued, bool):
                self.max_id = max(self.max_id, issued)
            return True
        if key.keytype is KeyType.SCHEMA:
            assert key.subject is not None and key.version is not None
            return self._apply_schema(key.subject, key.version, value)
        if key.keytype is KeyType.CONFIG:
            return self._apply_setting(
                self.configs, Level, key.subject, value, "compatibilityLevel"
            )
        if key.keytype is KeyType.MODE:
            return self._apply_setting(self.modes, Mode, key.subject, value, "mode")
        if key.keytype is KeyType.DELETE_SUBJECT:
            if value is None or key.subject is None or not isinstance(value.get("version"), int):
                return False
            versions = self.subjects.get(key.subject, {})
            for v, entry in list(versions.items()):
                if v <= value["version"]:
                    versions[v] = VersionEntry(entry.subject, v, entry.id, True)
            return True
        return False  # pragma: no cover - every KeyType is handled above

    @staticmethod
    def _apply_setting(
        table: dict[str | None, _S],
        kind: type[_S],
        subject: str | None,
        value: dict[str, object] | None,
        name: str,
    ) -> bool:
        if value is None:
            table.pop(subject, None)
            return True
        try:
            table[subject] = kind(str(value.get(name, "")).upper())
        except ValueError:
            return False
        return True

    def _apply_schema(self, subject: str, version: int, value: dict[str, object] | None) -> bool:
        versions = self.subjects.get(subject)
        if value is None:
            if versions is not None:
                versions.pop(version, None)
                if not versions:
                    del self.subjects[subject]
            return True
        schema_id, schema = value.get("id"), value.get("schema")
        schema_type = value.get("schemaType") or "AVRO"
        refs = parse_references(value.get("references"))
        if (
            not isinstance(schema_id, int)
            or not isinstance(schema, str)
            or not isinstance(schema_type, str)
        ):
            return False
        if refs is None or not 1 <= version <= MAX_VERSION or schema_id < 0:
            return False
        try:
            text = text_identity(schema_type, schema, refs)
        except e.ApiError:
            return False
        ident = self.identity_of(schema_type, schema, refs)
        existing = (versions or {}).get(version)
        if existing is not None and existing.id != schema_id:
            return False
        known = self.schemas.get(schema_id)
        if known is not None and known.identity != ident:
            return False
        if self.ids_by_text.get(text, schema_id) != schema_id:
            return False
        if known is None:
            self.schemas[schema_id] = StoredSchema(schema_id, schema_type, schema, refs, ident)
            self.ids_by_identity.setdefault(ident, schema_id)
            self.ids_by_text[text] = schema_id
            self.max_id = max(self.max_id, schema_id)
        self.subjects.setdefault(subject, {})[version] = VersionEntry(
            subject, version, schema_id, bool(value.get("deleted", False))
        )
        return True

    # --------------------------------------------------------------- queries
    def subject_names(self, *, deleted: bool = False, prefix: str = "") -> list[str]:
        return sorted(
            s
            for s, versions in self.subjects.items()
            if s.startswith(prefix) and any(deleted or not v.deleted for v in versions.values())
        )

    def entries(self, subject: str, *, deleted: bool = False) -> list[VersionEntry]:
        """The subject's versions, oldest first; 40401 when it has none visible."""
        found = [
            v for _, v in sorted(self.subjects.get(subject, {}).items()) if deleted or not v.deleted
        ]
        if not found:
            raise e.subject_not_found(subject)
        return found

    def entry(self, subject: str, version_spec: str, *, deleted: bool = False) -> VersionEntry:
        version = parse_version(version_spec)
        if version == -1:
            return self.entries(subject, deleted=deleted)[-1]
        versions = self.subjects.get(subject, {})
        if not any(deleted or not v.deleted for v in versions.values()):
            raise e.subject_not_found(subject)
        found = versions.get(version)
        if found is None or (found.deleted and not deleted):
            raise e.version_not_found(version)
        return found

    def schema(self, schema_id: int) -> StoredSchema:
        """The schema with this id; 40403 unless some subject version (even soft-deleted) has it."""
        stored = self.schemas.get(schema_id)
        if stored is None or not self.id_versions(schema_id, deleted=True):
            raise e.schema_not_found(f"Schema {schema_id} not found")
        return stored

    def id_versions(self, schema_id: int, *, deleted: bool = False) -> list[VersionEntry]:
        return sorted(
            (
                v
                for versions in self.subjects.values()
                for v in versions.values()
                if v.id == schema_id and (deleted or not v.deleted)
            ),
            key=lambda v: (v.subject, v.version),
        )

    def lookup(
        self,
        subject: str,
        schema_type: str,
        schema: str,
        references: tuple[Reference, ...],
        *,
        deleted: bool = False,
    ) -> VersionEntry:
        """The subject version holding this schema (POST /subjects/{s}); 40401 / 40403 otherwise."""
        entries = self.entries(subject, deleted=deleted)
        ident = self.identity_of(schema_type, schema, references)
        for entry in reversed(entries):
            if self.schemas[entry.id].identity == ident:
                return entry
        raise e.schema_not_found()

    def referenced_by(self, subject: str, version: int) -> list[int]:
        ids = {
            v.id
            for versions in self.subjects.values()
            for v in versions.values()
            if not v.deleted
            and any(
                r.subject == subject and r.version == version for r in self.schemas[v.id].references
            )
        }
        return sorted(ids)

    def compatibility(self, subject: str | None, *, default_to_global: bool = False) -> Level:
        if subject is None:
            return self.configs.get(None, DEFAULT_LEVEL)
        if subject in self.configs:
            return self.configs[subject]
        if default_to_global:
            return self.compatibility(None)
        raise e.ApiError(
            404,
            e.SUBJECT_COMPAT_NOT_CONFIGURED,
            f"Subject '{subject}' does not have subject-level compatibility configured",
        )

    def mode(self, subject: str | None, *, default_to_global: bool = False) -> Mode:
        if subject is None:
            return self.modes.get(None, Mode.READWRITE)
        if subject in self.modes:
            return self.modes[subject]
        if default_to_global:
            return self.mode(None)
        raise e.ApiError(
            404,
            e.SUBJECT_MODE_NOT_CONFIGURED,
            f"Subject '{subject}' does not have subject-level mode configured",
        )

    def identity_of(
        self, schema_type: str, schema: str, references: tuple[Reference, ...]
    ) -> Identity:
        """The normal form (its text form if it does not parse: foreign records still fold)."""
        try:
            form = normal_form(schema_type, schema, self.resolved(references))
        except e.ApiError:
            try:
                form = "text:" + text_form(schema)
            except e.ApiError:
                form = "raw:" + schema
        return (schema_type, form, references)

    def resolved_references(self, references: tuple[Reference, ...]) -> list[str]:
        """The schemas these references name, transitively, dependencies first (42201 if not)."""
        return [r.schema for r in self.resolved(references)]

    def resolved(self, references: tuple[Reference, ...]) -> list[Resolved]:
        """The schemas these references name, transitively, dependencies first (42201 if not)."""
        out: list[Resolved] = []
        seen: set[tuple[str, int]] = set()

        def visit(refs: tuple[Reference, ...]) -> None:
            for ref in refs:
                if (ref.subject, ref.version) in seen:
                    continue
                seen.add((ref.subject, ref.version))
                entry = self.subjects.get(ref.subject, {}).get(ref.version)
                if entry is None:
                    raise e.invalid_schema(
                        f"reference {ref.name!r} names subject {ref.subject!r} "
                        f"version {ref.version}, "
                        "which does not exist"
                    )
                stored = self.schemas[entry.id]
                visit(stored.references)
                out.append(Resolved(ref.name, stored.schema_type, stored.schema))

        visit(references)
        return out

    def parsed(self, schema_id: int) -> avro.schema.Schema:
        """The parsed Avro schema for a registered id (memoised: ids are immutable)."""
        if schema_id not in self._parsed:
            stored = self.schemas[schema_id]
            self._parsed[schema_id] = parse(
                stored.schema, referenced=self.resolved_references(stored.references)
            )
        return self._parsed[schema_id]


def parse_version(spec: str) -> int:
    """A version from a path: 1..2^31-1, or -1 for "latest"/"-1"; 42202 otherwise."""
    if spec == "latest":
        return -1
    try:
        version = int(spec)
    except ValueError:
        raise e.invalid_version(spec) from None
    if version == -1 or 1 <= version <= MAX_VERSION:
        return version
    raise e.invalid_version(spec)
