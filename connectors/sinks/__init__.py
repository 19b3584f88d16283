"""Sink connectors: PostgreSQL, webhook, files, Kafka bridge, and the loop they share."""
