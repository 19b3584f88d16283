"""I/O adapters at the edge: Kafka clients, topic administration."""
