"""Names the audit and replay tools are given: refuse what is not known, name what is nearest.

An auditor who mistypes a topic, dataset or consumer must never get an empty
answer that looks like "nothing wrong" (issue 22 part 4). Every name typed on a command line
goes through here first: an unknown one is a :class:`~shulian.errors.ConfigError` (exit 2 in
the CLI) that names the known ones nearest to what was typed (:func:`difflib.get_close_matches`).

Topics are checked against the topics that exist on the broker, read with one metadata request
for *all* topics (a request naming a topic may auto-create it on some brokers; listing all never
does), so checking never creates anything.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from shulian.errors import ConfigError, ConfigIssue

if TYPE_CHECKING:
    from shulian.catalog.models import Catalog
    from shulian.chain.topology import Topology
    from shulian.settings import Settings

__all__ = ["existing_topics", "nearest", "require_consumer", "require_dataset",
           "require_delivery", "require_known", "require_topics"]

WHERE = "command line"


def nearest(name: str, known: Iterable[str], *, n: int = 3) -> list[str]:
    """Up to ``n`` known names closest to ``name`` (none when nothing is close)."""
    return difflib.get_close_matches(name, sorted(set(known)), n=n, cutoff=0.5)


def _issue(option: str, kind: str, name: str, known: Sequence[str]) -> ConfigIssue:
    close = nearest(name, known)
    if close:
        hint = "did you mean " + " or ".join(repr(c) for c in close) + "?"
    elif known:
        shown = sorted(known)[:8]
        hint = "known: " + ", ".join(shown) + (", ..." if len(known) > len(shown) else "")
    else:
        hint = f"no {kind} is known"
    return ConfigIssue(WHERE, option, f"unknown {kind} {name!r}; {hint}")


def require_known(option: str, kind: str, names: Iterable[str], known: Iterable[str]) -> None:
    """Raise :class:`ConfigError` naming every one of ``names`` not in ``known``."""
    pool = sorted(set(known))
    issues = [_issue(option, kind, n, pool) for n in names if n not in pool]
    if issues:
        raise ConfigError(issues)


def require_dataset(catalog: Catalog, dataset: str | None, option: str = "--dataset") -> None:
    if dataset is not None:
        require_known(option, "dataset", [dataset], catalog.datasets)


def require_consumer(catalog: Catalog, consumer: str | None,
                     option: str = "--consumer") -> None:
    if consumer is not None:
        require_known(option, "consumer agency", [consumer], catalog.agencies)


def require_delivery(catalog: Catalog, topology: Topology, consumer: str,
                     dataset: str) -> str:
    """The egress topic of ``consumer`` for ``dataset``; refused unless some list version
    of the catalogue delivers that dataset to that consumer."""
    from shulian.chain.topology import plan_topics

    require_consumer(catalog, consumer)
    require_dataset(catalog, dataset)
    topic = topology.egress(consumer, dataset)
    egress = plan_topics(catalog, topology).egress
    if topic not in egress:
        gets = sorted(d for t in egress if (p := topology.parse_egress(t)) and p[0] == consumer
                      for d in [p[1]])
        raise ConfigError([ConfigIssue(
            WHERE, "--consumer/--dataset",
            f"no list version delivers {dataset!r} to {consumer!r}; {consumer} receives: "
            + (", ".join(gets) if gets else "nothing"))])
    return topic


def existing_topics(settings: Settings) -> set[str]:
    """Every topic on the broker (one metadata request for all topics: creates nothing)."""
    from confluent_kafka import KafkaException

    from shulian.errors import BrokerError
    from shulian.io.kafka import admin_client

    try:
        md = admin_client(settings).list_topics(timeout=15)
    except KafkaException as exc:
        raise BrokerError(f"cannot list topics: {exc}") from exc
    return {t for t, meta in md.topics.items() if meta.error is None}


def require_topics(settings: Settings, option: str, topics: Iterable[str]) -> None:
    """Topics typed by the user must exist (nearest existing ones named otherwise)."""
    wanted = list(topics)
    if wanted:
        require_known(option, "topic", wanted,
                      {t for t in existing_topics(settings) if not t.startswith("__")})
