"""Progress lines appear only on a terminal."""

from __future__ import annotations

import io
import os
import pty

from shulian.audit.progress import reading


def test_no_progress_output_when_not_a_terminal() -> None:
    buf = io.StringIO()
    with reading("audit topics", stream=buf) as advance:
        advance(5)
    assert buf.getvalue() == ""


def test_progress_line_on_a_terminal() -> None:
    master, slave = pty.openpty()
    try:
        with os.fdopen(slave, "w", closefd=True) as tty:
            with reading("audit topics", total=10, stream=tty) as advance:
                advance(7)
            tty.flush()
            out = os.read(master, 65536).decode("utf-8", "replace")
    finally:
        os.close(master)
    assert "audit topics" in out and "7" in out
