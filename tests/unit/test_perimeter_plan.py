"""The ACL plan derived from the shipped catalogue and connector configs: the access matrix of
every agency against the rule table, prefixes that cannot leak between agencies whose ids are
prefixes of each other, topic names complete and collision-free, the list moving the
perimeter, and the diff that reconciliation applies."""

from __future__ import annotations

from pathlib import Path

import pytest

from shulian.catalog.load import load_catalog
from shulian.catalog.models import Agency, AgencyId, Catalog, SharingList
from shulian.chain.enforce import CANONICAL_DEADLETTER_AGENCY
from shulian.chain.topology import Topology
from shulian.connectors.config import load_connector_files
from shulian.embedded.stack import connector_configs
from shulian.errors import ConfigError
from shulian.perimeter.acl import (
    Acl,
    Operation,
    PatternType,
    Permission,
    ResourceType,
    allows,
    diff,
)
from shulian.perimeter.identities import (
    ConnectorAccess,
    Principal,
    Role,
    SinkAccess,
    SourceAccess,
)
from shulian.perimeter.matrix import AGENCY_FAMILIES, agency_matrix, topic_inventory
from shulian.perimeter.plan import granted_egress, list_change, plan_acls
from shulian.perimeter.service import connector_access
from shulian.settings import load_settings

READ, WRITE = Operation.READ, Operation.WRITE
TOPIC = ResourceType.TOPIC


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    s = load_settings()
    return load_catalog(s.catalog_dir, schemas_dir=s.schemas_dir)


@pytest.fixture(scope="module")
def connectors() -> ConnectorAccess:
    s = load_settings()
    every = sorted(Path(s.connectors_dir).glob("*.yaml"))  # all shipped examples, not only up's
    assert connector_configs(s)  # the stack's list resolves too
    return connector_access(c.config for c in load_connector_files(every, check_env=False))


def _with_agencies(catalog: Catalog, *ids: str) -> Catalog:
    extra = {AgencyId(i): Agency(id=AgencyId(i), name=i, region_code="440100") for i in ids}
    return catalog.model_copy(update={"agencies": {**catalog.agencies, **extra}})


# --- the access matrix -------------------------------------------------------------------


def _expected(family: str, granted: bool) -> tuple[bool, bool]:
    """The rule table: (read, write) per family for an agency principal."""
    return {
        "own raw": (False, True),
        "own egress (granted)": (granted, False),
        "own dead letters": (True, False),
    }.get(family, (False, False))


def test_every_agency_x_family_x_read_write_equals_the_rule_table(
        catalog: Catalog, connectors: ConnectorAccess) -> None:
    for version, sl in sorted(catalog.sharing_lists.items()):
        plan = plan_acls(catalog, connectors, sharing_list=sl)
        matrix = agency_matrix(plan, catalog)
        granted = granted_egress(sl, Topology())
        assert len(matrix) == len(catalog.agencies) * len(AGENCY_FAMILIES)
        for (agency, family), cell in matrix.items():
            want = _expected(family, bool(granted.get(agency)))
            assert (cell.read, cell.write) == want, (version, agency, family)
    # the list decides: some agency is granted egress, some agency is not
    assert any(c.read for (_, f), c in matrix.items() if f == "own egress (granted)")
    assert any(not granted.get(a) for a in catalog.agencies)


def test_components_reach_only_their_families(catalog: Catalog,
                                              connectors: ConnectorAccess) -> None:
    acls = plan_acls(catalog, connectors).acls
    t = Topology()
    canonical = t.canonical("household_change")
    audit = t.audit("household_change")

    def can(p: Principal, op: Operation, topic: str) -> bool:
        return allows(acls, p.kafka, op, TOPIC, topic)

    others = [p for p in plan_acls(catalog, connectors).identities.principals
              if p.role is not Role.CHAIN]
    assert can(Principal(Role.CHAIN), READ, canonical)
    assert not any(can(p, READ, canonical) for p in others)
    for fam in (canonical, t.egress("tax", "business_licence"), audit,
                t.deadletter("psb", "household_change")):
        assert can(Principal(Role.CHAIN), WRITE, fam)
        assert not any(can(p, WRITE, fam) for p in others if p.role is not Role.SOURCE), fam
    readers = {p.role for p in others if can(p, READ, audit)}
    assert readers == {Role.AUDITOR}
    control_writers = {p.name for p in plan_acls(catalog, connectors).identities.principals
                       if can(p, WRITE, t.control)}
    assert control_writers == {"governance"}
    schemas = {p.name for p in plan_acls(catalog, connectors).identities.principals
               if can(p, READ, "_schemas") or can(p, WRITE, "_schemas")}
    assert schemas == {"registry"}
    # a source writes dead letters only of the pairs it serves
    drop = Principal(Role.SOURCE, "amr-licence-drop")
    assert can(drop, WRITE, t.deadletter("amr", "business_licence"))
    assert not can(drop, WRITE, t.deadletter("psb", "household_change"))
    assert not can(drop, WRITE, t.raw("psb", "household_change"))


