"""Progress lines for long audit and replay runs: rich, on stderr, only when stderr is a TTY.

:func:`reading` yields a callback ``advance(n)``; when stderr is not a terminal (a pipe, a log
file, CI) it yields a no-op, so redirected output carries no spinner frames.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

__all__ = ["Advance", "reading"]

Advance = Callable[[int], None]


def _noop(_n: int) -> None:
    return None


@contextmanager
def reading(label: str, *, total: int | None = None, unit: str = "records",
            stream: TextIO | None = None) -> Iterator[Advance]:
    """A progress line counting ``unit`` (a bar when ``total`` is known); yields ``advance``."""
    out = stream if stream is not None else sys.stderr
    if not out.isatty():
        yield _noop
        return
    columns: list[ProgressColumn] = [SpinnerColumn(), TextColumn("{task.description}")]
    if total is not None:
        columns.append(BarColumn())
    columns += [TextColumn("{task.completed:,} " + unit), TimeElapsedColumn()]
    console = Console(file=out, stderr=stream is None)
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)
