"""The "naive" hop: the same one-hop transformation as shulian.bench.limit, written as an idiomatic,
untuned Faust agent (``async for`` over the stream, ``await topic.send`` per record).

Only what it needs to run here is set: raw serializers, no web server, topics not declared
(the harness creates them with explicit partition counts), a short session timeout so the first
group join on the embedded broker does not take ~23 s (joining happens before the measured
interval). When ``--count`` records are sent it writes ``--done`` (the harness then stops it).

    python -m shulian.bench.naive --bootstrap H:P --source T --sink T --count N --schema F \\
        --done F --datadir D
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

import faust

from shulian.bench.limit import hop_parser, hop_value, load_schema


def build_app(*, bootstrap: str, source: str, sink: str, count: int, parsed: Any,
              done: Path, datadir: str) -> faust.App:
    app = faust.App(
        f"bench-naive-{uuid.uuid4().hex[:8]}",
        broker=f"kafka://{bootstrap}",
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=6.0,
        datadir=datadir,
    )
    src = app.topic(source, value_serializer="raw", key_serializer="raw")
    dst = app.topic(sink, value_serializer="raw", key_serializer="raw")
    seen = 0

    async def hop(stream: Any) -> None:
        nonlocal seen
        async for key, value in stream.items():
            await dst.send(key=key, value=hop_value(parsed, value))
            seen += 1
            if seen == count:
                done.write_text(json.dumps({"hop": "naive", "sent": seen}))

    app.agent(src, name="hop")(hop)
    return app


def main(argv: list[str] | None = None) -> int:
    args = hop_parser(__doc__, faust_app=True).parse_args(argv)
    parsed = load_schema(args.schema)
    app = build_app(bootstrap=args.bootstrap, source=args.source, sink=args.sink,
                    count=args.count, parsed=parsed, done=Path(args.done), datadir=args.datadir)
    worker = faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
