"""Who connects to the chain: one principal per agency and per component, derived from the
catalogue and the connector configs (pure: no Kafka, no HTTP).

Principal names (the SASL/SCRAM user and the registry's HTTP Basic user are the same name):

    agency.<agency id>     an agency's own systems (publish raw, read its egress and dead letters)
    source.<connector>     a source connector (the HTTP gateway, a file drop, a table poller)
    sink.<connector>       a sink connector
    chain                  the chain worker (and the replay tooling that writes as the chain)
    registry               the schema registry
    governance             the data governance office: the only writer of list versions
    auditor                auditors: read the audit log and the list versions

A name parses back to exactly one principal (:meth:`Principal.parse`), so ACLs on a cluster can
be told apart: those on a parseable principal are Shulian's to manage, others are left alone.
The role is the first dot-separated label and the fixed roles have no second one, so two
principals never share a name.
"""

from __future__ import annotations

import re
import secrets as _secrets
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pydantic import SecretStr

from shulian.errors import ConfigError, ConfigIssue

__all__ = [
    "ConnectorAccess",
    "Identities",
    "Principal",
    "Role",
    "SinkAccess",
    "SourceAccess",
    "derive_identities",
    "generate_credentials",
    "load_credentials",
]


class Role(StrEnum):
    AGENCY = "agency"
    SOURCE = "source"
    SINK = "sink"
    CHAIN = "chain"
    REGISTRY = "registry"
    GOVERNANCE = "governance"
    AUDITOR = "auditor"


SINGLE = (Role.CHAIN, Role.REGISTRY, Role.GOVERNANCE, Role.AUDITOR)
_SUBJECT = {
    Role.AGENCY: re.compile(r"^[a-z][a-z0-9_]{1,63}$"),  # the catalogue's agency id
    Role.SOURCE: re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$"),  # connector names
    Role.SINK: re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$"),
}


@dataclass(frozen=True, order=True)
class Principal:
    """One identity. ``subject``: the agency id or connector name ("" for the fixed roles)."""

    role: Role
    subject: str = ""

    def __post_init__(self) -> None:
        if self.role in SINGLE:
            if self.subject:
                raise ValueError(f"principal {self.role} takes no subject")
        elif not _SUBJECT[self.role].match(self.subject):
            raise ValueError(f"{self.role} name {self.subject!r} must match "
                             f"{_SUBJECT[self.role].pattern}")

    @property
    def name(self) -> str:
        return f"{self.role}.{self.subject}" if self.subject else str(self.role)

    @property
    def kafka(self) -> str:
        """The Kafka principal string of ACL bindings."""
        return f"User:{self.name}"

    @classmethod
    def parse(cls, name: str) -> Principal | None:
        """The principal called ``name`` (``User:`` prefix allowed), None if not Shulian's."""
        name = name.removeprefix("User:")
        head, dot, rest = name.partition(".")
        try:
            role = Role(head)
        except ValueError:
            return None
        if (role in SINGLE) == bool(dot):
            return None
        try:
            return cls(role, rest)
        except ValueError:
            return None


# --- what connector configs say about access (built from the configs by perimeter.connectors) -


@dataclass(frozen=True)
class SourceAccess:
    """A source connector: the raw topics it writes for which agency, and whether it writes
    those pairs' dead letters (a file drop and a table poller do, the gateway answers 422)."""

    name: str
    pairs: tuple[tuple[str, str], ...]
    writes_deadletters: bool
    verifies: tuple[str, ...] = ()  # datasets whose verifications it answers (a gateway)


@dataclass(frozen=True)
class SinkAccess:
    """A sink connector: the topics it reads, its consumer group and its dead-letter topic."""

    name: str
    topics: tuple[str, ...]
    group: str
    deadletter: str


@dataclass(frozen=True)
class ConnectorAccess:
    sources: tuple[SourceAccess, ...] = ()
    sinks: tuple[SinkAccess, ...] = ()


@dataclass(frozen=True)
class Identities:
    """Every principal of a deployment, sorted."""

    principals: tuple[Principal, ...]

    def names(self) -> list[str]:
        return [p.name for p in self.principals]

    def agencies(self) -> list[Principal]:
        return [p for p in self.principals if p.role is Role.AGENCY]

    def __contains__(self, item: object) -> bool:
        return item in self.principals


def derive_identities(agencies: Iterable[str], connectors: ConnectorAccess) -> Identities:
    """One principal per agency of the catalogue and per connector, plus the fixed roles."""
    found = {Principal(r) for r in SINGLE}
    found |= {Principal(Role.AGENCY, a) for a in agencies}
    found |= {Principal(Role.SOURCE, s.name) for s in connectors.sources}
    found |= {Principal(Role.SINK, s.name) for s in connectors.sinks}
    return Identities(tuple(sorted(found)))


# --- secrets on disk -----------------------------------------------------------------------


def _check_private(path: Path) -> ConfigIssue | None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return ConfigIssue(str(path), "<file>",
                           f"readable by others (mode {stat.S_IMODE(mode):o}); chmod 600 it")
    return None


def load_credentials(directory: Path, principals: Iterable[Principal], *,
                     required: bool = True) -> dict[str, SecretStr]:
    """Each principal's secret from ``<directory>/<principal name>`` (first line, mode 0600).

    ConfigError naming every missing, unreadable or group/other-readable file when ``required``;
    otherwise missing files are skipped."""
    out: dict[str, SecretStr] = {}
    issues: list[ConfigIssue] = []
    for p in principals:
        path = directory / p.name
        if not path.exists():
            if required:
                issues.append(ConfigIssue(str(path), "<file>",
                                          f"no secret for principal {p.name}"))
            continue
        bad = _check_private(path)
        if bad is not None:
            issues.append(bad)
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        if not lines or not lines[0].strip():
            issues.append(ConfigIssue(str(path), "<file>", "empty secret"))
            continue
        out[p.name] = SecretStr(lines[0].strip())
    if issues:
        raise ConfigError(issues)
    return out


def generate_credentials(directory: Path, principals: Iterable[Principal]) -> list[str]:
    """Create a random secret (mode 0600) for every principal that has none; returns the names
    created. Existing secrets are kept (rotation replaces a file on purpose, see SECURITY.md)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    made: list[str] = []
    for p in principals:
        path = directory / p.name
        if path.exists():
            continue
        path.touch(mode=0o600)
        path.write_text(_secrets.token_urlsafe(32) + "\n", encoding="utf-8")
        made.append(p.name)
    return made


def secrets_by_name(secrets: Mapping[str, SecretStr]) -> dict[str, bytes]:
    """Secrets as bytes, for comparisons and SCRAM (never logged)."""
    return {k: v.get_secret_value().encode() for k, v in secrets.items()}
