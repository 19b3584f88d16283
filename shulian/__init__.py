"""Shulian (数链): a streaming data chain for cross-agency government data sharing."""

__version__ = "0.1.0"
