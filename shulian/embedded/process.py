"""Child-process hygiene shared by every embedded part.

Children run in their own session (their own process group), so a Ctrl-C on the terminal reaches
only the parent, which then stops them in order. On Linux each child also gets SIGTERM when its
parent dies (``PR_SET_PDEATHSIG``), so a parent killed with SIGKILL leaves nothing behind.
Stopping sends SIGTERM to the whole group, waits, then SIGKILLs the group and reaps.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from shulian.errors import EmbeddedProcessError

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def private_append(path: Path) -> IO[bytes]:
    """``path`` opened for appending, created 0600 (its missing folders 0700)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    return os.fdopen(fd, "ab")


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    log_file: Path | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session; stdout and stderr go to ``log_file`` (appended; made
    0600, in a folder made 0700: logs may name agencies, files and errors)."""
    out: IO[bytes] | None = None
    if log_file is not None:
        out = private_append(log_file)
    try:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out if out is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
    finally:
        if out is not None:
            out.close()


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)  # the child leads its own group (start_new_session)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_process(proc: subprocess.Popen[bytes], *, timeout_s: float = 10.0) -> int:
    """SIGTERM the child's process group, SIGKILL it after ``timeout_s``; reap; exit code."""
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout_s)
    # the leader is gone; any member of its group still running gets the same treatment
    deadline = time.monotonic() + timeout_s
    if _group_alive(proc.pid):
        _signal_group(proc.pid, signal.SIGTERM)
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        _signal_group(proc.pid, signal.SIGKILL)
    return int(proc.returncode)


def pids_with_env(name: str, value: str) -> list[int]:
    """Pids of live processes (readable by us) whose environment has ``name=value``.

    Every child inherits its parent's environment, so a marker set on a stack's root finds the
    whole tree, whatever sessions its members moved to.
    """
    needle = f"{name}={value}".encode()
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def lock_data_dir(root: Path) -> IO[bytes]:
    """An exclusive lock on ``root/.lock``, held (the file left open) until :func:`unlock`:
    one broker per data folder. Another holder is an :class:`EmbeddedProcessError`."""
    fh = open(root / ".lock", "wb")  # noqa: SIM115 - held for the broker's lifetime
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        fh.close()
        raise EmbeddedProcessError(
            f"another broker is already running on {root} (lock {root / '.lock'})") from exc
    return fh


def unlock(fh: IO[bytes] | None) -> None:
    """Release a lock taken by :func:`lock_data_dir` (None: nothing held)."""
    if fh is not None:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()
