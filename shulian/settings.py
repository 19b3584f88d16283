"""Settings: one pydantic-settings model, env prefix ``SHULIAN_``, overridable per command.

Every CLI option falls back to the matching ``SHULIAN_<NAME>`` variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shulian.log import LogFormat

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
    # the chain's Ed25519 signing key (egress and audit signatures, docs/SECURITY.md): PKCS#8
    # PEM or base64 of the 32-byte seed, inline or in a file; its public half is a
    # ``chain`` key in catalog/keys.yaml. Never logged.
    signing_key: SecretStr | None = None
    signing_key_file: Path | None = None
    # accept the catalogue's development keys (catalog/dev-keys: private halves in the repo);
    # ``shulian up``/``demo`` and the tests set it, production never does
    allow_dev_keys: bool = False

    # embedded stack
    data_dir: Path | None = None
    broker_port: int = 9092
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8088
    metrics_port: int = 9464
    metrics_host: str = "127.0.0.1"  # 0.0.0.0 in containers so Prometheus can scrape

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
