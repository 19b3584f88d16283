"""Connectors: config-driven sources and sinks between agency systems and the chain."""
