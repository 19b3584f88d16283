"""Resident memory of a child process, sampled from /proc every ``interval_s`` in a thread."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


def read_status_kb(pid: int, key: str) -> int | None:
    """``VmRSS`` / ``VmHWM`` (peak RSS, kept by the kernel) of ``pid`` in kB; None if gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


@dataclass
class RssSampler:
    """Samples (monotonic time, RSS bytes) of ``pid``; ``mark(name)`` notes the current RSS."""

    pid: int
    interval_s: float = 0.5
    samples: list[tuple[float, int]] = field(default_factory=list)
    marks: dict[str, int] = field(default_factory=dict)
    peak_hwm: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _sample(self) -> int | None:
        kb = read_status_kb(self.pid, "VmRSS")
        hwm = read_status_kb(self.pid, "VmHWM")
        if hwm is not None:
            self.peak_hwm = max(self.peak_hwm, hwm * 1024)
        if kb is None:
            return None
        self.samples.append((time.monotonic(), kb * 1024))
        return kb * 1024

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def start(self) -> RssSampler:
        self._sample()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def mark(self, name: str) -> None:
        rss = self._sample()
        if rss is not None:
            self.marks[name] = rss

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    @property
    def peak(self) -> int:
        sampled = max((rss for _, rss in self.samples), default=0)
        return max(sampled, self.peak_hwm)
