"""The Faust app and its agent. Thin: decode events, call the stages, produce, then ack.

``chain`` consumes every raw.<agency>.<dataset> topic and runs both stages on each batch:

- ingest:  raw record -> canonical.<dataset> (partition = the raw partition) or
  deadletter.<agency>.<dataset>;
- enforce: the canonical records just written (with their offsets) ->
  egress.<consumer>.<dataset> + audit.<dataset> (the canonical record's partition).

One Faust hop per raw record: the canonical topic is written (it is the shared record of
what was harmonised, read by replay and audit tooling) but not read back by the worker, which
halves Faust's per-event cost (see docs/BENCHMARKS.md). Batches (``take_events``),
``value_serializer="raw"`` (fastavro in the stages), confluent-kafka without a per-record
await, concurrency 1 (faust-streaming #606: concurrency > 1 can commit past unprocessed
messages). Scale with partitions and processes.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import faust
from faust.sensors import Monitor
from faust.types.auth import CredentialsT

from shulian.chain.enforce import EnforceStage
from shulian.chain.ingest import IngestStage
from shulian.chain.messages import InMessage, OutMessage, read_back
from shulian.errors import InfrastructureError
from shulian.log import get_logger
from shulian.settings import ENGINE_DEFAULTS, EngineBehaviour, Settings
from shulian.streams.credentials import faust_credentials
from shulian.streams.metrics import ChainMetrics
from shulian.streams.runtime import OutputProducer
from shulian.streams.transport import ChainTransport

log = get_logger(__name__)
S = TypeVar("S", bound=Sequence[Any])
T = TypeVar("T")


@dataclass
class ChainParts:
    """Everything the agents call; built by :func:`shulian.streams.worker.build_parts`."""

    ingest: IngestStage
    enforce: EnforceStage
    producer: OutputProducer
    raw_topics: Sequence[str]
    canonical_topics: Sequence[str]
    metrics: ChainMetrics
    on_batch: Callable[[], None]  # e.g. apply a new list version between batches


def written_canonical(written: Sequence[OutMessage], offsets: Sequence[int],
                      canonical_topics: Collection[str]) -> list[InMessage]:
    """The canonical records among ``written`` as the enforce stage reads them: with the
    offsets they were written at (dead letters, also in ``written``, are left out)."""
    return [read_back(m, offset=offset)
            for m, offset in zip(written, offsets, strict=True) if m.topic in canonical_topics]


def to_in_message(event: Any) -> InMessage:
    m = event.message
    return InMessage(
        topic=m.topic,
        partition=m.partition,
        offset=m.offset,
        key=m.key,
        value=m.value,
        timestamp_ms=int((m.timestamp or 0) * 1000),
        headers=list(m.headers or ()),
    )


class RawBytes(faust.Schema):  # type: ignore[type-arg]
    """Keys and values stay the message's bytes: no serializer registry lookup per event (the
    stages decode the Avro themselves, from ``event.message``)."""

    def loads_key(self, app: Any, message: Any, *, loads: Any = None,
                  serializer: Any = None) -> Any:
        return message.key

    def loads_value(self, app: Any, message: Any, *, loads: Any = None,
                    serializer: Any = None) -> Any:
        return message.value


class QuietMonitor(Monitor):
    """Faust's default monitor keeps statistics for its web views (off here) on every message
    in and out; the chain counts in Prometheus per batch instead. The per-event hooks do
    nothing; the rest (commits, sends, rebalances) is Faust's."""

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        return None

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> Any:
        return None

    def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any,
                            state: Any = None) -> None:
        return None

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        return None


STAGE_FATAL_AFTER_S = 300.0
"""How long a stage waits for broken infrastructure (e.g. the registry, for a schema id it has
never seen) before the worker exits so that a supervisor restarts it."""


async def run_stage(fn: Callable[[S], T], msgs: S, *, stage: str,
                    fatal_after_s: float = STAGE_FATAL_AFTER_S) -> T:
    """Call a stage on a batch; never let it raise into Faust.

    ``take_events`` acks a batch in ``finally``: an exception escaping an agent would ack
    records that produced nothing, and kill the agent. Per-record failures are values already;
    what can raise here is infrastructure (retried with backoff until it is back) or a bug
    (the worker exits at once, nothing acked, a restart re-processes the batch).
    """
    started = time.monotonic()
    attempt = 0
    while True:
        try:
            return fn(msgs)
        except InfrastructureError as exc:
            attempt += 1
            waited = time.monotonic() - started
            if waited > fatal_after_s:
                log.error("stage.infrastructure_gave_up", stage=stage, waited_s=round(waited),
                          error=type(exc).__name__, detail=str(exc))
                os._exit(70)
            pause = min(10.0, 0.2 * 2 ** min(attempt, 6))
            log.warning("stage.infrastructure_retry", stage=stage, attempt=attempt,
                        retry_in_s=pause, error=type(exc).__name__, detail=str(exc))
            await asyncio.sleep(pause)
        except Exception:
            log.exception("stage.crashed", stage=stage, batch=len(msgs))
            os._exit(70)