# --- prefixes ----------------------------------------------------------------------------


def test_agency_ids_that_are_prefixes_of_each_other_do_not_share_topics(
        catalog: Catalog, connectors: ConnectorAccess) -> None:
    cat = _with_agencies(catalog, "am", "amrx", "amr_x")
    acls = plan_acls(cat, connectors).acls
    t = Topology()
    ids = ["am", "amr", "amrx", "amr_x"]
    for a in ids:
        p = Principal(Role.AGENCY, a).kafka
        for b in ids:
            own = a == b
            assert allows(acls, p, WRITE, TOPIC, t.raw(b, "business_licence")) is own, (a, b)
            assert allows(acls, p, READ, TOPIC, t.deadletter(b, "business_licence")) is own
            assert allows(acls, p, READ, ResourceType.GROUP, f"agency.{b}.app") is own
    # every prefix the plan grants ends at a dot after a whole label
    for a in acls:
        if a.pattern is PatternType.PREFIXED:
            assert a.name.endswith((".", "-")), a


def test_agency_called_sink_or_canonical_gets_no_chain_dead_letters(
        catalog: Catalog, connectors: ConnectorAccess) -> None:
    cat = _with_agencies(catalog, "sink", "canonical")
    acls = plan_acls(cat, connectors).acls
    t = Topology()
    for a in ("sink", "canonical"):
        p = Principal(Role.AGENCY, a).kafka
        for sink in connectors.sinks:
            assert not allows(acls, p, READ, TOPIC, sink.deadletter)
        assert not allows(acls, p, READ, TOPIC, t.canonical_deadletter("household_change"))
        assert not allows(acls, p, READ, TOPIC, t.canonical("household_change"))


def test_topic_names_complete_and_collision_free(catalog: Catalog,
                                                 connectors: ConnectorAccess) -> None:
    t = Topology()
    inventory = topic_inventory(catalog, connectors, t)
    assert len(inventory) == len(set(inventory))
    # every topic a component produces or consumes is in the inventory
    used = {n for s in connectors.sources for a, d in s.pairs
            for n in (t.raw(a, d), t.deadletter(a, d))}
    used |= {x for s in connectors.sinks for x in (*s.topics, s.deadletter)}
    used |= {t.deadletter(CANONICAL_DEADLETTER_AGENCY, d) for d in catalog.datasets}
    assert used <= set(inventory), sorted(used - set(inventory))
    from shulian.connectors.sinks.failures import deadletter_topic as sink_dlq
    from shulian.connectors.sources.plumbing import deadletter_topic, raw_topic
    from shulian.logic.views import egress_topic
    assert raw_topic("psb", "x") == t.raw("psb", "x")
    assert deadletter_topic("psb", "x") == t.deadletter("psb", "x")
    assert sink_dlq("c") == t.sink_deadletter("c")
    assert egress_topic("tax", "x") == t.egress("tax", "x")
    # no topic falls under two owners' prefixes: each agency prefix matches only its topics
    owners = [str(a) for a in catalog.agencies]
    for topic in inventory:
        for fam in ("raw", "deadletter", "egress"):
            matching = [a for a in owners if topic.startswith(t.prefix(fam, a))]
            assert len(matching) <= 1, topic
    # a namespace cannot masquerade as a family
    for bad in ("raw", "egress", "a.b", "_x"):
        with pytest.raises(ValueError):
            Topology(namespace=bad)


# --- connector configs that would widen access are refused --------------------------------


