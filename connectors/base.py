"""The connector interface: what ``shulian connect run`` drives, sources and sinks alike.

Lifecycle, in this order, each called once from the runner's thread:

``setup()``
    Check every endpoint the connector needs (broker, registry, database, HTTP target) and
    raise an :class:`~shulian.errors.InfrastructureError` subclass with a clear message when
    one is unreachable. Nothing is produced or consumed yet.
``start()``
    Begin work in the background and return at once.
``stop(timeout_s)``
    Stop taking new work, finish and flush what is in flight (sinks: ``flush()``; sources:
    wait for the broker's acknowledgements and persist their position), release resources.
    Idempotent.

A sink type implements :class:`shulian.connectors.sinks.loop.BatchSink` instead (``setup``,
``write_batch`` of :class:`shulian.connectors.sinks.records.SinkRecord`, ``flush``, ``close``): the
one
:class:`~shulian.connectors.sinks.connector.SinkConnector` runs every sink in its loop.

While running, ``failure()`` returns the exception that ended the connector's background work
(None while it is healthy), so the runner can stop the others and exit non-zero.

Most connectors are a loop in one thread: subclass :class:`ThreadedConnector` and implement
``setup`` and ``run(stop)``.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from typing import Protocol, runtime_checkable

from shulian.log import get_logger

__all__ = ["Connector", "ThreadedConnector"]

log = get_logger(__name__)


@runtime_checkable
class Connector(Protocol):
    """What the runner needs from every connector."""

    name: str

    def setup(self) -> None: ...

    def start(self) -> None: ...

    def stop(self, timeout_s: float = 30.0) -> None: ...

    def failure(self) -> BaseException | None: ...


class ThreadedConnector(ABC):
    """A connector whose work is ``run(stop)`` in one daemon thread.

    ``run`` must return soon after ``stop`` is set, having flushed and persisted its position.
    An exception escaping ``run`` is kept and reported by ``failure()``.
    """

    name: str

    def __init__(self, name: str) -> None:
        self.name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    @abstractmethod
    def setup(self) -> None: ...

    @abstractmethod
    def run(self, stop: threading.Event) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources after ``run`` returned (default: nothing)."""

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._main, name=f"connector-{self.name}",
                                        daemon=True)
        self._thread.start()

    def _main(self) -> None:
        try:
            self.run(self._stop)
        except BaseException as exc:  # kept for the runner, which exits non-zero
            self._failure = exc
            log.error("connector.failed", connector=self.name, error=str(exc),
                      error_type=type(exc).__name__)
        finally:
            self._stop.set()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("connector.stop_timeout", connector=self.name, timeout_s=timeout_s)
                return
        self.close()

    def failure(self) -> BaseException | None:
        return self._failure

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
