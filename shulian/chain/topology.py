"""Topic names of the chain, derived from the catalogue, and their creation.

    raw.<agency>.<dataset>         agency publishes (Avro, subject raw.<agency>.<dataset>-value)
    canonical.<dataset>            harmonised records (subject canonical.<dataset>-value)
    deadletter.<agency>.<dataset>  rejected records: original bytes + reason headers
    deadletter._canonical.<dataset>  records the enforce stage could not decide
    deadletter._sink.<connector>   records a sink connector could not deliver
    egress.<consumer>.<dataset>    each consumer's permitted view
    audit.<dataset>                hash-chained decisions; partition p chains the decisions taken
                                   for canonical.<dataset> partition p (one writer per partition)
    control.sharing-list           new sharing-list versions (one partition)
    audit.sharing-list             workers' signed records of list versions applied or refused
    changelog.verify.<dataset>     compacted: the latest claimable fields per lookup key of a
                                   dataset with a verify entry (the verification store's log)
    audit.verify.<dataset>         hash-chained verification answers (written by the gateway
                                   that answers them, one chain per partition)

A namespace (used by drills) prefixes every name: ``<ns>.raw.psb.household_change``.

Agency and dataset ids match ``[a-z][a-z0-9_]*`` (no dot, never a leading ``_``), so the
ACL prefixes ``raw.<agency>.``, ``egress.<agency>.``, ``deadletter.<agency>.`` of two agencies
never overlap (``raw.amr.`` does not match ``raw.amrx.y``), and the chain's own dead-letter
families (``_canonical``, ``_sink``) can never be an agency's. A namespace is one dot-free label
that is not a family's first label, so no namespaced name falls under a production prefix.

Consumer groups are named here too: the ACLs grant them by these names and prefixes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from shulian.catalog.models import Catalog

if TYPE_CHECKING:
    from shulian.settings import Settings

RAW = "raw"
CANONICAL = "canonical"
DEADLETTER = "deadletter"
EGRESS = "egress"
AUDIT = "audit"
CONTROL = "control.sharing-list"
CHANGELOG = "changelog"
VERIFY = "verify"
CANONICAL_DEADLETTER = "_canonical"
SINK_DEADLETTER = "_sink"
FAMILIES = (RAW, CANONICAL, DEADLETTER, EGRESS, AUDIT, CONTROL.split(".")[0], CHANGELOG)

# consumer groups (the chain's Faust app id is CHAIN_GROUP, ``-<namespace>`` for drills)
CHAIN_GROUP = "shulian-chain"
TAIL_GROUP_PREFIX = "shulian-tail-"
CONTROL_GROUP_PREFIX = "shulian-control-"
READER_GROUP_PREFIX = "shulian-reader-"
REGISTRY_GROUP_PREFIX = "shulian-registry-"
SINK_GROUP_PREFIX = "shulian-sink-"
AGENCY_GROUP_PREFIX = "agency."


def sink_group(connector: str) -> str:
    """The default consumer group of a sink connector."""
    return f"{SINK_GROUP_PREFIX}{connector}"


def agency_group_prefix(agency: str) -> str:
    """Every consumer group an agency's own consumers may use starts with this."""
    return f"{AGENCY_GROUP_PREFIX}{agency}."
LISTS_AUDIT = "audit.sharing-list"  # no dataset id has a '-': never an audit.<dataset>


