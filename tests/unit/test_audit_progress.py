"""Progress lines appear only on a terminal."""

from __future__ import annotations

import io
import os
import pty
import select

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
            chunks = []
            while select.select([master], [], [], 0.5)[0]:  # a pty hands data over in pieces
                chunk = os.read(master, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
            out = b"".join(chunks).decode("utf-8", "replace")
    finally:
        os.close(master)
    assert "audit topics" in out and "7" in out
