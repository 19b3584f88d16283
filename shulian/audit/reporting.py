"""``audit report`` as a service: read the audit (and, for a record's history, canonical)
topics, build the rows with masks described from the catalogue's list versions.

Called by ``shulian audit report`` and the console; Kafka is imported inside
:func:`run_report`. The rows themselves are made by the pure :mod:`shulian.audit.report`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shulian.audit.check import audit_entries
from shulian.audit.progress import reading
from shulian.audit.report import Filter, report_rows, summary
from shulian.catalog.listing import describe_mask

if TYPE_CHECKING:
    from shulian.catalog.models import Catalog
    from shulian.settings import Settings

__all__ = ["Report", "mask_words", "run_report"]


@dataclass(frozen=True)
class Report:
    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]


def mask_words(catalog: Catalog) -> dict[tuple[str, int], dict[str, str]]:
    """(entry id, list version) -> field -> mask in words, for every list version the
    catalogue holds (a version published only to the control topic is not among them: its
    masks are then named by type)."""
    return {(e.id, sl.version): {f: describe_mask(m) for f, m in e.masks.items()}
            for sl in catalog.sharing_lists.values() for e in sl.entries}


def run_report(settings: Settings, catalog: Catalog, flt: Filter, *,
               audit_topics: Sequence[str], canonical_topics: Sequence[str] = ()) -> Report:
    """The report for ``flt``; canonical topics are read only for a record's history
    (``flt.record_key``), to name the raw topic and offset each decision's record came from."""
    from shulian.io.reader import read_topics

    with reading("audit topics") as progress:
        parts = read_topics(settings, audit_topics, progress=progress)
    entries = [e for msgs in parts.values() for e in audit_entries(msgs)]
    headers = None
    if flt.record_key is not None and canonical_topics:
        key = flt.record_key.encode()
        with reading("canonical topics") as progress:
            canon = read_topics(settings, canonical_topics, progress=progress)
        headers = {(m.topic, m.partition, m.offset): m.headers
                   for msgs in canon.values() for m in msgs if m.key == key}
    rows = report_rows(entries, flt, canonical_headers=headers, mask_words=mask_words(catalog))
    return Report(rows=rows, summary=summary(rows))
