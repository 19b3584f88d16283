"""Re-exports :mod:`shulian.result` (the per-record outcome values moved to the base, so the
catalogue's element checks can return them); new code imports ``shulian.result``."""

from shulian.result import Accepted, Reason, Rejected, Result, T

__all__ = ["Accepted", "Reason", "Rejected", "Result", "T"]
