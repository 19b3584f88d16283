"""Dead letters for people: what was rejected, when, why in words, which field.

The service behind ``shulian deadletters`` (and the console): it reads the catalogue's
``deadletter.<agency>.<dataset>`` topics and turns each message into a :class:`DeadLetter`
built from the chain's reason headers only. The original bytes (the message value and key,
which may hold citizen IDs, names, addresses, phones) are never copied into a
:class:`DeadLetter`: only their size is kept, so nothing printed from here can leak them.

Pure functions (:func:`parse`, :func:`select`, :func:`rows`, :func:`summary`) take messages;
:func:`read_dead_letters` is the edge that reads Kafka (imported inside the function).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shulian.audit.window import DEFAULT_TZ, Window
from shulian.chain.messages import InMessage, header_str
from shulian.chain.topology import Topology
from shulian.errors import ConfigError, ConfigIssue
from shulian.logic.reasons import check_words, reason_words

if TYPE_CHECKING:
    from shulian.catalog.models import Catalog
    from shulian.settings import Settings

__all__ = ["COLUMNS", "DeadLetter", "DeadLetterFilter", "by_reason", "deadletter_topics", "parse",
           "read_dead_letters", "rows", "select", "summary"]

COLUMNS = ("rejected_at", "agency", "dataset", "reason", "why", "field", "check",
           "check_words", "detail", "bytes", "source", "deadletter")

_ALL = Window()
CHAIN_STAGE = "_canonical"  # the enforce stage's dead letters (see shulian.chain.enforce)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One rejected record, described by the chain's headers; never its content."""

    ts_ms: int
    agency: str
    dataset: str
    reason: str
    field: str | None
    check: str | None
    detail: str
    size: int  # bytes of the original value (the value itself is not kept)
    source: str  # raw topic[partition]@offset it came from
    deadletter: str  # deadletter topic[partition]@offset where its original bytes are


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    agency: str | None = None
    dataset: str | None = None
    reason: str | None = None
    window: Window = _ALL

    def matches(self, d: DeadLetter) -> bool:
        if self.agency is not None and d.agency != self.agency:
            return False
        if self.dataset is not None and d.dataset != self.dataset:
            return False
        if self.reason is not None and d.reason != self.reason:
            return False
        return self.window.contains(d.ts_ms)


def parse(msg: InMessage, topology: Topology) -> DeadLetter:
    """A dead-letter message as a :class:`DeadLetter` (headers only)."""
    parsed = topology.parse_deadletter(msg.topic)
    agency, dataset = parsed if parsed is not None else ("?", "?")
    h = msg.headers
    src_topic = header_str(h, "shulian.source.topic")
    source = ""
    if src_topic is not None:
        source = (f"{src_topic}[{header_str(h, 'shulian.source.partition') or '?'}]"
                  f"@{header_str(h, 'shulian.source.offset') or '?'}")
    return DeadLetter(
        ts_ms=msg.timestamp_ms,
        agency=agency,
        dataset=dataset,
        reason=header_str(h, "shulian.reason") or "?",
        field=header_str(h, "shulian.field"),
        check=header_str(h, "shulian.check"),
        detail=header_str(h, "shulian.detail") or "",
        size=len(msg.value or b""),
        source=source,
        deadletter=f"{msg.topic}[{msg.partition}]@{msg.offset}",
    )


def select(messages: Iterable[InMessage], topology: Topology,
           flt: DeadLetterFilter) -> list[DeadLetter]:
    """The dead letters among ``messages`` that ``flt`` matches, oldest first."""
    found = [d for d in (parse(m, topology) for m in messages) if flt.matches(d)]
    found.sort(key=lambda d: (d.ts_ms, d.deadletter))
    return found


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, DEFAULT_TZ).isoformat(timespec="milliseconds")


def rows(letters: Iterable[DeadLetter], *, lang: str = "en") -> list[dict[str, Any]]:
    """One row per dead letter with :data:`COLUMNS`; times in Asia/Shanghai (the window's
    zone), reasons and checks in words (``lang`` ``en`` or ``zh``)."""
    out: list[dict[str, Any]] = []
    for d in letters:
        why = reason_words(d.reason)
        cw = check_words(d.check)
        out.append({
            "rejected_at": _time(d.ts_ms),
            "agency": d.agency,
            "dataset": d.dataset,
            "reason": d.reason,
            "why": why.zh if lang == "zh" else why.en,
            "field": d.field or "",
            "check": d.check or "",
            "check_words": "" if cw is None else (cw.zh if lang == "zh" else cw.en),
            "detail": d.detail,
            "bytes": d.size,
            "source": d.source,
            "deadletter": d.deadletter,
        })
    return out


def summary(letters: Iterable[DeadLetter]) -> list[dict[str, Any]]:
    """Counts per (agency, dataset, reason, field)."""
    counts: Counter[tuple[str, str, str, str]] = Counter(
        (d.agency, d.dataset, d.reason, d.field or "") for d in letters)
    return [{"agency": a, "dataset": ds, "reason": r, "field": f, "records": n}
            for (a, ds, r, f), n in sorted(counts.items())]


def deadletter_topics(catalog: Catalog, topology: Topology, *, agency: str | None,
                      dataset: str | None) -> list[str]:
    """The dead-letter topics to read for the filter; unknown names are a config error that
    lists the known ones."""
    known_agencies = sorted({a for a, _ in catalog.mappings} | {CHAIN_STAGE})
    if agency is not None and agency not in known_agencies:
        raise ConfigError([ConfigIssue("command line", "--agency",
                                       f"no agency publishes as {agency!r}; known: "
                                       f"{', '.join(known_agencies)}")])
    if dataset is not None and dataset not in catalog.datasets:
        raise ConfigError([ConfigIssue("command line", "--dataset",
                                       f"no dataset {dataset!r}; known: "
                                       f"{', '.join(sorted(catalog.datasets))}")])
    pairs: list[tuple[str, str]] = sorted({(a, d) for a, d in catalog.mappings}
                                          | {(CHAIN_STAGE, d) for d in catalog.datasets})
    return [topology.deadletter(a, d) for a, d in pairs
            if (agency is None or a == agency) and (dataset is None or d == dataset)]


def read_dead_letters(settings: Settings, catalog: Catalog, flt: DeadLetterFilter, *,
                      namespace: str | None = None,
                      progress: Callable[[int], None] | None = None) -> list[DeadLetter]:
    """Read the matching dead-letter topics and return the filter's dead letters."""
    from shulian.io.reader import read_topics

    topology = Topology.from_settings(settings, namespace)
    topics = deadletter_topics(catalog, topology, agency=flt.agency, dataset=flt.dataset)
    parts = read_topics(settings, topics, progress=progress)
    return select((m for msgs in parts.values() for m in msgs), topology, flt)


def by_reason(letters: Sequence[DeadLetter]) -> Mapping[str, int]:
    return Counter(d.reason for d in letters)
