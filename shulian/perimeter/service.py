"""The perimeter as a service: load what the plan derives from (catalogue, connector configs,
the list in force) and plan, render, reconcile. Called by ``shulian acl`` and by tests alike."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from shulian.catalog.models import Catalog, SharingList
from shulian.chain.topology import Topology
from shulian.errors import ConfigError, ConfigIssue
from shulian.perimeter.acl import Acl
from shulian.perimeter.identities import (
    ConnectorAccess,
    Identities,
    SinkAccess,
    SourceAccess,
    derive_identities,
)
from shulian.perimeter.plan import AclPlan, plan_acls
from shulian.settings import Settings

__all__ = ["connector_access", "load_inputs", "load_live_plan", "load_matrix_markdown",
           "load_plan", "plan_json", "plan_table"]


def connector_access(configs: Iterable[Any]) -> ConnectorAccess:
    """What each validated connector config (a member of
    ``shulian.connectors.config.ConnectorConfig``) says about the topics and groups its principal
    needs."""
    sources: list[SourceAccess] = []
    sinks: list[SinkAccess] = []
    for c in configs:
        kind = str(c.type)
        if kind == "http_gateway":
            pairs = tuple((a, r.dataset) for a, acc in c.agencies.items() for r in acc.datasets)
            sources.append(SourceAccess(c.name, pairs, writes_deadletters=False,
                                        verifies=tuple(getattr(c, "verify_datasets", ()))))
        elif kind in ("file_drop", "postgres_table"):
            sources.append(SourceAccess(c.name, ((c.agency, c.dataset),),
                                        writes_deadletters=True))
        elif hasattr(c, "topics") and hasattr(c, "consumer_group"):
            sinks.append(SinkAccess(c.name, tuple(c.topics), c.consumer_group, c.deadletter))
        else:
            raise ConfigError([ConfigIssue(f"<connector {c.name}>", "type",
                                           f"the perimeter does not know connector type {kind}")])
    return ConnectorAccess(tuple(sorted(sources, key=lambda s: s.name)),
                           tuple(sorted(sinks, key=lambda s: s.name)))


def load_inputs(settings: Settings, *, catalog: Catalog | None = None
                ) -> tuple[Catalog, ConnectorAccess, Identities]:
    """The catalogue, what the connector configs need, and every principal."""
    from shulian.catalog.load import load_catalog
    from shulian.connectors.config import load_connector_files
    from shulian.embedded.stack import connector_configs

    cat = catalog or load_catalog(settings.catalog_dir, schemas_dir=settings.schemas_dir)
    loaded = load_connector_files(connector_configs(settings), check_env=False)
    access = connector_access(lc.config for lc in loaded)
    return cat, access, derive_identities(cat.agencies, access)


def load_plan(settings: Settings, *, list_version: int | None = None,
              catalog: Catalog | None = None, sharing_list: SharingList | None = None,
              namespace: str | None = None) -> AclPlan:
    """The plan for the settings' catalogue and connector configs, under ``list_version``
    (default: the newest in the catalogue) or an explicit ``sharing_list`` (from the control
    topic)."""
    cat, access, _ = load_inputs(settings, catalog=catalog)
    sl = sharing_list
    if sl is None and list_version is not None:
        if list_version not in cat.sharing_lists:
            raise ConfigError([ConfigIssue(str(settings.catalog_dir), "--list-version",
                                           f"no list version {list_version} in the catalogue "
                                           f"(have {sorted(cat.sharing_lists)})")])
        sl = cat.sharing_lists[list_version]
    return plan_acls(cat, access, sharing_list=sl, topology=Topology(namespace=namespace),
                     schemas_topic=settings.schemas_topic)


def load_live_plan(settings: Settings, *, namespace: str | None = None) -> AclPlan:
    """The plan under the list in force on the cluster: the catalogue's newest version, then
    every signed successor published on the control topic (what ``acl sync`` and the worker
    follow), so ``acl apply`` never re-grants what a published version revoked."""
    from shulian.catalog.load import load_catalog
    from shulian.perimeter.sync import list_in_force

    cat = load_catalog(settings.catalog_dir, schemas_dir=settings.schemas_dir)
    sl = list_in_force(settings, cat, topology=Topology(namespace=namespace))
    return load_plan(settings, catalog=cat, sharing_list=sl, namespace=namespace)


def load_matrix_markdown(settings: Settings) -> str:
    """The per-principal access matrix of the settings' deployment, as markdown."""
    from shulian.perimeter.matrix import principal_matrix, render_markdown, topic_inventory

    cat, access, _ = load_inputs(settings)
    plan = plan_acls(cat, access, schemas_topic=settings.schemas_topic)
    inventory = topic_inventory(cat, access, Topology(), settings.schemas_topic)
    columns, rows = principal_matrix(plan, inventory, schemas_topic=settings.schemas_topic)
    return render_markdown(columns, rows)


_COLUMNS = ("principal", "permission", "operation", "resource_type", "pattern_type",
            "resource_name")


def plan_rows(acls: Sequence[Acl]) -> list[dict[str, str]]:
    return [a.as_dict() for a in acls]


def plan_json(plan: AclPlan) -> str:
    """The plan as JSON: list version, principals and bindings (stable order)."""
    return json.dumps({"list_version": plan.list_version,
                       "principals": plan.identities.names(),
                       "acls": plan_rows(plan.acls)}, ensure_ascii=False, indent=2)


def plan_table(acls: Sequence[Acl]) -> str:
    """The bindings as a fixed-width text table, one per line."""
    rows = [[r[c] for c in _COLUMNS] for r in plan_rows(acls)]
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(_COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(_COLUMNS, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
              for r in rows]
    return "\n".join(lines)
