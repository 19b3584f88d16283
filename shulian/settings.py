"""Settings: one pydantic-settings model, env prefix ``SHULIAN_``, overridable per command.

Every CLI option falls back to the matching ``SHULIAN_<NAME>`` variable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shulian.log import LogFormat

REPO_ROOT = Path(__file__).resolve().parent.parent

BrokerEngine = Literal["tansu", "kafka"]
T = TypeVar("T")


@dataclass(frozen=True)
class EngineBehaviour:
    """How the clients treat the broker; defaults per engine in :data:`ENGINE_DEFAULTS`, each
    overridable by its SHULIAN_* variable. docs/DEPLOY.md gives every value and its reason."""

    fetch_max_wait_ms: int  # the Faust consumer's fetch wait (Tansu answers only when it ends)
    session_timeout_ms: int  # consumer groups: how long a silent member keeps its partitions
    heartbeat_interval_ms: int
    idempotence: bool  # enable.idempotence on producers
    trust_watermarks: bool  # a partition's high watermark covers every acknowledged write


ENGINE_DEFAULTS: dict[BrokerEngine, EngineBehaviour] = {
    "tansu": EngineBehaviour(fetch_max_wait_ms=10, session_timeout_ms=6000,
                             heartbeat_interval_ms=500, idempotence=False,
                             trust_watermarks=False),
    "kafka": EngineBehaviour(fetch_max_wait_ms=500, session_timeout_ms=10000,
                             heartbeat_interval_ms=1000, idempotence=True,
                             trust_watermarks=True),
}


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
    # which broker the clients talk to: the embedded Tansu (default) or Apache Kafka. The
    # fields below left unset take that engine's value from ENGINE_DEFAULTS (docs/DEPLOY.md).
    broker_engine: BrokerEngine = "tansu"
    kafka_idempotence: bool | None = None  # enable.idempotence on producers
    fetch_max_wait_ms: int | None = Field(default=None, ge=0)
    session_timeout_ms: int | None = Field(default=None, ge=1000)
    heartbeat_interval_ms: int | None = Field(default=None, ge=100)
    trust_watermarks: bool | None = None

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

    # embedded stack
    data_dir: Path | None = None
    broker_port: int = 9092
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8088
    metrics_port: int = 9464
    metrics_host: str = "127.0.0.1"  # 0.0.0.0 in containers so Prometheus can scrape

    def behaviour(self) -> EngineBehaviour:
        """The engine's defaults with every explicitly set field applied."""
        base = ENGINE_DEFAULTS[self.broker_engine]
        return EngineBehaviour(
            fetch_max_wait_ms=_pick(self.fetch_max_wait_ms, base.fetch_max_wait_ms),
            session_timeout_ms=_pick(self.session_timeout_ms, base.session_timeout_ms),
            heartbeat_interval_ms=_pick(self.heartbeat_interval_ms, base.heartbeat_interval_ms),
            idempotence=_pick(self.kafka_idempotence, base.idempotence),
            trust_watermarks=_pick(self.trust_watermarks, base.trust_watermarks),
        )

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


def _pick(value: T | None, default: T) -> T:
    return default if value is None else value


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with explicit (CLI) overrides applied on top."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**clean)
