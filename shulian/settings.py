"""Settings: one pydantic-settings model, env prefix ``SHULIAN_``, overridable per command.

Every CLI option falls back to the matching ``SHULIAN_<NAME>`` variable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shulian.clock import SYSTEM_CLOCK, Clock, parse_clock
from shulian.errors import ConfigError, ConfigIssue
from shulian.log import LogFormat, get_logger

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
    # TLS towards the broker (SSL / SASL_SSL): the CA that signed the brokers' certificates, and
    # a client certificate and key where the listener wants one (docs/SECURITY.md)
    kafka_ssl_ca_location: Path | None = None
    kafka_ssl_certificate_location: Path | None = None
    kafka_ssl_key_location: Path | None = None

    # identity: who this process is (a principal of shulian.perimeter.identities, e.g. `chain`,
    # `agency.psb`, `sink.tax-business-licence-pg`) and its secret, from the environment
    # (SHULIAN_SECRET) or a file (SHULIAN_SECRET_FILE), never from argv. SCRAM on SASL
    # listeners and HTTP Basic towards the registry use it.
    principal: str | None = None
    secret: SecretStr | None = None
    secret_file: Path | None = None
    # every principal's secret, one file per principal named like it (mode 0600): read by
    # `shulian acl apply` (SCRAM credentials) and the registry (HTTP Basic); unset = no auth
    credentials_dir: Path | None = None
    # a process that acts as several principals (`connect run`: each connector as
    # `source.<name>` or `sink.<name>`) finds each one's secret here, in a file named like the
    # principal (mode 0600); holds only those principals' secrets (`shulian up` makes it)
    principal_secrets_dir: Path | None = None
    # HTTPS: the CA clients verify the registry and gateway against, and the certificate and key
    # the registry and gateway serve (both unset = plain HTTP on loopback)
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None

    # schema registry
    registry_url: str = "http://127.0.0.1:8081"
    registry_host: str = "127.0.0.1"
    registry_port: int = 8081
    schemas_topic: str = "_schemas"
    # every call to the registry gives up after this (connect, read, write: httpx's timeout),
    # retried this many times: a registry that hangs (SIGSTOP, a full disk) must not hang a
    # worker, a connector or a command for longer. 30 s: a registry write waits for the
    # _schemas topic's acks=all, which a three-node Kafka cluster just back from an outage
    # took over 5 s to give (measured: a worker's start-up registration timed out at 5 s)
    registry_timeout_s: float = Field(default=30.0, gt=0)
    registry_retries: int = Field(default=1, ge=0)

    # catalogue and schemas
    catalog_dir: Path = REPO_ROOT / "catalog"
    schemas_dir: Path = REPO_ROOT / "schemas"
    connectors_dir: Path = REPO_ROOT / "connectors" / "examples"

    # chain
    worker_id: str = "worker-1"
    batch_size: int = Field(default=1000, ge=1)
    # how long an agent waits to fill a batch: under load batches fill long before it; at
    # 1,000 rec/s it is paid once per hop (0.05 -> 0.01 s: latency p99 541-840 -> 266-298 ms)
    batch_within_s: float = Field(default=0.01, gt=0)
    hmac_master_key: SecretStr | None = None
    # a chain worker keeps the verification changelogs of the datasets with a verify entry:
    # it follows them and writes a record again when an older one (at the source) arrived
    # after it, so compaction keeps the newest (docs/VERIFY.md, "Supersession"). It holds the
    # store in memory (about 240 MB per million keys); off: rebuilds after compaction may
    # lose a newer record whose older sibling was written after it
    verify_keeper: bool = True
    # the chain's Ed25519 signing key (egress and audit signatures, docs/SECURITY.md): PKCS#8
    # PEM or base64 of the 32-byte seed, inline or in a file; its public half is a
    # ``chain`` key in catalog/keys.yaml. Never logged.
    signing_key: SecretStr | None = None
    signing_key_file: Path | None = None
    # signed checkpoints of the audit chain heads, outside Kafka (shulian/io/checkpoints.py):
    # "postgresql://..." (an INSERT-only role) or a file path; unset: none are written. The
    # DSN may hold a password: never logged. Written every N records or T seconds.
    audit_checkpoint_store: SecretStr | None = None
    audit_checkpoint_records: int = Field(default=10_000, gt=0)
    audit_checkpoint_seconds: float = Field(default=10.0, gt=0)
    # accept the catalogue's development keys (catalog/dev-keys: private halves in the repo);
    # ``shulian up``/``demo`` and the tests set it, production never does
    allow_dev_keys: bool = False
    # the decision clock (shulian/clock.py): "system", a fixed ISO instant with a zone or
    # a signed offset (+200d). A test and drill facility; logged as clock.injected when used.
    clock: str = "system"

    # embedded stack
    data_dir: Path | None = None
    # where `shulian up` keeps its children's state and restart counts (JSON; the console's
    # health table shows them); set by `up` for its children
    stack_status_file: Path | None = None
    broker_port: int = 9092
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8088
    metrics_port: int = 9464
    metrics_host: str = "127.0.0.1"  # 0.0.0.0 in containers so Prometheus can scrape

    # console (shulian/console): its address and the two non-agency principals' tokens (agencies
    # log in with their gateway tokens); the session key signs cookies (default: per process)
    console_host: str = "127.0.0.1"
    console_port: int = 8090
    console_governance_token: SecretStr | None = None
    console_auditor_token: SecretStr | None = None
    console_session_key: SecretStr | None = None
    # the folder of proposed list versions: the list files `shulian sharing propose` makes and
    # `sharing sign` signs (one file per proposal); the console shows them with their
    # signatures, adds uploaded ones to the same files and publishes them (unset: none shown)
    sharing_proposals_dir: Path | None = None

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

    def identity_secret(self) -> SecretStr | None:
        """This process's secret: SHULIAN_SECRET, else the first line of SHULIAN_SECRET_FILE
        (read on each call, so a rotated file is picked up by the next connection)."""
        if self.secret is not None:
            return self.secret
        if self.secret_file is None:
            return None
        try:
            text = self.secret_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError([ConfigIssue(str(self.secret_file), "SHULIAN_SECRET_FILE",
                                           f"cannot read: {exc.strerror or exc}")]) from None
        lines = text.splitlines()
        return SecretStr(lines[0].strip()) if lines and lines[0].strip() else None

    def for_principal(self, name: str) -> Settings:
        """These settings acting as principal ``name``, its secret read from
        ``principal_secrets_dir/<name>`` (unchanged when no such folder is configured)."""
        if self.principal_secrets_dir is None:
            return self
        return self.model_copy(update={"principal": name, "secret": None,
                                       "secret_file": self.principal_secrets_dir / name})

    def registry_auth_conf(self) -> dict[str, Any]:
        """SchemaRegistryClient settings for this identity: HTTP Basic (the principal and its
        secret) and the CA that signed the registry's certificate. Holds a secret: never log."""
        conf: dict[str, Any] = {}
        if self.principal:
            secret = self.identity_secret()
            if secret is None:
                raise ConfigError([ConfigIssue("<environment>", "SHULIAN_SECRET",
                                               f"principal {self.principal} has no secret "
                                               "(set SHULIAN_SECRET or SHULIAN_SECRET_FILE)")])
            conf["basic.auth.user.info"] = f"{self.principal}:{secret.get_secret_value()}"
        if self.tls_ca_file is not None:
            conf["ssl.ca.location"] = str(self.tls_ca_file)
        return conf


    def registry_client_conf(self) -> dict[str, Any]:
        """SchemaRegistryClient settings: the URL, this identity (``registry_auth_conf``) and
        the timeout and retries of every call. Holds a secret: never log."""
        return {"url": self.registry_url, "timeout": self.registry_timeout_s,
                "max.retries": self.registry_retries, "retries.wait.ms": 200,
                "retries.max.wait.ms": 1000, **self.registry_auth_conf()}

def _pick(value: T | None, default: T) -> T:
    return default if value is None else value


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with explicit (CLI) overrides applied on top."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**clean)
