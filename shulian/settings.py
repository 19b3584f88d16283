"""Settings: one pydantic-settings model, env prefix ``SHULIAN_``, overridable per command.

Every CLI option falls back to the matching ``SHULIAN_<NAME>`` variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shulian.log import LogFormat, get_logger
from shulian.logic.clock import SYSTEM_CLOCK, Clock, parse_clock

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Everything a Shulian process reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="SHULIAN_", frozen=True, extra="ignore")

    # logging
    log_level: str = "INFO"
    log_format: LogFormat = "auto"

    # Kafka
    bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    default_partitions: int = Field(default=3, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    # enable.idempotence on producers: no duplicates or reordering from producer retries.
    # Off by default because the embedded broker (Tansu) is the default; docker-compose turns it
    # on for real Kafka (docs/DEPLOY.md).
    kafka_idempotence: bool = False

    # schema registry
    registry_url: str = "http://127.0.0.1:8081"
    registry_host: str = "127.0.0.1"
    registry_port: int = 8081
    schemas_topic: str = "_schemas"

    # catalogue and schemas
    catalog_dir: Path = REPO_ROOT / "catalog"
    schemas_dir: Path = REPO_ROOT / "schemas"
    connectors_dir: Path = REPO_ROOT / "connectors" / "examples"

    # chain
    audit_topic: str = "audit.decisions"
    control_topic: str = "control.sharing-list"
    worker_id: str = "worker-1"
    batch_size: int = Field(default=1000, ge=1)
    # how long an agent waits to fill a batch: under load batches fill long before it; at
    # 1,000 rec/s it is paid once per hop (0.05 -> 0.01 s: latency p99 541-840 -> 266-298 ms)
    batch_within_s: float = Field(default=0.01, gt=0)
    hmac_master_key: SecretStr | None = None
    # the decision clock (shulian/logic/clock.py): "system", a fixed ISO instant with a zone or
    # a signed offset (+200d). A test and drill facility; logged as clock.injected when used.
    clock: str = "system"

    # embedded stack
    data_dir: Path | None = None
    broker_port: int = 9092
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8088
    metrics_port: int = 9464
    metrics_host: str = "127.0.0.1"  # 0.0.0.0 in containers so Prometheus can scrape

    @field_validator("clock")
    @classmethod
    def _known_clock(cls, value: str) -> str:
        parse_clock(value)  # ValueError names the accepted forms
        return value

    def decision_clock(self) -> Clock:
        """The clock every decision of this process takes "now" from (logged when injected)."""
        clock = parse_clock(self.clock)
        if clock is not SYSTEM_CLOCK:
            get_logger("shulian.clock").warning("clock.injected", clock=clock.label,
                                                setting="SHULIAN_CLOCK")
        return clock

    def kafka_common(self) -> dict[str, Any]:
        """librdkafka settings shared by every producer and consumer."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            conf["sasl.mechanism"] = self.kafka_sasl_mechanism
            conf["sasl.username"] = self.kafka_sasl_username or ""
            pw = self.kafka_sasl_password
            conf["sasl.password"] = pw.get_secret_value() if pw else ""
        return conf


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with explicit (CLI) overrides applied on top."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**clean)
