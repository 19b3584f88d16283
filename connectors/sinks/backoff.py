"""Retry policy: exponential backoff with full jitter. Pure (the caller sleeps)."""

from __future__ import annotations

import random

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["RetryPolicy"]


class RetryPolicy(BaseModel):
    """How a sink retries a failing batch.

    ``max_attempts`` None retries until the target recovers (the batch is never skipped);
    a number sends the batch to the sink's dead-letter topic after that many attempts.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: int | None = Field(default=None, ge=1)
    initial_backoff_s: float = Field(default=0.2, gt=0)
    max_backoff_s: float = Field(default=10.0, gt=0)
    multiplier: float = Field(default=2.0, ge=1.0)
    jitter: float = Field(default=0.5, ge=0.0, le=1.0)

    def delay(self, attempt: int, *, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        ``initial * multiplier**(attempt-1)`` capped at ``max_backoff_s``, then reduced by a
        random fraction of at most ``jitter`` so that many sinks do not retry in lockstep.
        """
        grown = self.initial_backoff_s * self.multiplier ** max(0, attempt - 1)
        base = min(self.max_backoff_s, grown)
        r = (rng or random).random()
        return base * (1.0 - self.jitter * r)

    def exhausted(self, attempt: int) -> bool:
        """True when ``attempt`` failed attempts use up the policy."""
        return self.max_attempts is not None and attempt >= self.max_attempts
