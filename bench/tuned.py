"""The "tuned" hop: the same one-hop transformation as shulian.bench.limit and shulian.bench.naive,
run the way the chain runs its agents: the chain's Faust app settings
(:func:`shulian.streams.app.faust_app`), ``take_events`` batches, raw bytes, fastavro in the agent,
and the chain's own output producer (no per-record await; the batch is acknowledged only after the
broker acknowledged every output). Comparing it with the naive hop shows what batching buys in
Faust; comparing the chain with it shows what the chain's work (two hops, harmonising, four
decisions, audit) costs on top of Faust's own per-event price.

    python -m shulian.bench.tuned --bootstrap H:P --source T --sink T --count N --schema F \\
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
from shulian.chain.messages import OutMessage
from shulian.settings import load_settings
from shulian.streams.app import RawBytes, faust_app
from shulian.streams.runtime import OutputProducer
from shulian.streams.worker import tune_gc


def build_app(*, bootstrap: str, source: str, sink: str, count: int, parsed: Any,
              done: Path, datadir: str) -> faust.App:
    settings = load_settings(bootstrap_servers=bootstrap)
    app = faust_app(f"bench-tuned-{uuid.uuid4().hex[:8]}", bootstrap_servers=bootstrap,
                    datadir=datadir, behaviour=settings.behaviour())
    producer = OutputProducer(settings)
    src = app.topic(source, schema=RawBytes())
    seen = 0

    async def hop(stream: Any) -> None:
        nonlocal seen
        async for events in stream.take_events(1000, within=0.05):
            out = [OutMessage(topic=sink, key=e.message.key,
                              value=hop_value(parsed, e.message.value)) for e in events]
            await producer.deliver_async(out)
            seen += len(out)
            if seen >= count:
                done.write_text(json.dumps({"hop": "tuned", "sent": seen}))

    app.agent(src, name="hop", concurrency=1, sink=None)(hop)
    return app


def main(argv: list[str] | None = None) -> int:
    args = hop_parser(__doc__, faust_app=True).parse_args(argv)
    parsed = load_schema(args.schema)
    try:
        import asyncio

        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())  # as the chain worker does
    except ImportError:  # pragma: no cover
        pass
    app = build_app(bootstrap=args.bootstrap, source=args.source, sink=args.sink,
                    count=args.count, parsed=parsed, done=Path(args.done), datadir=args.datadir)
    worker = faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
    worker.spinner = None
    tune_gc()  # as the chain worker does
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
