"""The ``_schemas`` topic's record format, as Confluent Schema Registry and Karapace write it.

Keys are compact JSON objects with ``keytype`` SCHEMA, CONFIG, MODE, DELETE_SUBJECT or NOOP, the
``subject`` (null for global config/mode), the ``version`` (SCHEMA only) and ``magic`` (1 for
SCHEMA keys, 0 otherwise). Values are JSON; a null value (tombstone) deletes what the key names.
Pure: no Kafka here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class KeyType(StrEnum):
    SCHEMA = "SCHEMA"
    CONFIG = "CONFIG"
    MODE = "MODE"
    DELETE_SUBJECT = "DELETE_SUBJECT"
    NOOP = "NOOP"


@dataclass(frozen=True)
class Reference:
    """An Avro named type that a schema takes from another subject's version."""

    name: str
    subject: str
    version: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "subject": self.subject, "version": self.version}


@dataclass(frozen=True)
class Key:
    keytype: KeyType
    subject: str | None = None
    version: int | None = None


Record = tuple[bytes, bytes | None]


def _dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def encode_key(key: Key) -> bytes:
    if key.keytype is KeyType.SCHEMA:
        return _dumps(
            {"keytype": "SCHEMA", "subject": key.subject, "version": key.version, "magic": 1}
        )
    if key.keytype is KeyType.NOOP:
        return _dumps({"keytype": "NOOP", "magic": 0})
    return _dumps({"keytype": key.keytype.value, "subject": key.subject, "magic": 0})


def decode_key(raw: bytes | None) -> Key | None:
    """The key, or None when it is not one of ours (foreign or malformed records are skipped)."""
    if not raw:
        return None
    try:
        obj = json.loads(raw)
        keytype = KeyType(obj["keytype"])
    except (ValueError, KeyError, TypeError):
        return None
    subject = obj.get("subject")
    version = obj.get("version")
    if subject is not None and not isinstance(subject, str):
        return None
    if keytype is KeyType.SCHEMA and (not isinstance(subject, str) or not isinstance(version, int)):
        return None
    return Key(keytype, subject, version if isinstance(version, int) else None)


def decode_value(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None or raw == b"":
        return None
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def schema_record(
    *,
    subject: str,
    version: int,
    schema_id: int,
    schema: str,
    schema_type: str,
    references: tuple[Reference, ...],
    deleted: bool,
) -> Record:
    value: dict[str, Any] = {
        "subject": subject,
        "version": version,
        "id": schema_id,
        "schema": schema,
        "deleted": deleted,
    }
    if schema_type != "AVRO":
        value["schemaType"] = schema_type
    if references:
        value["references"] = [r.to_json() for r in references]
    return encode_key(Key(KeyType.SCHEMA, subject, version)), _dumps(value)


def schema_tombstone(subject: str, version: int) -> Record:
    return encode_key(Key(KeyType.SCHEMA, subject, version)), None


def config_record(subject: str | None, level: str | None) -> Record:
    value = None if level is None else _dumps({"compatibilityLevel": level})
    return encode_key(Key(KeyType.CONFIG, subject)), value


def mode_record(subject: str | None, mode: str | None) -> Record:
    value = None if mode is None else _dumps({"mode": mode})
    return encode_key(Key(KeyType.MODE, subject)), value


def delete_subject_record(subject: str, version: int) -> Record:
    return encode_key(Key(KeyType.DELETE_SUBJECT, subject)), _dumps(
        {"subject": subject, "version": version}
    )


def noop_record(max_id: int = 0) -> Record:
    """A NOOP (read back to sync). It carries the highest schema id issued so far: on a
    compacted topic a hard-deleted schema's records vanish, and without this a fresh instance
    would issue that id again to another schema (old records would decode with the wrong one).
    Only the newest NOOP survives compaction, so every NOOP carries the writer's maximum."""
    value = None if max_id <= 0 else _dumps({"maxId": max_id})
    return encode_key(Key(KeyType.NOOP)), value


def parse_references(raw: object) -> tuple[Reference, ...] | None:
    """References from JSON, or None when malformed."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        return None
    out = []
    for item in raw:
        if not isinstance(item, dict):
            return None
        name, subject, version = item.get("name"), item.get("subject"), item.get("version")
        if not (isinstance(name, str) and isinstance(subject, str) and isinstance(version, int)):
            return None
        out.append(Reference(name, subject, version))
    return tuple(out)
