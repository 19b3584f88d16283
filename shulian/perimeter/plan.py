"""The ACL plan: every Kafka ACL binding, derived from the catalogue, the connector configs and
the sharing-list version in force (pure; names from :class:`~shulian.chain.topology.Topology`).

Who may do what (the matrix in docs/SECURITY.md is generated from this):

- ``agency.<a>`` writes ``raw.<a>.*``, reads ``deadletter.<a>.*`` and each ``egress.<a>.<d>``
  the list in force grants it (a delivering entry with consumer ``a`` for dataset ``d``), uses
  consumer groups ``agency.<a>.*``; explicitly DENIED reading or writing canonical and audit
  topics, writing egress, dead-letter and control topics, and any access to ``_schemas``
  (defence in depth: a stray hand-made ALLOW does not open them).
- ``source.<c>`` writes the raw topics of the (agency, dataset) pairs its config names, and
  those pairs' dead letters when it writes them (file drop, table source).
- ``sink.<c>`` reads the egress topics of its config, in its own consumer group, and writes
  (and creates) its own ``deadletter._sink.<c>``.
- ``chain`` reads raw, canonical, egress, audit, dead letters and control; writes canonical,
  egress, audit and dead letters; creates the replay audit topics. The console reads as the
  chain (it shows the chain's own view to the users it authenticates itself). What the
  worker's Faust app needs beyond that: its consumer group (the app id); no internal topics
  (the leader topic is disabled, the chain has no tables); its idempotent producers need only
  WRITE on the topics they write (Kafka >= 3.0). Checked on the secured broker by
  tests/integration/test_up_secured.py: the worker is refused nothing.
- ``registry`` alone touches ``_schemas``.
- ``governance`` alone writes the control topic, and creates the chain's topics (``init``).
- ``auditor`` reads audit, egress and control topics.

Prefixes always end at a dot after a dot-free label (``raw.amr.``), so ``raw.amr.`` never
matches ``raw.amrx.licence``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shulian.catalog.models import DELIVERING, Catalog, SharingList
from shulian.chain import topology as names
from shulian.chain.topology import Topology
from shulian.errors import ConfigError, ConfigIssue
from shulian.perimeter.acl import (
    Acl,
    AclDiff,
    Operation,
    PatternType,
    Permission,
    ResourceType,
    diff,
)
from shulian.perimeter.identities import (
    ConnectorAccess,
    Identities,
    Principal,
    Role,
    derive_identities,
)

__all__ = ["AclPlan", "granted_egress", "list_change", "plan_acls"]

Op = Operation
TOPIC, GROUP = ResourceType.TOPIC, ResourceType.GROUP
LIT, PRE = PatternType.LITERAL, PatternType.PREFIXED
_CHAIN_GROUPS = (names.CHAIN_GROUP, names.TAIL_GROUP_PREFIX, names.CONTROL_GROUP_PREFIX,
                 names.READER_GROUP_PREFIX)
_RESERVED_GROUPS = (*_CHAIN_GROUPS, names.REGISTRY_GROUP_PREFIX, names.AGENCY_GROUP_PREFIX)


@dataclass(frozen=True)
class AclPlan:
    """The bindings of one deployment, the identities they name and the list version used."""

    acls: tuple[Acl, ...]
    identities: Identities
    list_version: int

    def for_principal(self, principal: Principal) -> list[Acl]:
        return [a for a in self.acls if a.principal == principal.kafka]


@dataclass(frozen=True)
class _Prefixes:
    """The production or namespaced prefix of each topic family."""

    raw: str
    canonical: str
    deadletter: str
    egress: str
    audit: str
    changelog: str

    @classmethod
    def of(cls, t: Topology) -> _Prefixes:
        return cls(raw=t.prefix(names.RAW), canonical=t.prefix(names.CANONICAL),
                   deadletter=t.prefix(names.DEADLETTER), egress=t.prefix(names.EGRESS),
                   audit=t.prefix(names.AUDIT), changelog=t.prefix(names.CHANGELOG))


def granted_egress(sharing_list: SharingList, topology: Topology) -> dict[str, set[str]]:
    """Agency -> the egress topics the list grants it (entries that deliver something)."""
    out: dict[str, set[str]] = {}
    for e in sharing_list.entries:
        if e.share_type in DELIVERING:
            out.setdefault(e.consumer, set()).add(topology.egress(e.consumer, e.dataset))
    return out


def _acl(p: Principal, res: ResourceType, name: str, pat: PatternType, op: Operation,
         perm: Permission = Permission.ALLOW) -> Acl:
    return Acl(p.kafka, res, name, pat, op, perm)


def _agency(a: str, px: _Prefixes, t: Topology, egress: Iterable[str],
            schemas_topic: str) -> list[Acl]:
    p = Principal(Role.AGENCY, a)
    deny = Permission.DENY
    out = [
        _acl(p, TOPIC, t.prefix(names.RAW, a), PRE, Op.WRITE),
        _acl(p, TOPIC, t.prefix(names.DEADLETTER, a), PRE, Op.READ),
        _acl(p, GROUP, names.agency_group_prefix(a), PRE, Op.READ),
        *(_acl(p, TOPIC, topic, LIT, Op.READ) for topic in sorted(egress)),
        _acl(p, TOPIC, px.canonical, PRE, Op.READ, deny),
        _acl(p, TOPIC, px.canonical, PRE, Op.WRITE, deny),
        _acl(p, TOPIC, px.audit, PRE, Op.READ, deny),
        _acl(p, TOPIC, px.audit, PRE, Op.WRITE, deny),
        _acl(p, TOPIC, px.changelog, PRE, Op.READ, deny),
        _acl(p, TOPIC, px.changelog, PRE, Op.WRITE, deny),
        _acl(p, TOPIC, px.egress, PRE, Op.WRITE, deny),
        _acl(p, TOPIC, px.deadletter, PRE, Op.WRITE, deny),
        _acl(p, TOPIC, t.control, LIT, Op.WRITE, deny),
        _acl(p, TOPIC, schemas_topic, LIT, Op.ALL, deny),
    ]
    return out


def _source(name: str, pairs: Iterable[tuple[str, str]], deadletters: bool,
            t: Topology, verifies: Iterable[str] = ()) -> list[Acl]:
    p = Principal(Role.SOURCE, name)
    out: list[Acl] = []
    for dataset in sorted(set(verifies)):  # a gateway answering verifications (docs/VERIFY.md)
        out += [_acl(p, TOPIC, t.verify_changelog(dataset), LIT, Op.READ),
                *(_acl(p, TOPIC, t.verify_audit(dataset), LIT, op) for op in (Op.READ,
                                                                               Op.WRITE))]
    if verifies:  # it answers under the list version in force: it follows the control topic
        out.append(_acl(p, TOPIC, t.control, LIT, Op.READ))
    for agency, dataset in sorted(set(pairs)):
        out.append(_acl(p, TOPIC, t.raw(agency, dataset), LIT, Op.WRITE))
        if deadletters:
            out.append(_acl(p, TOPIC, t.deadletter(agency, dataset), LIT, Op.WRITE))
    return out


def _check_sink(name: str, topics: Iterable[str], group: str, deadletter: str,
                t: Topology) -> list[ConfigIssue]:
    where = f"<connector {name}>"
    issues = [ConfigIssue(where, "topics", f"{topic} is not an egress topic: a sink reads only "
                          "egress.<consumer>.<dataset>")
              for topic in topics if t.parse_egress(topic) is None]
    if deadletter != t.sink_deadletter(name):
        issues.append(ConfigIssue(where, "deadletter_topic",
                                  f"must be {t.sink_deadletter(name)} (a sink's dead letters "
                                  "are its own, named by the topology)"))
    if group != names.sink_group(name) and group.startswith(_RESERVED_GROUPS):
        issues.append(ConfigIssue(where, "group_id", f"{group} falls under a consumer-group "
                                  "prefix reserved for the chain, the registry or agencies"))
    return issues


def _sink(name: str, topics: Iterable[str], group: str, deadletter: str) -> list[Acl]:
    p = Principal(Role.SINK, name)
    return [*(_acl(p, TOPIC, topic, LIT, Op.READ) for topic in sorted(set(topics))),
            _acl(p, GROUP, group, LIT, Op.READ),
            _acl(p, TOPIC, deadletter, LIT, Op.WRITE),
            _acl(p, TOPIC, deadletter, LIT, Op.CREATE)]


def _chain(px: _Prefixes, t: Topology) -> list[Acl]:
    p = Principal(Role.CHAIN)
    out = [_acl(p, TOPIC, px.raw, PRE, Op.READ),
           *(_acl(p, TOPIC, f, PRE, op)
             for f in (px.canonical, px.egress, px.audit, px.changelog)
             for op in (Op.READ, Op.WRITE)),
           # READ: a restarted worker reads its dead-letter tails so that a raw record it
           # already rejected is not rejected twice (IngestStage deadletter_tails)
           *(_acl(p, TOPIC, px.deadletter, PRE, op) for op in (Op.READ, Op.WRITE)),
           _acl(p, TOPIC, t.audit("replay."), PRE, Op.CREATE),
           _acl(p, TOPIC, t.control, LIT, Op.READ)]
    # the Faust app id, and drills' shulian-chain-<namespace>
    out += [_acl(p, GROUP, names.CHAIN_GROUP, LIT, Op.READ),
            _acl(p, GROUP, names.CHAIN_GROUP + "-", PRE, Op.READ)]
    out += [_acl(p, GROUP, g, PRE, Op.READ) for g in _CHAIN_GROUPS[1:]]
    return out


def _registry(schemas_topic: str) -> list[Acl]:
    p = Principal(Role.REGISTRY)
    return [*(_acl(p, TOPIC, schemas_topic, LIT, op)
              for op in (Op.READ, Op.WRITE, Op.CREATE, Op.DESCRIBE_CONFIGS)),
            _acl(p, GROUP, names.REGISTRY_GROUP_PREFIX, PRE, Op.READ)]


def _governance(px: _Prefixes, t: Topology) -> list[Acl]:
    p = Principal(Role.GOVERNANCE)
    families = (px.raw, px.canonical, px.deadletter, px.egress, px.audit, px.changelog)
    return [_acl(p, TOPIC, t.control, LIT, Op.WRITE),
            _acl(p, TOPIC, t.control, LIT, Op.READ),
            _acl(p, TOPIC, t.control, LIT, Op.CREATE),
            *(_acl(p, TOPIC, f, PRE, op) for f in families for op in (Op.CREATE, Op.DESCRIBE)),
            _acl(p, GROUP, names.READER_GROUP_PREFIX, PRE, Op.READ)]


def _auditor(px: _Prefixes, t: Topology) -> list[Acl]:
    p = Principal(Role.AUDITOR)
    return [_acl(p, TOPIC, px.audit, PRE, Op.READ),
            _acl(p, TOPIC, px.egress, PRE, Op.READ),
            _acl(p, TOPIC, t.control, LIT, Op.READ),
            _acl(p, GROUP, names.READER_GROUP_PREFIX, PRE, Op.READ)]


def plan_acls(catalog: Catalog, connectors: ConnectorAccess, *,
              sharing_list: SharingList | None = None, topology: Topology | None = None,
              schemas_topic: str = "_schemas") -> AclPlan:
    """Every binding for the catalogue's agencies, the connectors and the list in force
    (default: the catalogue's newest version). ConfigError when a connector config would
    need access outside its family (a sink reading canonical, a foreign dead-letter topic)."""
    t = topology or Topology()
    sl = sharing_list or catalog.current_list
    px = _Prefixes.of(t)
    issues = [i for s in connectors.sinks
              for i in _check_sink(s.name, s.topics, s.group, s.deadletter, t)]
    unknown = sorted({a for s in connectors.sources for a, _ in s.pairs} - set(catalog.agencies))
    issues += [ConfigIssue("<connectors>", "agency", f"unknown agency {a}") for a in unknown]
    if issues:
        raise ConfigError(issues)
    egress = granted_egress(sl, t)
    acls: list[Acl] = []
    for a in sorted(catalog.agencies):
        acls += _agency(a, px, t, egress.get(a, ()), schemas_topic)
    for src in connectors.sources:
        acls += _source(src.name, src.pairs, src.writes_deadletters, t, src.verifies)
    for snk in connectors.sinks:
        acls += _sink(snk.name, snk.topics, snk.group, snk.deadletter)
    acls += _chain(px, t) + _registry(schemas_topic) + _governance(px, t) + _auditor(px, t)
    return AclPlan(tuple(sorted(set(acls))), derive_identities(catalog.agencies, connectors),
                   sl.version)


def list_change(catalog: Catalog, connectors: ConnectorAccess, old: SharingList,
                new: SharingList, *, topology: Topology | None = None,
                schemas_topic: str = "_schemas") -> AclDiff:
    """What moving the list in force from ``old`` to ``new`` changes on the cluster: egress
    reads granted by ``new`` only are added, those ``old`` granted and ``new`` does not are
    removed (a consumer's last entry for a dataset revoked -> its read of that egress topic)."""
    before = plan_acls(catalog, connectors, sharing_list=old, topology=topology,
                       schemas_topic=schemas_topic)
    after = plan_acls(catalog, connectors, sharing_list=new, topology=topology,
                      schemas_topic=schemas_topic)
    return diff(after.acls, before.acls)
