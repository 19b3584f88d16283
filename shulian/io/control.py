"""The list versions published on the control topic, parsed and checked (not yet judged: see
:func:`shulian.catalog.describe.history`). Reading never creates the topic."""

from __future__ import annotations

from shulian.catalog.load import load_sharing_list_text
from shulian.catalog.models import Catalog, SharingList
from shulian.errors import ConfigError, ConfigIssue
from shulian.io.reader import read_topics
from shulian.settings import Settings

__all__ = ["published_versions"]


def published_versions(settings: Settings, catalog: Catalog, topic: str
                       ) -> list[tuple[str, SharingList | ConfigError]]:
    """Every message of ``topic`` in offset order: the list it holds, or why it holds none."""
    out: list[tuple[str, SharingList | ConfigError]] = []
    for msgs in read_topics(settings, [topic]).values():
        for m in sorted(msgs, key=lambda m: m.offset):
            where = f"{topic}@{m.offset}"
            try:
                text = (m.value or b"").decode("utf-8")
            except UnicodeDecodeError:
                out.append((where, ConfigError([ConfigIssue(where, "(file)", "not UTF-8")])))
                continue
            try:
                out.append((where, load_sharing_list_text(text, source=where, catalog=catalog)))
            except ConfigError as exc:
                out.append((where, exc))
    return out
