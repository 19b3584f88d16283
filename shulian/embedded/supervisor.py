"""A small supervisor: start children in order, wait for each to be ready, watch them, stop all.

A child that dies on its own is reported (``child.died`` with its name and exit code). A
critical child (``ChildSpec.critical``: the broker, the registry) brings the whole stack down
with a non-zero code; any other is restarted after a backoff (:class:`RestartPolicy`: 1 s,
doubling to 30 s), each restart logged (``child.restarted``) and counted per child, until it
dies too often (5 times within 60 s): then it is given up on (``child.given_up``) and the rest
of the stack keeps running. Stopping goes in reverse start order: SIGTERM to the child's process
group, SIGKILL after its timeout, reap.
"""

from __future__ import annotations

import json
import os
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
    critical: bool = False  # its death stops the stack (else it is restarted with backoff)


@dataclass(frozen=True)
class Restart:
    delay_s: float


@dataclass(frozen=True)
class GiveUp:
    deaths: int
    window_s: float


@dataclass(frozen=True)
class RestartPolicy:
    """When to restart a child that died (pure: times are the caller's monotonic seconds).

    The n-th death within ``window_s`` is restarted after ``first_s * 2**(n-1)`` seconds (at
    most ``max_s``); the ``give_up_after``-th death within ``window_s`` gives the child up.
    Deaths older than the window are forgotten, so a child that ran for a while starts again
    from ``first_s``."""

    first_s: float = 1.0
    max_s: float = 30.0
    give_up_after: int = 5
    window_s: float = 60.0

    def recent(self, deaths: Sequence[float], now: float) -> list[float]:
        return [t for t in deaths if now - t < self.window_s]

    def delay(self, n: int) -> float:
        """Seconds before restarting after the ``n``-th recent death (n >= 1)."""
        return float(min(self.max_s, self.first_s * 2.0 ** max(0, n - 1)))

    def after_death(self, deaths: Sequence[float], now: float) -> Restart | GiveUp:
        """``deaths``: the child's death times so far, this one included."""
        n = len(self.recent(deaths, now))
        if n >= self.give_up_after:
            return GiveUp(n, self.window_s)
        return Restart(self.delay(max(1, n)))


@dataclass
class RunningChild:
    spec: ChildSpec
    proc: subprocess.Popen[bytes]
    log_file: Path
    restarts: int = 0
    deaths: list[float] = field(default_factory=list)
    restart_at: float | None = None  # dead, to be started again at this monotonic time
    given_up: bool = False

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def state(self) -> str:
        if self.given_up:
            return "given up"
        if self.restart_at is not None:
            return "restarting"
        return "running" if self.proc.poll() is None else "exited"


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

    def __init__(self, *, log_dir: Path, poll_s: float = 0.1,
                 policy: RestartPolicy | None = None,
                 notify: Callable[[str], None] | None = None,
                 status_file: Path | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``notify``: one line for the user on each restart or give-up; ``status_file``: the
        children's state and restart counts as JSON (mode 0600), rewritten on each change."""
        self.log_dir = log_dir
        self.poll_s = poll_s
        self.policy = policy or RestartPolicy()
        self.notify = notify or (lambda _line: None)
        self.status_file = status_file
        self.clock = clock
        self.children: list[RunningChild] = []
        self._stop = threading.Event()
        self.died: ChildDied | None = None  # set by watch() when a critical child died

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
        """Block until a stop is requested (0) or a critical child dies (``EXIT_CHILD_DIED``);
        other children that die are restarted or given up on (:meth:`check`)."""
        self.write_status()
        while not self._stop.wait(self.poll_s):
            if self.check():
                return EXIT_CHILD_DIED
        return 0

    def check(self) -> bool:
        """One look at every child; True when a critical one died (``self.died`` says which)."""
        now = self.clock()
        for child in self.children:
            if child.given_up:
                continue
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self._restart(child)
                continue
            code = child.proc.poll()
            if code is None:
                continue
            log.error("child.died", name=child.name, code=code, log=str(child.log_file),
                      critical=child.spec.critical)
            if child.spec.critical:
                self.died = ChildDied(child.name, code, child.log_file, starting=False)
                return True
            child.deaths.append(now)
            decision = self.policy.after_death(child.deaths, now)
            if isinstance(decision, GiveUp):
                child.given_up = True
                log.error("child.given_up", name=child.name, deaths=decision.deaths,
                          window_s=decision.window_s, restarts=child.restarts)
                self.notify(f"{child.name} died {decision.deaths} times within "
                            f"{decision.window_s:.0f} s (last exit code {code}); given up on, "
                            f"the rest of the stack keeps running; see {child.log_file}")
            else:
                child.restart_at = now + decision.delay_s
                log.warning("child.restart_scheduled", name=child.name, code=code,
                            delay_s=decision.delay_s)
                self.notify(f"{child.name} exited with code {code}; restarting in "
                            f"{decision.delay_s:g} s (see {child.log_file})")
            self.write_status()
        return False

    def _restart(self, child: RunningChild) -> None:
        child.proc = spawn(child.spec.argv, env=child.spec.env, log_file=child.log_file)
        child.restart_at = None
        child.restarts += 1
        log.warning("child.restarted", name=child.name, pid=child.proc.pid,
                    restarts=child.restarts)
        self.write_status()

    def status(self) -> list[dict[str, object]]:
        """Each child's name, state, pid and restart count."""
        return [{"name": c.name, "state": c.state, "pid": c.proc.pid, "restarts": c.restarts,
                 "critical": c.spec.critical} for c in self.children]

    def write_status(self) -> None:
        if self.status_file is None:
            return
        tmp = self.status_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"children": self.status()}, fh, indent=1)
        os.replace(tmp, self.status_file)

    def restart_counts(self) -> dict[str, int]:
        return {c.name: c.restarts for c in self.children}

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
