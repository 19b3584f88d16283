"""The Confluent wire format and a schema cache shared by the chain and the connectors.

Wire format: magic byte 0, the schema id as 4 bytes big-endian, then the Avro binary body.
:class:`SchemaCache` asks a Confluent-compatible registry (ours or Confluent's) through
confluent-kafka's ``SchemaRegistryClient`` and keeps parsed fastavro schemas by id. Ids are
immutable, so positive answers are kept for good: once fetched, a schema keeps working while the
registry restarts. "Not found" is kept for ``negative_ttl_s`` only. While the registry is
unreachable, answers already held (a subject list, a "not found") are kept and the registry is
asked again only after ``negative_ttl_s``, doubled after each failure in a row up to
``MAX_UNREACHABLE_S``: one failed lookup does not become one blocking retry per record, and a
registry that hangs costs one timed-out call (``timeout_s``, ``retries``) a minute at most.
Plain dicts: meant for one thread or one asyncio worker.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Mapping
from typing import Any

import fastavro
import jsonschema
import jsonschema.validators
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from shulian.chain import wire
from shulian.chain.wire import MAGIC as MAGIC  # re-exported: one wire-format implementation
from shulian.chain.wire import encode_wire as encode_wire
from shulian.errors import RegistryError
from shulian.logic.result import Rejected

MAX_UNREACHABLE_S = 60.0


def split_wire(value: bytes | None) -> tuple[int, memoryview] | None:
    """(schema id, Avro body) of a wire-format value; None when it is not in that format."""
    if value is None:
        return None
    split = wire.split_wire(value)
    if isinstance(split, Rejected):
        return None
    schema_id, _ = split
    return schema_id, memoryview(value)[wire.HEADER_SIZE :]


def decode_wire(parsed_schema: Any, body: memoryview | bytes) -> Any:
    """The record in an Avro body written with ``parsed_schema``."""
    return fastavro.schemaless_reader(io.BytesIO(body), parsed_schema, None)


class SchemaCache:
    """Schemas by id from a schema registry, parsed for fastavro, cached."""

    def __init__(self, registry_url: str, *, negative_ttl_s: float = 5.0,
                 auth: Mapping[str, Any] | None = None, timeout_s: float = 5.0,
                 retries: int = 1) -> None:
        """``auth``: the identity's client settings (``Settings.registry_auth_conf()``);
        ``timeout_s`` and ``retries``: of every call (``SHULIAN_REGISTRY_TIMEOUT_S``, ...)."""
        self.registry_url = registry_url
        self.negative_ttl_s = negative_ttl_s
        self._client = SchemaRegistryClient(
            {"url": registry_url, "timeout": timeout_s, "max.retries": retries,
             "retries.wait.ms": 100, "retries.max.wait.ms": 1000, **(auth or {})}
        )
        self._failures = 0
        self._schemas: dict[int, Schema] = {}
        self._parsed: dict[int, Any] = {}
        self._missing: dict[int, float] = {}
        self._subjects: dict[int, tuple[float, frozenset[str]]] = {}
        self._unreachable_until = 0.0

    def _unreachable(self) -> bool:
        """True while a recent lookup found the registry unreachable (for ``negative_ttl_s``)."""
        return time.monotonic() < self._unreachable_until

    def _mark_unreachable(self) -> None:
        pause = min(MAX_UNREACHABLE_S, self.negative_ttl_s * 2 ** min(self._failures, 8))
        self._failures += 1
        self._unreachable_until = time.monotonic() + pause

    def _answered(self) -> None:
        self._failures = 0

    # ------------------------------------------------------------------ by id
    def _schema(self, schema_id: int) -> Schema | None:
        found = self._schemas.get(schema_id)
        if found is not None:
            return found
        missing_since = self._missing.get(schema_id)
        if missing_since is not None and (
            time.monotonic() - missing_since < self.negative_ttl_s or self._unreachable()
        ):
            return None
        try:
            found = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                self._missing[schema_id] = time.monotonic()
                return None
            if missing_since is not None:  # keep the last answer while the registry fails
                self._mark_unreachable()
                return None
            raise RegistryError(f"registry {self.registry_url} answered {exc}") from exc
        except Exception as exc:
            self._mark_unreachable()
            if missing_since is not None:
                return None
            raise RegistryError(f"registry {self.registry_url} unreachable: {exc}") from exc
        self._answered()
        self._missing.pop(schema_id, None)
        self._schemas[schema_id] = found
        return found

    def schema_str(self, schema_id: int) -> str | None:
        """The schema text for ``schema_id``; None when the registry says it does not exist."""
        found = self._schema(schema_id)
        return None if found is None else found.schema_str

    def parsed(self, schema_id: int) -> Any | None:
        """The fastavro-parsed schema for ``schema_id`` (references resolved), or for a JSON
        Schema a :class:`~shulian.chain.wire.JsonRecordSchema`; None if unknown."""
        if schema_id in self._parsed:
            return self._parsed[schema_id]
        found = self._schema(schema_id)
        if found is None:
            return None
        if found.schema_type == "JSON":
            parsed: Any = self._json_schema(found)
        else:
            named: dict[str, Any] = {}
            self._parse_references(found, named, set())
            parsed = fastavro.parse_schema(
                json.loads(found.schema_str or "null"), named_schemas=named
            )
        self._parsed[schema_id] = parsed
        return parsed

    def _json_schema(self, schema: Schema) -> wire.JsonRecordSchema:
        """A JSON Schema with its references (by reference name) ready to validate bodies."""
        resources: dict[str, Any] = {}
        self._json_references(schema, resources, set())
        registry: Registry[Any] = Registry().with_resources(
            (name, Resource.from_contents(contents, default_specification=DRAFT7))
            for name, contents in resources.items()
        )
        contents = json.loads(schema.schema_str or "true")
        cls = jsonschema.validators.validator_for(contents, default=jsonschema.Draft7Validator)
        return wire.JsonRecordSchema(cls(contents, registry=registry))

    def _json_references(
        self, schema: Schema, out: dict[str, Any], seen: set[tuple[str, int]]
    ) -> None:
        for ref in schema.references or []:
            if ref.subject is None or ref.version is None or ref.name is None:
                raise RegistryError(f"schema reference {ref.name} lacks a subject or version")
            if (ref.subject, ref.version) in seen:
                continue
            seen.add((ref.subject, ref.version))
            try:
                registered = self._client.get_version(ref.subject, ref.version)
            except Exception as exc:
                raise RegistryError(f"reference {ref.name} ({ref.subject} v{ref.version}): "
                                    f"{exc}") from exc
            out[ref.name] = json.loads(registered.schema.schema_str or "true")
            self._json_references(registered.schema, out, seen)

    def _parse_references(
        self, schema: Schema, named: dict[str, Any], seen: set[tuple[str, int]]
    ) -> None:
        for ref in schema.references or []:
            if ref.subject is None or ref.version is None:
                raise RegistryError(f"schema reference {ref.name} lacks a subject or version")
            key = (ref.subject, ref.version)
            if key in seen:
                continue
            seen.add(key)
            try:
                registered = self._client.get_version(ref.subject, ref.version)
            except SchemaRegistryError as exc:
                raise RegistryError(
                    f"reference {ref.name} ({ref.subject} v{ref.version}): {exc}"
                ) from exc
            except Exception as exc:
                raise RegistryError(f"registry {self.registry_url} unreachable: {exc}") from exc
            self._parse_references(registered.schema, named, seen)
            fastavro.parse_schema(
                json.loads(registered.schema.schema_str or "null"), named_schemas=named
            )

    def subjects_of(self, schema_id: int) -> frozenset[str]:
        """The subjects ``schema_id`` is registered under (refreshed after ``negative_ttl_s``,
        since a subject may register the same schema later; the last answer is kept while the
        registry is unreachable)."""
        cached = self._subjects.get(schema_id)
        if cached is not None and (
            time.monotonic() - cached[0] < self.negative_ttl_s or self._unreachable()
        ):
            return cached[1]
        try:
            subjects = frozenset(self._client.get_subjects_by_schema_id(schema_id))
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                subjects = frozenset()
            elif cached is not None:
                self._mark_unreachable()
                return cached[1]
            else:
                raise RegistryError(f"registry {self.registry_url} answered {exc}") from exc
        except Exception as exc:
            self._mark_unreachable()
            if cached is not None:
                return cached[1]
            raise RegistryError(f"registry {self.registry_url} unreachable: {exc}") from exc
        self._answered()
        self._subjects[schema_id] = (time.monotonic(), subjects)
        return subjects

    # ------------------------------------------------------------------ by subject
    def register(self, subject: str, schema_str: str) -> int:
        """Register an Avro schema under ``subject``; its id (the existing one if already there)."""
        try:
            return int(self._client.register_schema(subject, Schema(schema_str, "AVRO")))
        except SchemaRegistryError as exc:
            raise RegistryError(f"cannot register under {subject}: {exc}") from exc
        except Exception as exc:
            raise RegistryError(f"registry {self.registry_url} unreachable: {exc}") from exc

    def latest_id(self, subject: str) -> int | None:
        """The id of the subject's latest version (never cached); None when there is none."""
        try:
            return int(self._client.get_version(subject, "latest").schema_id)  # type: ignore[arg-type]
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return None
            raise RegistryError(f"registry {self.registry_url} answered {exc}") from exc
        except Exception as exc:
            raise RegistryError(f"registry {self.registry_url} unreachable: {exc}") from exc
