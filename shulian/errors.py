"""One error hierarchy for broken infrastructure and bad configuration.

Per-record failures are *values* (see :mod:`shulian.logic.result`), never these exceptions.
Third-party errors are translated where they enter: ``raise BrokerError(...) from exc``.
"""

from __future__ import annotations

from dataclasses import dataclass


class ShulianError(Exception):
    """Base of every error Shulian raises on purpose."""


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in one configuration or catalogue file."""

    file: str
    field: str
    why: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.why}"


class ConfigError(ShulianError):
    """A configuration or catalogue file is invalid; start-up must stop.

    Carries every issue found, each naming the file, the field and why, and perhaps a hint
    (what to do about them).
    """

    def __init__(self, issues: list[ConfigIssue], *, hint: str | None = None) -> None:
        self.issues = list(issues)
        self.hint = hint
        lines = "\n".join(f"  - {i}" for i in self.issues)
        tail = f"\nhint: {hint}" if hint else ""
        super().__init__(f"{len(self.issues)} configuration error(s):\n{lines}{tail}")


class InfrastructureError(ShulianError):
    """A real part (broker, registry, database, HTTP endpoint) is unreachable or failing."""


class BrokerError(InfrastructureError):
    """The Kafka(-compatible) broker failed or could not be reached."""


class RegistryError(InfrastructureError):
    """The schema registry failed or could not be reached."""


class SinkError(InfrastructureError):
    """A sink's target system failed."""


class EmbeddedProcessError(InfrastructureError):
    """An embedded child (broker, object store, registry, worker) failed to start or died."""
