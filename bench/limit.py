"""The "limit" hop: a plain confluent-kafka loop in one process.

consume -> fastavro decode -> change one field -> encode -> produce, until ``--count`` records
have been consumed; then flush and exit 0. Partitions are assigned (no consumer group), and the
producer uses the same settings as the chain's (shulian.io.kafka.producer_config).

    python -m shulian.bench.limit --bootstrap H:P --source T --sink T --count N --schema FILE
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import uuid
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from shulian.chain.wire import HEADER_SIZE
from shulian.io.kafka import consumer_config
from shulian.io.sender import Sender
from shulian.settings import load_settings

CHANGED_FIELD = "ZS"


def change(record: dict[str, Any]) -> None:
    """The one field the hops change (both the same way)."""
    record[CHANGED_FIELD] = record[CHANGED_FIELD].upper()


def hop_value(parsed: Any, value: bytes) -> bytes:
    """Decode a wire-format value, change one field, encode it under the same schema id."""
    record = schemaless_reader(io.BytesIO(value[HEADER_SIZE:]), parsed, None)
    assert isinstance(record, dict)
    change(record)
    out = io.BytesIO()
    out.write(value[:HEADER_SIZE])
    schemaless_writer(out, parsed, record)
    return out.getvalue()


def hop_parser(description: str | None, *, faust_app: bool = False) -> argparse.ArgumentParser:
    """The arguments every measured hop takes (this one, shulian.bench.naive, shulian.bench.tuned);
    a Faust hop also writes ``--done`` when finished and keeps its state under ``--datadir``."""
    ap = argparse.ArgumentParser(description=description)
    for name in ("--bootstrap", "--source", "--sink"):
        ap.add_argument(name, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--schema", required=True)
    if faust_app:
        ap.add_argument("--done", required=True)
        ap.add_argument("--datadir", required=True)
    return ap


def load_schema(path: str) -> Any:
    """The hop's Avro schema file, parsed by fastavro."""
    with open(path, encoding="utf-8") as fh:
        return parse_schema(json.load(fh))


def main(argv: list[str] | None = None) -> int:
    ap = hop_parser(__doc__)
    ap.add_argument("--partitions", type=int, required=True)
    args = ap.parse_args(argv)

    settings = load_settings(bootstrap_servers=args.bootstrap)
    parsed = load_schema(args.schema)
    consumer = Consumer(consumer_config(
        settings, group_id=f"bench-limit-{uuid.uuid4().hex[:8]}",
        **{"fetch.max.bytes": 16 * 1024 * 1024}))
    consumer.assign([TopicPartition(args.source, p, 0) for p in range(args.partitions)])
    sender = Sender(settings)
    send, sink = sender.send, args.sink
    seen = 0
    while seen < args.count:
        for m in consumer.consume(5000, 1.0):
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                print(f"consume error: {err}", file=sys.stderr)
                return 1
            value = hop_value(parsed, m.value() or b"")
            send(sink, value, m.key())
            seen += 1
        sender.poll(0)
    remaining = sender.flush(60)
    consumer.close()
    print(json.dumps({"hop": "limit", "consumed": seen, "unflushed": remaining}))
    return 0 if remaining == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
