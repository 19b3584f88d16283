"""``shulian bench``: the chain measured side by side with a plain confluent-kafka hop (the
machine's limit) and a naive Faust hop, on one embedded broker and registry. See
docs/BENCHMARKS.md."""