@dataclass(frozen=True)
class Topology:
    """Names of every topic for one namespace (``None`` = production names)."""

    namespace: str | None = None
    partitions: int = 3

    def __post_init__(self) -> None:
        ns = self.namespace
        if ns and ("." in ns or ns in FAMILIES or ns.startswith("_")):
            raise ValueError(f"namespace {ns!r} must be one label without dots, not starting "
                             f"with '_' and not one of {', '.join(FAMILIES)}")

    @classmethod
    def from_settings(cls, settings: Settings, namespace: str | None = None) -> Topology:
        """The topology of ``namespace`` (None = production) with the partition count new
        topics get (``SHULIAN_DEFAULT_PARTITIONS``): how every command and service builds one."""
        return cls(namespace=namespace, partitions=settings.default_partitions)

    def _n(self, name: str) -> str:
        return f"{self.namespace}.{name}" if self.namespace else name

    def raw(self, agency: str, dataset: str) -> str:
        return self._n(f"{RAW}.{agency}.{dataset}")

    def canonical(self, dataset: str) -> str:
        return self._n(f"{CANONICAL}.{dataset}")

    def deadletter(self, agency: str, dataset: str) -> str:
        return self._n(f"{DEADLETTER}.{agency}.{dataset}")

    def prefix(self, family: str, owner: str | None = None) -> str:
        """The ACL prefix of a family (``raw.``) or of one owner's topics in it (``raw.psb.``):
        always ending in a dot, so ``raw.amr.`` does not cover ``raw.amrx.*``."""
        if family not in FAMILIES:
            raise ValueError(f"unknown topic family {family!r}")
        return self._n(f"{family}.{owner}." if owner else f"{family}.")

    def sink_deadletter(self, connector: str) -> str:
        """``deadletter._sink.<connector>``: never an agency's dead letters."""
        return self._n(f"{DEADLETTER}.{SINK_DEADLETTER}.{connector}")

    def canonical_deadletter(self, dataset: str) -> str:
        return self.deadletter(CANONICAL_DEADLETTER, dataset)

    def egress(self, consumer: str, dataset: str) -> str:
        return self._n(f"{EGRESS}.{consumer}.{dataset}")

    def audit(self, dataset: str) -> str:
        return self._n(f"{AUDIT}.{dataset}")

    def verify_changelog(self, dataset: str) -> str:
        """``changelog.verify.<dataset>``: compacted, keyed by the verify lookup key."""
        return self._n(f"{CHANGELOG}.{VERIFY}.{dataset}")

    def verify_audit(self, dataset: str) -> str:
        """``audit.verify.<dataset>``: never ``audit.<dataset>`` (dataset ids have no dot)."""
        return self._n(f"{AUDIT}.{VERIFY}.{dataset}")

    @property
    def control(self) -> str:
        return self._n(CONTROL)

    @property
    def lists_audit(self) -> str:
        return self._n(LISTS_AUDIT)

    def unprefix(self, topic: str) -> str | None:
        """The production name of ``topic``, or None if it is not in this namespace."""
        if not self.namespace:
            return topic
        prefix = self.namespace + "."
        return topic[len(prefix):] if topic.startswith(prefix) else None

    def parse_raw(self, topic: str) -> tuple[str, str] | None:
        """``raw.<agency>.<dataset>`` -> (agency, dataset)."""
        name = self.unprefix(topic)
        if name is None:
            return None
        parts = name.split(".")
        if len(parts) != 3 or parts[0] != RAW:
            return None
        return parts[1], parts[2]

    def parse_canonical(self, topic: str) -> str | None:
        name = self.unprefix(topic)
        if name is None:
            return None
        parts = name.split(".")
        if len(parts) != 2 or parts[0] != CANONICAL:
            return None
        return parts[1]

    def parse_deadletter(self, topic: str) -> tuple[str, str] | None:
        """``deadletter.<agency>.<dataset>`` -> (agency, dataset); the enforce stage's dead
        letters have agency ``_canonical``."""
        name = self.unprefix(topic)
        if name is None:
            return None
        parts = name.split(".")
        if len(parts) != 3 or parts[0] != DEADLETTER:
            return None
        return parts[1], parts[2]

    def parse_egress(self, topic: str) -> tuple[str, str] | None:
        """``egress.<consumer>.<dataset>`` -> (consumer, dataset)."""
        name = self.unprefix(topic)
        if name is None:
            return None
        parts = name.split(".")
        if len(parts) != 3 or parts[0] != EGRESS:
            return None
        return parts[1], parts[2]


def subject_of(topic: str) -> str:
    """Confluent TopicNameStrategy subject for a topic's values."""
    return f"{topic}-value"


@dataclass(frozen=True)
class TopicPlan:
    """Every topic the chain needs for a catalogue, with its partition count."""

    raw: tuple[str, ...]
    canonical: tuple[str, ...]
    deadletter: tuple[str, ...]
    egress: tuple[str, ...]
    audit: tuple[str, ...]
    control: str
    partitions: int
    lists_audit: str = ""
    changelog: tuple[str, ...] = ()  # compacted (cleanup.policy=compact)
    verify_audit: tuple[str, ...] = ()

    def all(self) -> list[tuple[str, int]]:
        names = [*self.raw, *self.canonical, *self.deadletter, *self.egress, *self.audit,
                 *self.changelog, *self.verify_audit]
        return ([(n, self.partitions) for n in names] + [(self.control, 1)]
                + ([(self.lists_audit, 1)] if self.lists_audit else []))


def plan_topics(catalog: Catalog, topology: Topology) -> TopicPlan:
    """Topics for every mapping (raw, dead letters), dataset (canonical, audit) and every
    consumer named by any list version (egress)."""
    pairs = sorted(catalog.mappings)
    consumers = sorted(
        {
            (e.consumer, e.dataset)
            for sl in catalog.sharing_lists.values()
            for e in sl.entries
            if e.verify is None  # a verify entry delivers nothing: no egress topic
        }
    )
    verified = sorted({e.dataset for sl in catalog.sharing_lists.values() for e in sl.entries
                       if e.verify is not None})
    datasets = sorted(catalog.datasets)
    return TopicPlan(
        raw=tuple(topology.raw(a, d) for a, d in pairs),
        canonical=tuple(topology.canonical(d) for d in datasets),
        deadletter=tuple(topology.deadletter(a, d) for a, d in pairs)
        + tuple(topology.canonical_deadletter(d) for d in datasets),
        egress=tuple(topology.egress(c, d) for c, d in consumers),
        audit=tuple(topology.audit(d) for d in datasets),
        control=topology.control,
        partitions=topology.partitions,
        lists_audit=topology.lists_audit,
        changelog=tuple(topology.verify_changelog(d) for d in verified),
        verify_audit=tuple(topology.verify_audit(d) for d in verified),
    )
