"""The secured stack of ``shulian up --engine kafka``: where its secrets and TLS files live and
what each child is given to connect as its own principal (docs/SECURITY.md).

- The broker (``shulian broker --secure``) keeps its TLS material under ``<broker>/tls`` (the
  CA clients verify it with) and bootstraps the super user ``admin`` from a secret file.
- Every Shulian principal of the plan (:mod:`shulian.perimeter.identities`) has a development
  secret in ``<state>/credentials/<principal>`` (folder 0700, files 0600), made once and kept
  with a ``--data-dir``; the ones made by this run are printed once by ``up``, never logged.
- ``up`` applies the SCRAM users and ACLs of the plan as ``admin`` once the broker is ready and
  before any other child starts; ``acl sync`` (a child, as ``admin``) then moves the ACLs with
  the list versions.
- Each child gets its identity in its environment: ``SHULIAN_PRINCIPAL`` and
  ``SHULIAN_SECRET_FILE`` (a path: the secret is never in argv or in the environment), the
  protocol and the CA. The connect child runs several connectors, each as its own principal,
  with ``SHULIAN_PRINCIPAL_SECRETS_DIR``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from shulian.embedded.kafka_config import ADMIN_PRINCIPAL, SCRAM_MECHANISM
from shulian.perimeter.identities import Principal, Role
from shulian.settings import Settings

__all__ = ["ADMIN", "StackSecurity", "secured_broker_answers"]

ADMIN = ADMIN_PRINCIPAL  # the broker's super user
PROTOCOL = "SASL_SSL"

# the principal each child of the stack runs as (the connect child: one per connector)
CHILD_PRINCIPALS: Mapping[str, Principal] = {
    "registry": Principal(Role.REGISTRY),
    "worker": Principal(Role.CHAIN),
    # the console shows the chain's own view (raw, canonical, dead letters, audit, the worker
    # group's lag) to the users it authenticates itself: it reads as the chain
    "console": Principal(Role.CHAIN),
}
INIT_PRINCIPAL = Principal(Role.GOVERNANCE)  # creates the chain's topics, registers schemas


@dataclass(frozen=True)
class StackSecurity:
    """The secured stack's files. ``generated``: the secrets made by this run (shown once)."""

    broker_data: Path  # the broker's --data-dir: its TLS files are in kafka/tls
    credentials: Path  # one secret file per Shulian principal
    admin_secret_file: Path
    generated: Mapping[str, SecretStr] = field(default_factory=dict)

    @property
    def ca_file(self) -> Path:
        return self.broker_data / "kafka" / "tls" / "ca.pem"

    def broker_args(self) -> list[str]:
        """``shulian broker`` options of the secured broker (paths only, never a secret)."""
        return ["--secure", "--data-dir", str(self.broker_data),
                "--admin-secret-file", str(self.admin_secret_file)]

    def kafka_env(self) -> dict[str, str]:
        return {"SHULIAN_KAFKA_SECURITY_PROTOCOL": PROTOCOL,
                "SHULIAN_KAFKA_SSL_CA_LOCATION": str(self.ca_file)}

    def identity_env(self, principal: str) -> dict[str, str]:
        """What a child needs to connect as ``principal`` (the secret by path)."""
        secret = self.admin_secret_file if principal == ADMIN else self.credentials / principal
        return {**self.kafka_env(), "SHULIAN_PRINCIPAL": principal,
                "SHULIAN_SECRET_FILE": str(secret)}

    def child_env(self, child: str) -> dict[str, str]:
        """The identity of the stack's child ``child`` (empty when it talks to no broker)."""
        if child in CHILD_PRINCIPALS:
            env = self.identity_env(CHILD_PRINCIPALS[child].name)
            if child == "registry":  # it checks every principal's HTTP Basic credentials
                env["SHULIAN_CREDENTIALS_DIR"] = str(self.credentials)
            return env
        if child == "connect":
            return {**self.kafka_env(), "SHULIAN_PRINCIPAL_SECRETS_DIR": str(self.credentials)}
        if child == "acl-sync":  # creates SCRAM users and ACLs: the super user
            return {**self.identity_env(ADMIN), "SHULIAN_CREDENTIALS_DIR": str(self.credentials)}
        return {}

    def settings_as(self, settings: Settings, principal: str) -> Settings:
        """``settings`` connecting as ``principal`` (for what ``up`` does itself)."""
        secret = self.admin_secret_file if principal == ADMIN else self.credentials / principal
        return settings.model_copy(update={
            "kafka_security_protocol": PROTOCOL, "kafka_ssl_ca_location": self.ca_file,
            "principal": principal, "secret": None, "secret_file": secret,
            "credentials_dir": self.credentials})


def secured_broker_answers(bootstrap: str, security: StackSecurity, *,
                           timeout_s: float = 1.0) -> bool:
    """True when the secured broker answers the admin's metadata request (False until the
    broker has made its CA and the admin's secret)."""
    from confluent_kafka.admin import AdminClient

    if not (security.ca_file.is_file() and security.admin_secret_file.is_file()):
        return False
    lines = security.admin_secret_file.read_text("utf-8").splitlines()
    if not lines:
        return False
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0,
                         "security.protocol": PROTOCOL, "sasl.mechanism": SCRAM_MECHANISM,
                         "sasl.username": ADMIN, "sasl.password": lines[0].strip(),
                         "ssl.ca.location": str(security.ca_file)})
    return len(admin.list_topics(timeout=timeout_s).brokers) > 0
