"""Connector configs checked against the catalogue: the agencies, datasets and egress topics a
config names must exist there (pure: no I/O).

A gateway route or file drop for a dataset the agency has no mapping for, or a sink on a topic
no consumer view is routed to, would start and then never see a record; this refuses it at
start-up with file, field and why.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from shulian.catalog.models import Catalog
from shulian.connectors.config import LoadedConnector
from shulian.connectors.sinks.config import SinkCommon
from shulian.connectors.sources.config import FileDropConfig, GatewayConfig, TableSourceConfig
from shulian.errors import ConfigIssue

_EGRESS = re.compile(r"(?:^|\.)egress\.(?P<consumer>[a-z0-9_]+)\.(?P<dataset>[a-z0-9_]+)$")


def _publishes(catalog: Catalog, agency: str, dataset: str) -> str | None:
    if agency not in catalog.agencies:
        return f"unknown agency '{agency}' (not in the catalogue's agencies)"
    if dataset not in catalog.datasets:
        return f"unknown dataset '{dataset}' (not in the catalogue's datasets)"
    if (agency, dataset) not in catalog.mappings:
        return f"agency '{agency}' has no mapping for dataset '{dataset}'"
    return None


def _consumers(catalog: Catalog) -> set[tuple[str, str]]:
    return {(e.consumer, e.dataset) for sl in catalog.sharing_lists.values() for e in sl.entries}


def check_connector_refs(loaded: Iterable[LoadedConnector], catalog: Catalog
                         ) -> list[ConfigIssue]:
    """Every reference from the configs into the catalogue, as issues (empty: all hold)."""
    issues: list[ConfigIssue] = []
    routed = _consumers(catalog)
    for c in loaded:
        file, cfg = str(c.path), c.config
        if isinstance(cfg, GatewayConfig):
            for agency, access in cfg.agencies.items():
                for i, route in enumerate(access.datasets):
                    why = _publishes(catalog, agency, route.dataset)
                    if why:
                        issues.append(ConfigIssue(file, f"agencies.{agency}.datasets.{i}", why))
        elif isinstance(cfg, (FileDropConfig, TableSourceConfig)):
            why = _publishes(catalog, cfg.agency, cfg.dataset)
            if why:
                issues.append(ConfigIssue(file, "dataset", why))
        elif isinstance(cfg, SinkCommon):
            for i, topic in enumerate(cfg.topics):
                m = _EGRESS.search(topic)
                if m is None:
                    issues.append(ConfigIssue(file, f"topics.{i}",
                                              f"'{topic}' is not an egress.<consumer>.<dataset> "
                                              "topic"))
                elif (m["consumer"], m["dataset"]) not in routed:
                    issues.append(ConfigIssue(
                        file, f"topics.{i}",
                        f"no list version routes dataset '{m['dataset']}' to consumer "
                        f"'{m['consumer']}'"))
    return issues