def faust_datadir(settings: Settings) -> Path:
    """Faust keeps a small per-app directory; under the data dir, or the system temp dir."""
    base = settings.data_dir or Path(tempfile.gettempdir()) / "shulian"
    return base / "faust" / "{conf.name}"


METADATA_MAX_AGE_MS = 10_000
"""How old the worker consumer's cluster metadata may get (see :func:`faust_app`)."""


def faust_app(app_id: str, *, bootstrap_servers: str, datadir: Path | str,
              behaviour: EngineBehaviour | None = None,
              credentials: CredentialsT | None = None) -> faust.App:
    """A Faust app set up the chain's way (raw bytes in and out, batches of up to 5,000 per
    fetch, the engine's fetch wait and session timeout, topics never declared by Faust). No
    agents yet. ``behaviour``: the engine's (default: the embedded broker's); ``credentials``:
    this process's identity on a SASL or TLS listener (:func:`shulian.streams.credentials.
    faust_credentials`)."""
    beh = behaviour or ENGINE_DEFAULTS["tansu"]
    app = faust.App(
        app_id,
        broker=[f"kafka://{b}" for b in bootstrap_servers.split(",")],
        broker_credentials=credentials,
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        topic_allow_declare=False,  # topics are created by `shulian init` with explicit partitions
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=beh.session_timeout_ms / 1000,
        broker_heartbeat_interval=beh.heartbeat_interval_ms / 1000,
        broker_max_poll_records=5000,
        stream_buffer_maxsize=65536,
        consumer_max_fetch_size=16 * 1024 * 1024,
        # aiokafka 0.14 answers NOT_LEADER on a ListOffsets (a partition without a committed
        # offset, reset to earliest) by asking the same old leader again, and only the periodic
        # metadata refresh (default every 300 s) tells it where the partition went: after two
        # of three Kafka nodes came back, a worker stood still for 291 s. Every 10 s instead.
        consumer_metadata_max_age_ms=METADATA_MAX_AGE_MS,
        broker_commit_interval=1.0,
        datadir=str(datadir),  # never the current directory
        Monitor=QuietMonitor,
    )
    transport = ChainTransport(app.conf.broker_consumer, app)
    transport.fetch_max_wait_ms = beh.fetch_max_wait_ms
    app.transport = transport
    return app


def create_app(settings: Settings, parts: ChainParts, *, app_id: str) -> faust.App:
    """A Faust app wired to the given parts. No side effects until a worker runs it."""
    app = faust_app(app_id, bootstrap_servers=settings.bootstrap_servers,
                    datadir=faust_datadir(settings), behaviour=settings.behaviour(),
                    credentials=faust_credentials(settings))
    raw = app.topic(*parts.raw_topics, schema=RawBytes())
    canonical_topics = frozenset(parts.canonical_topics)
    batch, within = settings.batch_size, settings.batch_within_s

    async def chain(stream: Any) -> None:  # faust.Stream; take_events is not in its stubs
        async for events in stream.take_events(batch, within=within):
            parts.on_batch()
            msgs = [to_in_message(e) for e in events]
            t0 = time.monotonic()
            ingested, rejected = await run_stage(parts.ingest.process, msgs, stage="ingest")
            screened = await run_stage(parts.enforce.screen, ingested, stage="enforce")
            t1 = time.monotonic()
            # canonical records and dead letters first: the audit records name the canonical
            # offsets, and an audited raw record must have its canonical record written
            offsets = await parts.producer.deliver_tracked_async(screened.write)
            t2 = time.monotonic()
            canonical = [*screened.finish, *written_canonical(screened.write, offsets,
                                                              canonical_topics)]
            out, stats = await run_stage(parts.enforce.process, canonical, stage="enforce")
            t3 = time.monotonic()
            await parts.producer.deliver_async(out)  # egress views, then audit records
            log.debug("batch.done", records=len(msgs), canonical=len(canonical),
                      outputs=len(screened.write) + len(out),
                      process_ms=round((t1 - t0 + t3 - t2) * 1000, 1),
                      deliver_ms=round((t2 - t1 + time.monotonic() - t3) * 1000, 1))
            parts.metrics.ingested(len(msgs), rejected)
            parts.metrics.enforced(len(canonical), stats)
            for rej in rejected:
                log.info("record.rejected", reason=rej.reason.value, field=rej.field,
                         check=rej.check)

    app.agent(raw, name="chain", concurrency=1, sink=None)(chain)

    @app.timer(interval=1.0)  # type: ignore[untyped-decorator]
    async def _follow_control() -> None:
        # an idle worker applies new list versions too (not only between batches)
        parts.on_batch()

    @app.on_partitions_revoked.connect
    async def _forget_heads(*_: Any, **__: Any) -> None:
        # another worker may have written to our audit partitions: re-read heads on next use
        parts.enforce.forget_chains()

    return app
