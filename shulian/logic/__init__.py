"""The pure layer: no Kafka, Faust or HTTP imports anywhere below this package."""
