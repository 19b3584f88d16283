"""streams/transport.py replaces faust-streaming's ``Consumer._drain_messages`` with a copy that is
upstream's source verbatim except for the hunks between ``SHULIAN CHANGE`` markers (a direct
hand-over when it cannot block). A faust-streaming release that changes that loop must be read
again before the copy is trusted: the first test names the upstream source the copy was made
from, the second holds the copy to "upstream plus the marked hunks", nothing else."""

from __future__ import annotations

import difflib
import hashlib
import inspect
import re
from importlib.metadata import version

from faust.transport.consumer import Consumer

from shulian.streams.transport import ChainTransport, _Consumer

DRAIN_LOOP_SHA256 = "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417"
"""sha256 of ``inspect.getsource(Consumer._drain_messages)`` in faust-streaming 0.15.3."""

MARKED_UPSTREAM_LINES_REPLACED = 3
"""Upstream lines the marked hunks replace: the ``await self.wait_first(...)`` hand-over."""

_PRAGMA = re.compile(r"\s+# (type: ignore\[[a-z-]+\]|noqa: [A-Z0-9]+)$")


def _lines(source: str) -> list[str]:
    """Source lines without the lint pragmas our copy adds to upstream's text."""
    return [_PRAGMA.sub("", line) for line in source.splitlines()]


def _outside_markers(lines: list[str]) -> tuple[list[str], int]:
    """The copy's lines outside ``SHULIAN CHANGE`` blocks, and how many blocks there are."""
    kept: list[str] = []
    inside, blocks = False, 0
    for line in lines:
        if "# SHULIAN CHANGE" in line:
            inside = line.rstrip().endswith("begin") or "begin:" in line
            blocks += inside
            continue
        if not inside:
            kept.append(line)
    return kept, blocks


def test_faust_drain_loop_is_the_one_the_fast_path_copies() -> None:
    source = inspect.getsource(Consumer._drain_messages)
    assert hashlib.sha256(source.encode()).hexdigest() == DRAIN_LOOP_SHA256, (
        f"faust-streaming {version('faust-streaming')}'s Consumer._drain_messages is not the "
        "0.15.3 loop streams/transport.py copies: compare them, carry the SHULIAN CHANGE hunks "
        "over to the new loop, then update this hash and the pin in pyproject.toml")


def test_the_copy_is_upstream_but_for_the_marked_hunks() -> None:
    upstream = _lines(inspect.getsource(Consumer._drain_messages))
    copy = _lines(inspect.getsource(_Consumer._drain_messages))
    kept, blocks = _outside_markers(copy)
    assert blocks >= 1, "the copy lost its SHULIAN CHANGE markers"
    diff = [d for d in difflib.ndiff(upstream, kept) if d[:1] in "+-"]
    added = [d for d in diff if d.startswith("+")]
    removed = [d for d in diff if d.startswith("-")]
    assert added == [], f"unmarked changes to faust's loop: {added}"
    assert len(removed) == MARKED_UPSTREAM_LINES_REPLACED, (
        f"the marked hunks should replace {MARKED_UPSTREAM_LINES_REPLACED} upstream lines, "
        f"they replace: {removed}")


def test_the_chain_transport_uses_the_fast_path() -> None:
    consumer = ChainTransport.Consumer
    assert consumer._drain_messages is not Consumer._drain_messages
    assert issubclass(consumer, Consumer)
