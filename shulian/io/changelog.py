"""The verification store: a table of the latest value per key, materialised from a compacted
changelog topic (``changelog.verify.<dataset>``), and the writer of verification audit records.

The table is rebuilt by reading every partition of the changelog from offset 0 (the broker's
compaction keeps the latest value per key; without compaction the fold gives the same table,
only slower) and then follows the topic, so a restarted or moved process answers as before.
Of two records for one key the table keeps the one newest at the source (the ``shulian.order``
header, :mod:`shulian.logic.supersede`), whatever order they arrive in; a tombstone (null
value) removes the key, and with an order it also refuses older records arriving later. Values
are kept as the changelog's bytes (a few hundred bytes of sorted JSON) and decoded on lookup:
1 million keys fit in a few hundred MB (docs/BENCHMARKS.md). No consumer group: nothing is
committed, every process reads it all.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from shulian.catalog.keys import Keyring, SigningKey
from shulian.chain.headers import ORDER
from shulian.errors import BrokerError
from shulian.io.kafka import consumer_config
from shulian.io.reader import partition_counts, read_partitions
from shulian.io.sender import Sender
from shulian.io.tail import READ_TIMEOUT_S, EndRule, read_to_end, reader_group
from shulian.log import get_logger
from shulian.logic.audit import AuditChain
from shulian.logic.auditseal import build_seal
from shulian.logic.audittrail import Tail, TailTrust, tail_tagger, trusted_tail
from shulian.logic.supersede import StoreFold
from shulian.settings import Settings

__all__ = ["ChangelogTable", "VerificationAuditWriter", "read_since"]

log = get_logger(__name__)


class ChangelogTable:
    """key -> the value newest at the source of one changelog topic, kept up to date by a
    thread (:class:`shulian.logic.supersede.StoreFold`: arrival order does not matter).

    With ``repair``, a record that arrived after a newer one for its key makes the table write
    the newer one again (same value, same order header), once caught up: compaction keeps the
    last record per key by offset, and must keep the newest at the source."""

    def __init__(self, settings: Settings, topic: str, *, repair: bool = False) -> None:
        self.topic = topic
        self._settings = settings
        self._fold = StoreFold()
        self._repair = repair
        self._sender: Sender | None = None
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self.rebuild_s: float | None = None
        self.applied = 0
        self.late = 0  # records that arrived after a newer one for their key (ignored)
        self.rewritten = 0  # newer records written again so compaction keeps them

    def get(self, key: bytes) -> bytes | None:
        return self._fold.get(key)

    def __len__(self) -> int:
        return len(self._fold)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def apply(self, key: bytes | None, value: bytes | None, order: bytes | None = None) -> None:
        if key is None:
            return
        if not self._fold.apply(key, value, order):
            self.late += 1
        self.applied += 1

    def start(self, *, wait_s: float | None = 120.0) -> None:
        """Rebuild from offset 0 (blocks until caught up; ``wait_s=None``: returns at once),
        then follow in the background."""
        self._thread = threading.Thread(target=self._run, name=f"changelog-{self.topic}",
                                        daemon=True)
        self._thread.start()
        if wait_s is not None and not self._ready.wait(wait_s):
            raise BrokerError(f"changelog {self.topic} not rebuilt within {wait_s:.0f} s: "
                              f"{self._failure or 'still reading'}")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        try:
            self._follow()
        except BaseException as exc:  # reported through start() or failure()
            self._failure = exc
            log.error("changelog.failed", topic=self.topic, error=str(exc))

    def failure(self) -> BaseException | None:
        return self._failure

    def _follow(self) -> None:
        count = partition_counts(self._settings, [self.topic])[self.topic]
        if count == 0:
            raise BrokerError(f"changelog topic {self.topic} does not exist (shulian init)")
        consumer = Consumer(consumer_config(
            self._settings, group_id=reader_group(),
            **{"enable.partition.eof": True, "fetch.max.bytes": 16 * 1024 * 1024}))
        started = time.monotonic()
        at_end: set[int] = set()
        try:
            consumer.assign([TopicPartition(self.topic, p, 0) for p in range(count)])
            while not self._stop.is_set():
                for m in consumer.consume(10000, 0.1):
                    err = m.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            at_end.add(int(m.partition() or 0))
                            continue
                        raise BrokerError(f"reading {self.topic}: {err}")
                    self.apply(m.key(), m.value(), _order(m.headers()))
                if not self._ready.is_set() and len(at_end) == count:
                    self.rebuild_s = time.monotonic() - started
                    self._ready.set()
                    log.info("changelog.rebuilt", topic=self.topic, keys=len(self._fold),
                             seconds=round(self.rebuild_s, 3), late=self.late)
                if self._ready.is_set() and self._fold.late:
                    self._rewrite_late()
        finally:
            consumer.close()
            if self._sender is not None:
                self._sender.flush(10)

    def _rewrite_late(self) -> None:
        """Write the held (newer) record of every late key again; its echo folds in as equal."""
        late, self._fold.late = self._fold.late, set()
        if not self._repair:
            return
        if self._sender is None:
            self._sender = Sender(self._settings)
        for key in sorted(late):
            held = self._fold.held(key)
            if held is None or held[1] is None:
                continue
            value, order = held
            self._sender.send(self.topic, value, key, headers=[(ORDER, order)])
            self.rewritten += 1
        self._sender.poll(0)
        log.info("changelog.rewrote_newer", topic=self.topic, keys=len(late))


def _order(headers: object) -> bytes | None:
    """The ``shulian.order`` header of a consumed message (confluent-kafka gives a list)."""
    for name, value in headers if isinstance(headers, list) else ():
        if name == ORDER:
            return value if isinstance(value, bytes) else None
    return None


VERIFY_RESUME_DEPTH = 10_000
"""Records a gateway reads back from its verification audit partition at start to judge the
tail (each write is its records and a seal in one flush, so the last seal is near the end)."""


class VerificationAuditWriter:
    """Seals verification audit records into one partition's hash chain, each write closed by
    a signed seal (as the worker seals its batches: :mod:`shulian.logic.auditseal`), and waits
    for the broker's acknowledgement before the answer leaves (an answer is never unaudited).

    One writer per partition: the chain is resumed from the partition's tail, trusting only
    what the chain wrote (:mod:`shulian.logic.audittrail`); records someone else appended are
    disowned by a resume seal before the next record."""

    def __init__(self, settings: Settings, topic: str, partition: int, *,
                 signer: SigningKey, keys: Keyring, worker: str = "gateway") -> None:
        self.topic = topic
        self.partition = partition
        self._settings = settings
        self._sender = Sender(settings, conf={"linger.ms": 0})
        self._signer = signer
        self._trust = TailTrust(keys=keys, tag=tail_tagger(signer, topic, partition))
        self._worker = worker
        self._chain: AuditChain | None = None
        self._tail: Tail | None = None  # what the resume found (cleared once sealed)
        self._lock = threading.Lock()

    def resume(self) -> None:
        tp = (self.topic, self.partition)
        msgs = read_to_end(self._settings, {tp: 0}, lookback=VERIFY_RESUME_DEPTH,
                           keep=VERIFY_RESUME_DEPTH, end=EndRule(timeout_s=READ_TIMEOUT_S))[tp]
        tail = trusted_tail(self.topic, self.partition,
                            [(m.offset, m.value or b"") for m in msgs], self._trust)
        if tail.disowned:
            log.error("audit.tail_disowned", topic=self.topic, partition=self.partition,
                      records=len(tail.disowned), first=tail.disowned[0],
                      why="records after the last seal that the chain did not write")
        self._chain = tail.chain(self._trust.tag)
        self._tail = tail

    def head(self) -> tuple[str, int, int, str] | None:
        """(topic, partition, seq, hash) of the last record written (its seal), for the
        checkpoints; None before the first write or after a failed one."""
        chain = self._chain
        if chain is None or chain.next_seq == 0 or self._tail is not None:
            return None
        return (self.topic, self.partition, chain.next_seq - 1, chain.head)

    def _sealed(self, records: list[dict[str, object]]) -> list[tuple[bytes, int]]:
        """The values to produce, with their timestamps: a resume seal first if the tail held
        records the chain did not write, the records, and a seal after them."""
        assert self._chain is not None
        first, last = _ts_ms(records[0]), _ts_ms(records[-1])
        out: list[tuple[bytes, int]] = []
        tail = self._tail
        if tail is not None and tail.needs_resume_seal:
            out.append((build_seal(self._chain, self._signer, topic=self.topic,
                                   partition=self.partition, ts=_at(first), worker=self._worker,
                                   resumes=tail.resumes_hash, disowned=tail.disowned), first))
        out.extend((self._chain.seal(dict(rec)), _ts_ms(rec)) for rec in records)
        out.append((build_seal(self._chain, self._signer, topic=self.topic,
                               partition=self.partition, ts=_at(last), worker=self._worker),
                    last))
        return out

    def write(self, records: list[dict[str, object]], *, timeout_s: float = 10.0) -> None:
        """Seal and produce ``records`` in order, and a seal after them; returns when the
        broker has them all."""
        if not records:
            return
        with self._lock:
            if self._chain is None:
                self.resume()
            for value, ts_ms in self._sealed(records):
                self._sender.send(self.topic, value, partition=self.partition, timestamp=ts_ms)
            try:
                self._sender.settle(timeout_s, what="verification audit")
            except BrokerError:
                self._chain = None  # re-read the head: what was written is unknown
                raise
            self._tail = None


def _at(ts_ms: int) -> datetime:
    return datetime.fromtimestamp(ts_ms / 1000, UTC)


def _ts_ms(record: dict[str, object]) -> int:
    """The record's decision time as the message timestamp (what :func:`read_since` seeks by;
    the decision clock, not the wall clock, decides which day a claim counts for)."""
    at = datetime.fromisoformat(str(record["ts"]).replace("Z", "+00:00"))
    return int(at.timestamp() * 1000)


def read_since(settings: Settings, topic: str, since_ms: int) -> list[bytes]:
    """The values of every partition of ``topic`` from the first message stamped at or after
    ``since_ms`` (the broker's time index: the day's records, not the whole history)."""
    count = partition_counts(settings, [topic])[topic]
    if count == 0:
        return []
    consumer = Consumer(consumer_config(settings,
                                        group_id=reader_group()))
    try:
        found = consumer.offsets_for_times(
            [TopicPartition(topic, p, since_ms) for p in range(count)], timeout=15)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=15)[1]
                for p in range(count)}
    except KafkaException as exc:
        raise BrokerError(f"cannot seek {topic} by time: {exc}") from exc
    finally:
        consumer.close()
    starts = {(topic, tp.partition): tp.offset for tp in found
              if 0 <= tp.offset < ends[tp.partition]}
    parts = read_partitions(settings, starts)
    return [m.value for msgs in parts.values() for m in msgs if m.value]
