"""Kafka ACL bindings as values, and Kafka's own rule for whether a set of them allows an action
(pure: no Kafka import; the adapter in :mod:`shulian.perimeter.kafka_admin` converts).

Kafka's authorizer (StandardAuthorizer, ``allow.everyone.if.no.acl.found=false``) decides:
a DENY binding that matches wins; else an ALLOW binding that matches allows; else denied.
A binding matches a resource when the types agree and its pattern is LITERAL and equal to the
name (or ``*``), or PREFIXED and a prefix of the name. READ, WRITE, DELETE and ALTER imply
DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS; ALL matches every operation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "Acl",
    "AclDiff",
    "Operation",
    "PatternType",
    "Permission",
    "ResourceType",
    "allows",
    "diff",
]


class ResourceType(StrEnum):
    TOPIC = "TOPIC"
    GROUP = "GROUP"
    CLUSTER = "CLUSTER"
    TRANSACTIONAL_ID = "TRANSACTIONAL_ID"


class PatternType(StrEnum):
    LITERAL = "LITERAL"
    PREFIXED = "PREFIXED"


class Operation(StrEnum):
    ALL = "ALL"
    READ = "READ"
    WRITE = "WRITE"
    CREATE = "CREATE"
    DELETE = "DELETE"
    ALTER = "ALTER"
    DESCRIBE = "DESCRIBE"
    DESCRIBE_CONFIGS = "DESCRIBE_CONFIGS"
    ALTER_CONFIGS = "ALTER_CONFIGS"
    CLUSTER_ACTION = "CLUSTER_ACTION"
    IDEMPOTENT_WRITE = "IDEMPOTENT_WRITE"


class Permission(StrEnum):
    ALLOW = "ALLOW"
    DENY = "DENY"


_IMPLIES: dict[Operation, frozenset[Operation]] = {
    Operation.DESCRIBE: frozenset({Operation.READ, Operation.WRITE, Operation.DELETE,
                                   Operation.ALTER}),
    Operation.DESCRIBE_CONFIGS: frozenset({Operation.ALTER_CONFIGS}),
}


@dataclass(frozen=True, order=True)
class Acl:
    """One binding: ``principal`` (``User:<name>``) may (ALLOW) or may not (DENY) perform
    ``operation`` on the resources ``name`` matches under ``pattern``, from ``host``."""

    principal: str
    resource: ResourceType
    name: str
    pattern: PatternType
    operation: Operation
    permission: Permission = Permission.ALLOW
    host: str = "*"

    def matches(self, resource: ResourceType, name: str) -> bool:
        if resource is not self.resource:
            return False
        if self.pattern is PatternType.PREFIXED:
            return name.startswith(self.name)
        return self.name in (name, "*")

    def covers(self, operation: Operation) -> bool:
        """Does this binding's operation decide ``operation``? (A DENY of READ does not deny
        DESCRIBE: implication only widens ALLOWs, as in Kafka.)"""
        if self.operation in (Operation.ALL, operation):
            return True
        return (self.permission is Permission.ALLOW
                and self.operation in _IMPLIES.get(operation, frozenset()))

    def as_dict(self) -> dict[str, str]:
        return {"principal": self.principal, "resource_type": self.resource.value,
                "resource_name": self.name, "pattern_type": self.pattern.value,
                "operation": self.operation.value, "permission": self.permission.value,
                "host": self.host}


def allows(acls: Iterable[Acl], principal: str, operation: Operation,
           resource: ResourceType, name: str) -> bool:
    """Would Kafka's authorizer, holding exactly ``acls``, allow this action? (Super users and
    the wildcard principal ``User:*`` are outside the plan: a plan never grants ``User:*``.)"""
    relevant = [a for a in acls if a.principal in (principal, "User:*")
                and a.matches(resource, name) and a.covers(operation)]
    if any(a.permission is Permission.DENY for a in relevant):
        return False
    return any(a.permission is Permission.ALLOW for a in relevant)


@dataclass(frozen=True)
class AclDiff:
    """What to change on a cluster to reach the plan."""

    add: tuple[Acl, ...]
    remove: tuple[Acl, ...]

    @property
    def empty(self) -> bool:
        return not self.add and not self.remove


def diff(desired: Iterable[Acl], actual: Iterable[Acl], *,
         managed: set[str] | None = None) -> AclDiff:
    """Bindings to add (planned, absent) and to remove (present, on a principal Shulian manages,
    not planned). Bindings on principals Shulian does not manage (an operator's ``User:admin``,
    another application) are never removed. ``managed``: the principal strings Shulian owns;
    default: every principal whose name parses as a Shulian principal."""
    from shulian.perimeter.identities import Principal

    want = set(desired)
    have = set(actual)

    def owned(principal: str) -> bool:
        if managed is not None:
            return principal in managed
        return Principal.parse(principal) is not None

    return AclDiff(add=tuple(sorted(want - have)),
                   remove=tuple(sorted(a for a in have - want if owned(a.principal))))
