"""Sink connector configs: one frozen pydantic model per ``type``.

Common to every sink: ``name``, ``topics`` (egress topics), ``group_id`` (default
``shulian-sink-<name>``), ``batch_size``, ``poll_timeout_s``, ``retry`` and ``deadletter_topic``
(default ``deadletter._sink.<name>``). Secrets are never in the file: a field ending in ``_env``
names the environment variable that holds the secret (read when the sink is built).
"""

from __future__ import annotations

import os
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from shulian.chain.topology import sink_group
from shulian.connectors.sinks.backoff import RetryPolicy
from shulian.connectors.sinks.failures import deadletter_topic
from shulian.errors import ConfigError, ConfigIssue

__all__ = [
    "FileFormat",
    "FileSinkConfig",
    "KafkaBridgeSinkConfig",
    "PostgresSinkConfig",
    "SinkCommon",
    "WebhookSinkConfig",
    "env_secret",
]

_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


def env_secret(var: str, *, field: str, file: str = "<environment>") -> SecretStr:
    """The secret in environment variable ``var``; ConfigError naming the field when unset."""
    value = os.environ.get(var)
    if not value:
        raise ConfigError([ConfigIssue(file, field, f"environment variable {var} is not set")])
    return SecretStr(value)


class SinkCommon(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=100)
    topics: tuple[str, ...] = Field(min_length=1)
    group_id: str | None = None
    batch_size: int = Field(default=500, ge=1, le=100_000)
    poll_timeout_s: float = Field(default=0.5, gt=0, le=60)
    deadletter_topic: str | None = None
    retry: RetryPolicy = RetryPolicy()

    @property
    def consumer_group(self) -> str:
        return self.group_id or sink_group(self.name)

    @property
    def deadletter(self) -> str:
        return self.deadletter_topic or deadletter_topic(self.name)


class PostgresSinkConfig(SinkCommon):
    """Upserts each view into a table (created and evolved from the view schema)."""

    type: Literal["postgres"] = "postgres"
    dsn_env: str = Field(pattern=_ENV_NAME, description="env var holding the libpq DSN")
    db_schema: str = "public"
    table: str = Field(default="{consumer}_{dataset}",
                       description="table name template: {consumer}, {dataset}, {topic}")
    connect_timeout_s: float = Field(default=5.0, gt=0)

    def dsn(self) -> SecretStr:
        return env_secret(self.dsn_env, field="dsn_env")


class WebhookSinkConfig(SinkCommon):
    """POSTs signed JSON batches; after ``retry.max_attempts`` a batch is dead-lettered."""

    type: Literal["webhook"] = "webhook"
    url: str = Field(pattern=r"^https?://")
    secret_env: str = Field(pattern=_ENV_NAME, description="env var holding the HMAC secret")
    timeout_s: float = Field(default=10.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)
    retry: RetryPolicy = RetryPolicy(max_attempts=5, initial_backoff_s=0.5, max_backoff_s=30.0)

    def secret(self) -> SecretStr:
        return env_secret(self.secret_env, field="secret_env")


class FileFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


class FileSinkConfig(SinkCommon):
    """Appends batches to JSON Lines or CSV files, atomically, rotated by size or age."""

    type: Literal["files"] = "files"
    directory: str
    format: FileFormat = FileFormat.JSONL
    rotate_bytes: int = Field(default=16 * 1024 * 1024, ge=1)
    rotate_seconds: float = Field(default=3600.0, gt=0)

    @field_validator("directory")
    @classmethod
    def _not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("directory must not be empty")
        return v


class KafkaBridgeSinkConfig(SinkCommon):
    """Forwards raw messages (key, value bytes, headers) to the consumer's own Kafka cluster."""

    type: Literal["kafka_bridge"] = "kafka_bridge"
    target_bootstrap_servers: str
    topic_template: str = Field(default="{topic}",
                                description="target topic: {topic}, {consumer}, {dataset}")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username_env: str | None = Field(default=None, pattern=_ENV_NAME)
    sasl_password_env: str | None = Field(default=None, pattern=_ENV_NAME)
    timeout_s: float = Field(default=30.0, gt=0)

    def sasl(self) -> tuple[str, SecretStr] | None:
        if self.sasl_mechanism is None:
            return None
        if not self.sasl_username_env or not self.sasl_password_env:
            raise ConfigError([ConfigIssue("<config>", "sasl_username_env",
                                           "sasl_mechanism needs sasl_username_env and "
                                           "sasl_password_env")])
        user = env_secret(self.sasl_username_env, field="sasl_username_env")
        return user.get_secret_value(), env_secret(self.sasl_password_env,
                                                   field="sasl_password_env")
