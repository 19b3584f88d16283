"""The one tail reader: partitions read with ``assign()`` from given offsets to their end.

Every "read until nothing new arrives" of the project is :func:`drain` on a consumer with its
partitions assigned: audit and replay (:mod:`shulian.io.reader`), a restarted worker's output
tails (:func:`read_tails`), the control topic's followers (:mod:`shulian.io.control`) and the
console. No consumer group is joined and nothing is committed, so reading starts at once.

Where the end is (:class:`EndRule`): on Apache Kafka the end of a partition is its high
watermark, reported as end-of-partition (``enable.partition.eof``): every acknowledged write
has been read once every partition reported it (``at_eof``, per engine:
``Settings.behaviour().trust_watermarks``). Tansu's watermarks can lag what it acknowledged, so
there the end is also "nothing new for ``quiet_s``". A retriable error (a leader moving) is
waited out: the consumer carries on by itself; anything else is a :class:`BrokerError`.

:func:`in_message` is the one conversion of a confluent-kafka message to an
:class:`~shulian.chain.messages.InMessage`.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from shulian.chain.messages import InMessage
from shulian.chain.topology import READER_GROUP_PREFIX, TAIL_GROUP_PREFIX
from shulian.errors import BrokerError
from shulian.io.kafka import consumer_config, watermarks
from shulian.log import get_logger
from shulian.settings import Settings

__all__ = ["READ_TIMEOUT_S", "TAIL_QUIET_S", "TP", "EndRule", "Partitions", "Progress",
           "ReadTimedOut", "drain", "in_message", "last_messages", "read_tail", "read_tails",
           "read_to_end", "reader_group"]

log = get_logger(__name__)

TP = tuple[str, int]
Partitions = dict[TP, list[InMessage]]
Progress = Callable[[int], None]

READ_TIMEOUT_S = 600.0
"""How long a whole-partition read (audit, replay) may take before it is broken
infrastructure."""


def in_message(m: Message) -> InMessage:
    """A consumed confluent-kafka message as the stages and the services see it."""
    _, ts = m.timestamp()
    headers: Any = m.headers() or ()
    return InMessage(topic=m.topic() or "", partition=m.partition() or 0, offset=m.offset() or 0,
                     key=m.key(), value=m.value(), timestamp_ms=int(ts), headers=list(headers))


@dataclass(frozen=True, slots=True)
class EndRule:
    """When a read is done.

    - ``quiet_s``: nothing new arrived for this long and every partition reported its end;
    - ``idle_s``: nothing new arrived for this long at all (a broker that never reports an end);
    - ``at_eof``: as soon as every partition reported its end (watermarks trusted);
    - ``timeout_s``: a read still going after this long is a :class:`BrokerError`;
    - ``errors_keep_reading``: a retriable error counts as activity for ``idle_s`` (a read of
      whole topics must not end as if complete while a leader moves: it waits, bounded by
      ``timeout_s``); off for tail reads, which end on ``quiet_s`` as they always did.
    """

    quiet_s: float = 0.5
    idle_s: float = 5.0
    at_eof: bool = False
    timeout_s: float | None = None
    errors_keep_reading: bool = False

    @classmethod
    def tail(cls, settings: Settings, quiet_s: float) -> EndRule:
        """Reading a partition's last records back: the end of every partition where the
        engine's watermarks are trusted, else ``quiet_s`` without anything new."""
        return cls(quiet_s=quiet_s, idle_s=quiet_s,
                   at_eof=settings.behaviour().trust_watermarks)


class ReadTimedOut(BrokerError):
    """A read still going at its :attr:`EndRule.timeout_s`."""


def drain(consumer: Any, partitions: int, end: EndRule, take: Callable[[Message], None], *,
          batch: int = 5000, poll_s: float = 0.1, progress: Progress | None = None,
          error_event: str | None = None, enough: Callable[[], bool] | None = None,
          monotonic: Callable[[], float] = time.monotonic) -> None:
    """Consume from ``consumer`` (``partitions`` partitions assigned, end-of-partition
    reporting on) until ``end``; each record goes to ``take``. ``error_event``: a follower
    that must not stop logs every read error under this event and carries on; otherwise a
    retriable error is waited out and any other is a :class:`BrokerError`. ``enough``: reading
    is not done while it says False (a count still short of what is expected); ``monotonic``:
    the clock the end rule is measured with. Past ``end.timeout_s``: :class:`ReadTimedOut`."""
    at_end: set[TP] = set()
    now = monotonic()
    last_data = last_activity = now
    deadline = None if end.timeout_s is None else now + end.timeout_s
    while True:
        got = waited = 0
        for m in consumer.consume(batch, poll_s):
            tp = (m.topic() or "", m.partition() or 0)
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    at_end.add(tp)
                elif error_event is not None:
                    log.warning(error_event, error=str(err))
                elif not err.retriable():
                    raise BrokerError(f"reading {tp[0]}[{tp[1]}]: {err}")
                else:  # a leader moving: the consumer carries on by itself
                    waited += 1
                continue
            at_end.discard(tp)
            take(m)
            got += 1
        now = monotonic()
        if got:
            last_data = last_activity = now
            if progress is not None:
                progress(got)
        elif waited and end.errors_keep_reading:
            last_activity = now
        quiet = now - last_data
        at_the_end = len(at_end) >= partitions and (end.at_eof or quiet >= end.quiet_s)
        if ((at_the_end or now - last_activity >= end.idle_s)
                and (enough is None or enough())):
            return
        if deadline is not None and now > deadline:
            raise ReadTimedOut(f"reading {partitions} partitions did not finish in "
                               f"{end.timeout_s:.0f} s")


