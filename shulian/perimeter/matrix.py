"""Who may do what, computed from a plan (pure): the per-agency access matrix the tests hold to
the rule table, and the per-principal matrix docs/SECURITY.md shows (generated, never typed).

Every cell is decided by :func:`shulian.perimeter.acl.allows` on concrete topic names of the
catalogue, so the matrix shows what Kafka's authorizer would answer, DENYs included.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shulian.audit.redeliver import replay_audit_topic
from shulian.catalog.models import Catalog
from shulian.chain import topology as names
from shulian.chain.topology import Topology, plan_topics
from shulian.perimeter.acl import Acl, Operation, ResourceType, allows
from shulian.perimeter.identities import ConnectorAccess, Principal, Role
from shulian.perimeter.plan import AclPlan, granted_egress

__all__ = ["AGENCY_FAMILIES", "agency_matrix", "principal_matrix", "render_markdown",
           "topic_inventory"]

AGENCY_FAMILIES = ("own raw", "other raw", "canonical", "own egress (granted)",
                   "own egress (not granted)", "other egress", "own dead letters",
                   "other dead letters", "audit", "control", "_schemas",
                   "verification changelog")


def topic_inventory(catalog: Catalog, connectors: ConnectorAccess, topology: Topology,
                    schemas_topic: str = "_schemas") -> list[str]:
    """Every topic any component produces or consumes: the chain's plan, every egress topic
    any list version names, the replay audit topics, sinks' dead letters, ``_schemas``."""
    plan = plan_topics(catalog, topology)
    found = {n for n, _ in plan.all()}
    found |= {replay_audit_topic(topology, d) for d in catalog.datasets}
    found |= {topology.sink_deadletter(s.name) for s in connectors.sinks}
    found |= {t for s in connectors.sinks for t in s.topics}
    found |= {topology.raw(a, d) for s in connectors.sources for a, d in s.pairs}
    found.add(schemas_topic)
    return sorted(found)


@dataclass(frozen=True)
class Cell:
    read: bool
    write: bool

    def __str__(self) -> str:
        return ("R" if self.read else "-") + ("W" if self.write else "-")


def _can(acls: Sequence[Acl], p: Principal, op: Operation, topics: Iterable[str]) -> bool:
    """Allowed on at least one of ``topics`` (the cell is about one representative each)."""
    return any(allows(acls, p.kafka, op, ResourceType.TOPIC, t) for t in topics)


def agency_matrix(plan: AclPlan, catalog: Catalog,
                  topology: Topology | None = None) -> dict[tuple[str, str], Cell]:
    """(agency, family) -> may it read / write any topic of that family. For the "own" and
    "other" families every concrete topic of the catalogue counts."""
    t = topology or Topology()
    sl = next(v for v in catalog.sharing_lists.values() if v.version == plan.list_version)
    granted = granted_egress(sl, t)
    datasets = sorted(catalog.datasets)
    agencies = sorted(catalog.agencies)
    egress_all = {t.egress(e.consumer, e.dataset) for v in catalog.sharing_lists.values()
                  for e in v.entries}
    out: dict[tuple[str, str], Cell] = {}
    for a in agencies:
        p = Principal(Role.AGENCY, a)
        others = [b for b in agencies if b != a]
        own_egress = granted.get(a, set())
        topics = {
            "own raw": [t.raw(a, d) for d in datasets],
            "other raw": [t.raw(b, d) for b in others for d in datasets],
            "canonical": [t.canonical(d) for d in datasets],
            "own egress (granted)": sorted(own_egress),
            "own egress (not granted)": sorted({t.egress(a, d) for d in datasets} - own_egress),
            "other egress": sorted(x for x in egress_all if _consumer(t, x) != a),
            "own dead letters": [t.deadletter(a, d) for d in datasets],
            "other dead letters": [t.deadletter(b, d) for b in others for d in datasets]
            + [t.canonical_deadletter(d) for d in datasets],
            "audit": [t.audit(d) for d in datasets],
            "control": [t.control],
            "_schemas": ["_schemas"],
            "verification changelog": [t.verify_changelog(d) for d in datasets],
        }
        for family in AGENCY_FAMILIES:
            names_ = topics[family]
            out[(a, family)] = Cell(_can(plan.acls, p, Operation.READ, names_),
                                    _can(plan.acls, p, Operation.WRITE, names_))
    return out


def _consumer(t: Topology, topic: str) -> str | None:
    parsed = t.parse_egress(topic)
    return parsed[0] if parsed else None


def _family_of(topic: str, t: Topology, schemas_topic: str) -> str:
    if topic == schemas_topic:
        return schemas_topic
    if topic == t.control:
        return t.control
    name = t.unprefix(topic) or topic
    head, _, rest = name.partition(".")
    if head == names.DEADLETTER:
        owner = rest.partition(".")[0]
        return f"deadletter.{owner}.*" if owner.startswith("_") else "deadletter.<agency>.*"
    return f"{head}.*"


def principal_matrix(plan: AclPlan, inventory: Sequence[str], topology: Topology | None = None,
                     schemas_topic: str = "_schemas") -> tuple[list[str], list[list[str]]]:
    """Columns (topic families) and one row per principal: ``R``/``W`` when every topic of the
    family is readable/writable, ``r``/``w`` when only some are (its own or granted ones)."""
    t = topology or Topology()
    families: dict[str, list[str]] = {}
    for topic in inventory:
        families.setdefault(_family_of(topic, t, schemas_topic), []).append(topic)
    columns = sorted(families)
    rows: list[list[str]] = []
    for p in plan.identities.principals:
        row = [p.name]
        for fam in columns:
            cell = ""
            for op, letter in ((Operation.READ, "r"), (Operation.WRITE, "w")):
                ok = [allows(plan.acls, p.kafka, op, ResourceType.TOPIC, x)
                      for x in families[fam]]
                cell += letter.upper() if all(ok) else letter if any(ok) else ""
            row.append(cell or "-")
        rows.append(row)
    return columns, rows


def render_markdown(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table: names in backticks, cells as they are."""
    out = ["| principal | " + " | ".join(f"`{c}`" for c in columns) + " |",
           "|---" * (len(columns) + 1) + "|"]
    out += [f"| `{r[0]}` | " + " | ".join(r[1:]) + " |" for r in rows]
    return "\n".join(out)
