"""Shulian's schema registry: Confluent Schema Registry REST API, state kept in a Kafka topic.

Layers: :mod:`.avro_schemas` and :mod:`.state` are pure (no Kafka, no HTTP); :mod:`.store` is the
Kafka adapter; :mod:`.app` maps state and errors onto the Confluent REST API.
"""