@pytest.mark.parametrize("sink", [
    SinkAccess("s1", ("canonical.household_change",), "shulian-sink-s1", "deadletter._sink.s1"),
    SinkAccess("s1", ("egress.tax.business_licence",), "shulian-sink-s1", "deadletter.psb.x"),
    SinkAccess("s1", ("egress.tax.business_licence",), "shulian-chain", "deadletter._sink.s1"),
    SinkAccess("s1", ("egress.tax.business_licence",), "agency.tax.x", "deadletter._sink.s1"),
])
def test_sink_configs_outside_their_family_are_refused(catalog: Catalog,
                                                       sink: SinkAccess) -> None:
    with pytest.raises(ConfigError):
        plan_acls(catalog, ConnectorAccess(sinks=(sink,)))


def test_source_for_an_unknown_agency_is_refused(catalog: Catalog) -> None:
    with pytest.raises(ConfigError, match="unknown agency"):
        plan_acls(catalog, ConnectorAccess(sources=(SourceAccess("x", (("nobody", "d"),),
                                                                  False),)))


# --- the list moves the perimeter ---------------------------------------------------------


def test_list_change_revokes_and_grants_egress_reads(catalog: Catalog,
                                                     connectors: ConnectorAccess) -> None:
    v2 = catalog.sharing_lists[2]
    revoked = v2.entries[0]
    v3 = SharingList(version=3, published=v2.published, entries=v2.entries[1:])
    still = {(e.consumer, e.dataset) for e in v3.entries}
    change = list_change(catalog, connectors, v2, v3)
    t = Topology()
    topic = t.egress(revoked.consumer, revoked.dataset)
    reader = Principal(Role.AGENCY, revoked.consumer).kafka
    assert (revoked.consumer, revoked.dataset) not in still  # its last entry for the dataset
    assert change.remove == (Acl(reader, TOPIC, topic, PatternType.LITERAL, READ),)
    assert change.add == ()
    back = list_change(catalog, connectors, v3, v2)
    assert back.add == change.remove and back.remove == ()
    assert list_change(catalog, connectors, v2, v2).empty


# --- Kafka's decision rule and the reconciliation diff ----------------------------------------


def test_allows_follows_kafka_rules() -> None:
    p = "User:agency.a"
    lit = Acl(p, TOPIC, "egress.a.x", PatternType.LITERAL, READ)
    assert allows([lit], p, READ, TOPIC, "egress.a.x")
    assert allows([lit], p, Operation.DESCRIBE, TOPIC, "egress.a.x")  # READ implies DESCRIBE
    assert not allows([lit], p, READ, TOPIC, "egress.a.xy")  # literal is exact
    assert not allows([lit], p, WRITE, TOPIC, "egress.a.x")
    assert not allows([lit], "User:agency.b", READ, TOPIC, "egress.a.x")
    deny = Acl(p, TOPIC, "egress.", PatternType.PREFIXED, READ, Permission.DENY)
    assert not allows([lit, deny], p, READ, TOPIC, "egress.a.x")  # DENY wins
    assert allows([lit, deny], p, Operation.DESCRIBE, TOPIC, "egress.a.x")  # not widened
    assert not allows([], p, READ, TOPIC, "anything")  # nothing found: denied


def test_diff_adds_missing_removes_only_managed_and_is_idempotent(
        catalog: Catalog, connectors: ConnectorAccess) -> None:
    plan = plan_acls(catalog, connectors).acls
    assert diff(plan, plan).empty
    foreign = Acl("User:admin", TOPIC, "raw.", PatternType.PREFIXED, READ)
    stale = Acl("User:agency.gone", TOPIC, "raw.gone.", PatternType.PREFIXED, WRITE)
    hand = Acl("User:agency.psb", TOPIC, "canonical.", PatternType.PREFIXED, READ)
    actual = [*plan[5:], foreign, stale, hand]
    d = diff(plan, actual)
    assert d.add == tuple(sorted(plan[:5]))
    assert set(d.remove) == {stale, hand}  # User:admin is not Shulian's
    applied = (set(actual) | set(d.add)) - set(d.remove)
    assert diff(plan, applied).empty


def test_principal_names_parse_back() -> None:
    for p in (Principal(Role.AGENCY, "psb"), Principal(Role.CHAIN),
              Principal(Role.SINK, "tax.pg-1"), Principal(Role.SOURCE, "ingest-gateway")):
        assert Principal.parse(p.kafka) == p
    for name in ("User:admin", "User:chain.x", "User:agency", "User:agency.Bad", "User:ANONYMOUS"):
        assert Principal.parse(name) is None
