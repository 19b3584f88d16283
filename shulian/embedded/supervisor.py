"""A small supervisor: start children in order, wait for each to be ready, watch them, stop all.

A child that dies on its own is reported (``child.died`` with its name and exit code) and brings
the whole stack down with a non-zero code; nothing is restarted silently. Stopping goes in
reverse start order: SIGTERM to the child's process group, SIGKILL after its timeout, reap.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shulian.embedded.process import spawn, stop_process
from shulian.errors import EmbeddedProcessError
from shulian.log import get_logger

log = get_logger(__name__)

EXIT_CHILD_DIED = 1


@dataclass(frozen=True)
class ChildSpec:
    """One child of the stack: how to run it and how to tell it is ready."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    ready: Callable[[], bool] | None = None  # None: ready once started
    ready_timeout_s: float = 60.0
    stop_timeout_s: float = 10.0
    needs_init: bool = False  # starts only after topics and schemas are initialised


@dataclass
class RunningChild:
    spec: ChildSpec
    proc: subprocess.Popen[bytes]
    log_file: Path

    @property
    def name(self) -> str:
        return self.spec.name


class ChildDied(EmbeddedProcessError):
    """A child exited on its own (while starting or while running)."""

    def __init__(self, name: str, code: int, log_file: Path, *, starting: bool) -> None:
        self.name = name
        self.code = code
        self.log_file = log_file
        when = "while starting" if starting else "unexpectedly"
        super().__init__(f"{name} exited {when} with code {code}; see {log_file}")


class ChildNotReady(EmbeddedProcessError):
    """A child did not become ready within its deadline."""


class StopRequested(Exception):
    """A stop was requested (signal) while the stack was starting."""


class Supervisor:
    """Runs children; thread-safe ``request_stop`` (call it from a signal handler)."""

    def __init__(self, *, log_dir: Path, poll_s: float = 0.1) -> None:
        self.log_dir = log_dir
        self.poll_s = poll_s
        self.children: list[RunningChild] = []
        self._stop = threading.Event()
        self.died: ChildDied | None = None  # set by watch() when a child died on its own

    def request_stop(self) -> None:
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def start(self, spec: ChildSpec) -> RunningChild:
        """Start one child and wait until it is ready; raises if it dies, stalls or we stop."""
        if self._stop.is_set():
            raise StopRequested
        log_file = self.log_dir / f"{spec.name}.log"
        proc = spawn(spec.argv, env=spec.env, log_file=log_file)
        child = RunningChild(spec, proc, log_file)
        self.children.append(child)
        log.info("child.starting", name=spec.name, pid=proc.pid, log=str(log_file))
        deadline = time.monotonic() + spec.ready_timeout_s
        while True:
            code = proc.poll()
            if code is not None:
                log.error("child.died", name=spec.name, code=code, starting=True)
                raise ChildDied(spec.name, code, log_file, starting=True)
            if self._stop.is_set():
                raise StopRequested
            if spec.ready is None or _probe(spec.ready):
                break
            if time.monotonic() > deadline:
                raise ChildNotReady(f"{spec.name} not ready within {spec.ready_timeout_s}s; "
                                    f"see {log_file}")
            self._stop.wait(self.poll_s)
        log.info("child.ready", name=spec.name, pid=proc.pid)
        return child

    def start_all(self, specs: Iterable[ChildSpec]) -> None:
        for spec in specs:
            self.start(spec)

    def watch(self) -> int:
        """Block until a stop is requested (0) or a child dies (``EXIT_CHILD_DIED``)."""
        while not self._stop.wait(self.poll_s):
            for child in self.children:
                code = child.proc.poll()
                if code is not None:
                    log.error("child.died", name=child.name, code=code, log=str(child.log_file))
                    self.died = ChildDied(child.name, code, child.log_file, starting=False)
                    return EXIT_CHILD_DIED
        return 0

    def stop_all(self) -> None:
        """Stop every child in reverse start order and reap it; idempotent."""
        self._stop.set()
        for child in reversed(self.children):
            was_running = child.proc.poll() is None
            code = stop_process(child.proc, timeout_s=child.spec.stop_timeout_s)
            if was_running:
                log.info("child.stopped", name=child.name, code=code)
        self.children.clear()


def _probe(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception:  # readiness probes fail in many ways while a child starts
        return False
