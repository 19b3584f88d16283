"""Source connector configs: one frozen pydantic model per ``type``.

Secrets are never in the file: a field ending in ``_env`` names the environment variable that
holds the secret; it is read when the connector is built (and checked by ``connect check``).
Path fields may name environment variables as ``${NAME}`` (e.g. ``${SHULIAN_STATE_DIR}``, which
``shulian up`` sets to its state directory); relative paths are resolved against the directory
of the config file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

__all__ = [
    "AgencyAccess",
    "CsvOptions",
    "CursorKind",
    "DatasetRoute",
    "DropFormat",
    "FileDropConfig",
    "GatewayConfig",
    "SourceCommon",
    "TableSourceConfig",
    "expand_env_refs",
    "resolve_path",
]

ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
IDENT = r"^[a-z][a-z0-9_]*$"
NAME = r"^[a-z0-9][a-z0-9_.-]*$"
_SQL_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env_refs(text: str, env: Mapping[str, str], *, strict: bool = True) -> str:
    """``${NAME}`` replaced by the variable's value; an unset one is an error when ``strict``
    (else left as written, for checks that do not require the environment)."""

    def sub(m: re.Match[str]) -> str:
        value = env.get(m.group(1))
        if value:
            return value
        if strict:
            raise ValueError(f"environment variable {m.group(1)} is not set")
        return m.group(0)

    return _ENV_REF.sub(sub, text)


def resolve_path(value: Path, info: ValidationInfo) -> Path:
    """``value`` with ``${NAME}`` expanded from the environment (``context['env']``, default
    ``os.environ``), made absolute against the config file's directory (``context['base_dir']``).
    """
    ctx = info.context or {}
    if "${" in str(value):
        env = ctx.get("env")
        value = Path(expand_env_refs(str(value), os.environ if env is None else env,
                                     strict=ctx.get("strict_env", True)))
    base = ctx.get("base_dir")
    if value.is_absolute() or base is None:
        return value
    return (Path(base) / value).resolve()


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SourceCommon(_Frozen):
    name: str = Field(pattern=NAME, max_length=100)


class DatasetRoute(_Frozen):
    """A dataset an agency may publish; ``key_fields`` (raw field names) build the message key
    (values joined by ``|``); without them records are produced without a key."""

    dataset: str = Field(pattern=IDENT)
    key_fields: tuple[str, ...] = ()


class AgencyAccess(_Frozen):
    """One agency's credentials and datasets. Exactly one of ``token_sha256`` (hex SHA-256 of
    the bearer token) or ``token_env`` (the env var holding the token itself)."""

    token_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    token_env: str | None = Field(default=None, pattern=ENV_NAME)
    datasets: tuple[DatasetRoute, ...] = Field(
        default=(), description="what it publishes (none: an agency that only verifies)")

    @field_validator("datasets", mode="before")
    @classmethod
    def _names(cls, v: Any) -> Any:
        if isinstance(v, list | tuple):
            return [{"dataset": d} if isinstance(d, str) else d for d in v]
        return v

    @model_validator(mode="after")
    def _one_token(self) -> AgencyAccess:
        if (self.token_sha256 is None) == (self.token_env is None):
            raise ValueError("give exactly one of token_sha256 or token_env")
        return self

    def route(self, dataset: str) -> DatasetRoute | None:
        for r in self.datasets:
            if r.dataset == dataset:
                return r
        return None


class GatewayConfig(SourceCommon):
    """HTTP ingest gateway: agencies POST JSON records, produced as Avro to raw topics."""

    type: Literal["http_gateway"] = "http_gateway"
    host: str | None = Field(default=None, description="default: settings.gateway_host")
    port: int | None = Field(default=None, ge=0, le=65535,
                             description="default: settings.gateway_port")
    agencies: dict[str, AgencyAccess] = Field(min_length=1)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_records: int = Field(default=1000, ge=1)
    max_depth: int = Field(default=8, ge=2, le=100)
    produce_timeout_s: float = Field(default=30.0, gt=0)
    schema_ttl_s: float = Field(default=30.0, ge=0,
                                description="how long the latest raw schema id is cached")
    idempotency_ttl_s: float = Field(default=86_400.0, gt=0)
    idempotency_max_keys: int = Field(default=100_000, ge=1)
    header_timeout_s: float = Field(default=10.0, gt=0,
                                    description="a request's headers must arrive within this")
    body_timeout_s: float = Field(default=30.0, gt=0,
                                  description="a request's body must arrive within this (408)")
    openapi: bool = Field(default=False, description="serve /openapi.json (never /docs: its "
                          "page loads scripts from a CDN, which offline networks cannot reach)")
    verify_datasets: tuple[str, ...] = Field(
        default=(), description="datasets whose claims it answers (POST /v1/verify/{dataset})")

    @field_validator("agencies")
    @classmethod
    def _agency_ids(cls, v: dict[str, AgencyAccess]) -> dict[str, AgencyAccess]:
        for agency in v:
            if not re.match(IDENT, agency):
                raise ValueError(f"agency id {agency!r} must match {IDENT}")
        return v


class DropFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"


class CsvOptions(_Frozen):
    """The first row names the columns (raw schema field names)."""

    delimiter: str = Field(default=",", min_length=1, max_length=1)
    quotechar: str = Field(default='"', min_length=1, max_length=1)
    null_values: tuple[str, ...] = Field(default=("",),
                                         description="cells read as null for nullable fields")


class FileDropConfig(SourceCommon):
    """Watches ``directory`` for files matching ``pattern``; finished files move to ``done/``
    (or ``failed/`` when unreadable as a whole)."""

    type: Literal["file_drop"] = "file_drop"
    agency: str = Field(pattern=IDENT)
    dataset: str = Field(pattern=IDENT)
    key_fields: tuple[str, ...] = ()
    directory: Path
    pattern: str = "*.csv"
    format: DropFormat = DropFormat.CSV
    encoding: str = "utf-8"
    csv: CsvOptions = CsvOptions()
    chunk_lines: int = Field(default=500, ge=1, le=100_000)
    poll_interval_s: float = Field(default=1.0, gt=0)
    settle_s: float = Field(default=1.0, ge=0,
                            description="a file must be unchanged this long before it is read")
    incomplete_after_s: float = Field(
        default=300.0, gt=0, description="a file unchanged this long without a final newline "
        "moves to failed/")
    state_file: Path | None = Field(default=None,
                                    description="default: <directory>/.shulian/<name>.json")
    produce_timeout_s: float = Field(default=30.0, gt=0)

    @field_validator("directory", "state_file")
    @classmethod
    def _resolve(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        return None if v is None else resolve_path(v, info)

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, v: str) -> str:
        import codecs

        try:
            codecs.lookup(v)
        except LookupError:
            raise ValueError(f"unknown encoding {v!r}") from None
        return v

    @property
    def state_path(self) -> Path:
        return self.state_file or self.directory / ".shulian" / f"{self.name}.json"


class CursorKind(StrEnum):
    ID = "id"  # a strictly increasing column (serial, bigint id): no tie-breaker needed
    TIMESTAMP = "timestamp"  # updated_at-style: ties broken by the primary key


class TableSourceConfig(SourceCommon):
    """Polls a PostgreSQL table incrementally by ``cursor_column``; the position is kept in
    ``state_file`` (written atomically after each acknowledged batch)."""

    type: Literal["postgres_table"] = "postgres_table"
    agency: str = Field(pattern=IDENT)
    dataset: str = Field(pattern=IDENT)
    key_fields: tuple[str, ...] = ()
    dsn_env: str = Field(pattern=ENV_NAME, description="env var holding the libpq DSN")
    table: str = Field(description="table, optionally schema-qualified: schema.table")
    cursor_column: str
    cursor_kind: CursorKind = CursorKind.ID
    primary_key: str | None = Field(default=None,
                                    description="tie-breaker; required for cursor_kind timestamp")
    columns: dict[str, str] = Field(default_factory=dict,
                                    description="raw field -> column; default: same name, any case")
    batch_size: int = Field(default=500, ge=1, le=100_000)
    poll_interval_s: float = Field(default=1.0, gt=0)
    safety_lag_s: float = Field(default=0.0, ge=0, description=(
        "timestamp cursors: only read rows older than now() minus this, so rows committed late "
        "by long transactions are not skipped"))
    state_file: Path
    connect_timeout_s: float = Field(default=5.0, gt=0)
    produce_timeout_s: float = Field(default=30.0, gt=0)

    @field_validator("state_file")
    @classmethod
    def _resolve(cls, v: Path, info: ValidationInfo) -> Path:
        return resolve_path(v, info)

    @field_validator("table")
    @classmethod
    def _table(cls, v: str) -> str:
        parts = v.split(".")
        if len(parts) > 2 or not all(_SQL_IDENT.match(p) for p in parts):
            raise ValueError("must be table or schema.table (letters, digits, underscore)")
        return v

    @field_validator("cursor_column", "primary_key")
    @classmethod
    def _ident(cls, v: str | None) -> str | None:
        if v is not None and not _SQL_IDENT.match(v):
            raise ValueError("must be a plain column name (letters, digits, underscore)")
        return v

    @field_validator("columns")
    @classmethod
    def _columns(cls, v: dict[str, str]) -> dict[str, str]:
        for col in v.values():
            if not _SQL_IDENT.match(col):
                raise ValueError(f"column {col!r} must be a plain column name")
        return v

    @model_validator(mode="after")
    def _tiebreak(self) -> TableSourceConfig:
        if self.cursor_kind is CursorKind.TIMESTAMP and not self.primary_key:
            raise ValueError("cursor_kind timestamp needs primary_key as the tie-breaker")
        return self