def reader_group(prefix: str = READER_GROUP_PREFIX) -> str:
    """A consumer group id of its own for one read (``assign()`` only: it is never joined)."""
    return f"{prefix}{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _starts_back(consumer: Any, starts: Mapping[TP, int], lookback: int) -> dict[TP, int]:
    """Each start moved to ``lookback`` records before the partition's reported end (never
    before its low watermark); the watermarks wait out a broker that is away."""
    out: dict[TP, int] = {}
    for (topic, partition), start in starts.items():
        low, high = watermarks(consumer, topic, partition)
        out[(topic, partition)] = 0 if high <= 0 else max(start, low, high - lookback)
    return out


def read_to_end(
    settings: Settings,
    starts: Mapping[TP, int],
    *,
    end: EndRule,
    lookback: int | None = None,
    keep: int | None = None,
    group_id: str | None = None,
    poll_s: float = 0.1,
    progress: Progress | None = None,
    consumer_conf: Mapping[str, Any] | None = None,
) -> Partitions:
    """Every record of each ``(topic, partition)`` from its start offset to its end
    (``end``), in offset order, with one consumer.

    ``lookback``: start that many records before each partition's reported end instead (a
    restarted stage reading its outputs back); ``keep``: hold only the last ``keep`` records of
    each partition (memory stays bounded however much more than ``lookback`` arrives);
    ``group_id``: the group named in the consumer's requests (the perimeter grants readers a
    prefix), by default :func:`reader_group`."""
    out: Partitions = {tp: [] for tp in starts}
    if not starts:
        return out
    consumer = Consumer(consumer_config(settings, group_id=group_id or reader_group(),
                                        **{"enable.partition.eof": True,
                                           **(consumer_conf or {})}))
    try:
        if lookback is not None:
            starts = _starts_back(consumer, starts, lookback)
        consumer.assign([TopicPartition(t, p, off) for (t, p), off in starts.items()])

        def take(m: Message) -> None:
            kept = out[(m.topic() or "", m.partition() or 0)]
            kept.append(in_message(m))
            if keep is not None and len(kept) > 2 * keep:
                del kept[:-keep]

        drain(consumer, len(starts), end, take, poll_s=poll_s, progress=progress)
    finally:
        consumer.close()
    if keep is None:
        return out
    return {tp: msgs[-keep:] if keep else [] for tp, msgs in out.items()}


TAIL_QUIET_S = 0.5


def read_tails(
    settings: Settings, partitions: Sequence[tuple[str, int]], *, depth: int = 1,
    quiet_s: float = TAIL_QUIET_S,
) -> dict[tuple[str, int], list[InMessage]]:
    """The last ``depth`` (at least) messages of each partition, in offset order, read with one
    consumer. Watermarks can lag on the embedded broker, so reading starts ``depth`` before the
    reported end and goes on until nothing more arrives for ``quiet_s`` (where watermarks are
    trusted, Settings.behaviour(), until every partition's end); only the last ``depth``
    messages read are kept."""
    return read_to_end(settings, dict.fromkeys(partitions, 0), end=EndRule.tail(settings, quiet_s),
                       lookback=depth, keep=depth, poll_s=0.2,
                       group_id=f"{TAIL_GROUP_PREFIX}{os.getpid()}")


def read_tail(settings: Settings, topic: str, partition: int, *,
              quiet_s: float = TAIL_QUIET_S) -> bytes | None:
    """The value of the last record in a partition (None: empty), read as :func:`read_tails`."""
    last = last_messages(settings, [(topic, partition)], quiet_s=quiet_s)[(topic, partition)]
    return None if last is None else last.value


def last_messages(settings: Settings, partitions: Sequence[tuple[str, int]], *,
                  quiet_s: float = TAIL_QUIET_S) -> dict[tuple[str, int], InMessage | None]:
    """The last message of each partition (None: empty); the ingest stage's dead-letter tails."""
    tails = read_tails(settings, partitions, depth=1, quiet_s=quiet_s)
    return {tp: (msgs[-1] if msgs else None) for tp, msgs in tails.items()}
