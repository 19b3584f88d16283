"""I/O adapters for the chain worker: output producer, audit tail reader, control-topic follower.

Delivery rule (at-least-once, de-duplicated on restart): a batch's outputs are produced with
confluent-kafka (C client, no per-record await), phase by phase (egress views and dead letters,
then audit records: :attr:`OutMessage.phase`), and the agent waits for every acknowledgement
before the batch's input events are acked. After a restart the stages read back the tails of
their output partitions (:func:`read_tails`, :func:`audit_resumes`) and skip what is there.
A failed delivery is retried; if the broker stays unusable past
``fatal_after_s`` the process exits hard, before anything is acked, so a restart re-reads the
batch. (Faust's ``take_events`` acks a batch in a ``finally`` even when the body raises, so the
body must never raise on infrastructure failure.)
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from itertools import groupby
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from shulian.catalog.keys import Keyring, SigningKey
from shulian.chain.dedup import AuditResume, resume_from_audit
from shulian.chain.enforce import AuditPartition
from shulian.chain.messages import OutMessage
from shulian.io.control import ControlFollower as ControlFollower  # re-exported (worker)
from shulian.io.sender import Sender
from shulian.io.tail import last_messages as last_messages  # re-exported (worker)
from shulian.io.tail import read_tails
from shulian.log import get_logger
from shulian.logic.audittrail import TailTrust, tail_tagger
from shulian.settings import Settings

log = get_logger(__name__)


FLUSH_STEP_S = 30.0
"""How often a long wait for acknowledgements is logged."""

OUTLAST_S = 60.0
"""How much longer than the worker's own patience the client keeps a message."""


class OutputProducer:
    """Produces a batch of OutMessages and waits until every one is acknowledged.

    Delivery reports come for failures only (``delivery.report.only.error``): a successful
    delivery calls no Python, so waiting for a batch (``flush``, GIL released) never competes
    with the event loop for the interpreter. Measured before: a delivery callback per output
    (seven per raw record) queued behind the other agent's CPU work, and a batch's flush took
    200-600 ms while the broker had answered in ~35 ms. Messages whose offsets the caller needs
    (canonical records: their audit records name them) go through a second client that reports
    every delivery (:meth:`deliver_tracked_async`).
    """

    def __init__(self, settings: Settings, *, fatal_after_s: float = 300.0) -> None:
        self._reported: list[tuple[str | None, bytes | None, bytes | None, KafkaError]] = []
        # the client keeps retrying a message (same producer id and sequence: no duplicate)
        # for longer than the worker waits, so an outage ends in the worker's exit before the
        # client gives up on anything in flight: a failure report is then never followed by
        # later records of the same partition that were delivered (a gap the retry would
        # fill out of order, breaking an audit chain)
        timeout_ms = int((fatal_after_s + OUTLAST_S) * 1000)
        self._producer = Sender(settings, on_failure=self._on_failure, failures_only=True,
                                conf={"message.timeout.ms": timeout_ms})
        self._tracked = Sender(settings, conf={"message.timeout.ms": timeout_ms})
        self._fatal_after_s = fatal_after_s

    def _on_failure(self, err: KafkaError | None, msg: Any) -> None:
        """The untracked client's one delivery callback (failures only): no callback per
        message (measured: 1.0-1.4 us per produce call), the failure is matched back to its
        OutMessage after the flush (:meth:`_flush`)."""
        if err is not None:
            self._reported.append((msg.topic(), msg.key(), msg.value(), err))

    def _produce(self, producer: Sender, msgs: Sequence[OutMessage],
                 offsets: dict[int, int] | None = None) -> list[tuple[OutMessage, KafkaError]]:
        """Hand every message to the client; the returned list fills with failures (locally
        refused ones at once, the others' reports during :meth:`_flush`). ``offsets`` (tracked
        client only): filled with each delivered message's offset, by ``id`` of the message."""
        failed: list[tuple[OutMessage, KafkaError]] = []
        send = producer.send
        for m in msgs:
            headers: Any = m.headers
            kwargs: dict[str, Any] = {} if m.partition is None else {"partition": m.partition}
            if offsets is not None:
                def on_delivery(err: KafkaError | None, msg: Any, m: OutMessage = m,
                                offsets: dict[int, int] = offsets) -> None:
                    if err is not None:
                        failed.append((m, err))
                    else:
                        offsets[id(m)] = msg.offset()
                kwargs["on_delivery"] = on_delivery
            try:
                send(m.topic, m.value, m.key, headers=headers, **kwargs)
            except KafkaException as exc:  # refused locally (e.g. too large): a failure
                failed.append((m, exc.args[0]))
        return failed

    def _flush(self, producer: Sender, pending: Sequence[OutMessage],
               failed: list[tuple[OutMessage, KafkaError]], deadline: float) -> None:
        """Wait for every report of ``pending``. Messages still unacknowledged are still the
        client's (it retries them with their sequence numbers): producing them again would
        write them twice, and audit records out of order, so the wait goes on until the
        deadline, then the worker exits (nothing acked; a restart re-reads the batch)."""
        while remaining := producer.flush(FLUSH_STEP_S):
            log.warning("output.waiting_for_acks", remaining=remaining)
            if time.monotonic() > deadline:
                log.critical("output.giving_up", count=remaining)
                os._exit(70)
        if producer is self._producer and self._reported:
            failed.extend(_matched(pending, self._reported))
        if producer is self._producer:
            self._reported.clear()

    async def deliver_async(self, msgs: Sequence[OutMessage]) -> None:
        """The agents' way: produce on the event loop (CPU), wait for acknowledgements in a
        thread (no CPU, no GIL), retry failures with backoff; never raises into Faust."""
        for group in _phases(msgs):
            await self._deliver_phase(self._producer, group, None)

    async def deliver_tracked_async(self, msgs: Sequence[OutMessage]) -> list[int]:
        """One phase, as :meth:`deliver_async`; returns the offset each message was written
        at, in order."""
        offsets: dict[int, int] = {}
        await self._deliver_phase(self._tracked, msgs, offsets)
        return [offsets[id(m)] for m in msgs]

    async def _deliver_phase(self, producer: Sender, msgs: Sequence[OutMessage],
                             offsets: dict[int, int] | None) -> None:
        loop = asyncio.get_running_loop()
        try:
            pending = msgs
            deadline = time.monotonic() + self._fatal_after_s
            backoff = 0.2
            while pending:
                failed = self._produce(producer, pending, offsets)
                await loop.run_in_executor(None, self._flush, producer, pending, failed,
                                           deadline)
                pending = self._retry_or_exit(failed, deadline, backoff)
                if pending:
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
        except Exception:  # never into Faust: take_events would ack the undelivered batch
            log.exception("output.crashed", batch=len(msgs))
            os._exit(70)

    @staticmethod
    def _retry_or_exit(failed: list[tuple[OutMessage, KafkaError]], deadline: float,
                       backoff: float) -> list[OutMessage]:
        if not failed:
            return []
        log.warning("output.delivery_failed", count=len(failed), error=str(failed[0][1]),
                    retry_in_s=backoff)
        if time.monotonic() > deadline:
            log.critical("output.giving_up", count=len(failed))
            os._exit(70)  # nothing acked: a restart re-processes the batch
        return [m for m, _ in failed]

    def close(self) -> None:
        self._producer.flush(10)
        self._tracked.flush(10)


def _matched(pending: Sequence[OutMessage],
             reported: Sequence[tuple[str | None, bytes | None, bytes | None, KafkaError]]
             ) -> list[tuple[OutMessage, KafkaError]]:
    """The OutMessages of ``pending`` that delivery reports (topic, key, value) name, each
    report matching one message."""
    wanted: dict[tuple[str | None, bytes | None, bytes | None], list[KafkaError]] = {}
    for topic, key, value, err in reported:
        wanted.setdefault((topic, key, value), []).append(err)
    out: list[tuple[OutMessage, KafkaError]] = []
    for m in pending:
        errs = wanted.get((m.topic, m.key, m.value))
        if errs:
            out.append((m, errs.pop()))
    return out


def _phases(msgs: Sequence[OutMessage]) -> list[Sequence[OutMessage]]:
    """The batch split by :attr:`OutMessage.phase`, lowest first (one group when all are 0)."""
    if all(m.phase == 0 for m in msgs):
        return [msgs] if msgs else []
    return [list(g) for _, g in groupby(sorted(msgs, key=lambda m: m.phase),
                                       key=lambda m: m.phase)]


AUDIT_RESUME_DEPTH = 50_000
"""How many audit records per partition a restarted worker reads back to learn which raw
records were decided already. A raw record ingested twice (its first canonical copy decided
before the crash) is recognised if its first decision is among these. Ingest re-runs at most
its uncommitted input (about one commit interval, ~1 s) so this covers many seconds of the
chain's full throughput; duplicates older than that are not expected."""


def audit_resumes(settings: Settings, partitions: Sequence[AuditPartition], *,
                  depth: int = AUDIT_RESUME_DEPTH, signer: SigningKey | None = None,
                  keys: Keyring | None = None) -> dict[AuditPartition, AuditResume]:
    """The enforce stage's resume state for each audit partition, from its last records;
    with the chain's ``signer`` and public ``keys``, only what the chain wrote is trusted
    (:mod:`shulian.logic.audittrail`) and the resumed chains tag every record."""
    started = time.monotonic()
    tails = read_tails(settings, [(t, p) for t, p, _ in partitions], depth=depth)
    out: dict[AuditPartition, AuditResume] = {}
    for part in partitions:
        topic, partition, canonical = part
        msgs = tails[(topic, partition)]
        trust = TailTrust(keys=keys, tag=None if signer is None
                          else tail_tagger(signer, topic, partition))
        resume = resume_from_audit([m.value or b"" for m in msgs], canonical_topic=canonical,
                                   topic=topic, partition=partition, trust=trust,
                                   offsets=[m.offset for m in msgs])
        out[part] = resume
        if resume.rejected:
            log.error("audit.tail_not_continued", topic=topic, partition=partition,
                      records=resume.rejected, first=resume.disowned[0],
                      why="records after the last seal that the chain did not write (junk, "
                      "edited, mislinked or untagged): not learnt from, disowned by a resume "
                      "seal")
        log.info("audit.chain_resumed", topic=topic, partition=partition,
                 head=resume.chain.head[:12], next_seq=resume.chain.next_seq,
                 decided_through=resume.last_offset, read=len(msgs),
                 raw_sources=len(resume.origins.marks),
                 unsealed=0 if resume.tail is None else resume.tail.unsealed)
    log.info("audit.resume_read", partitions=len(partitions),
             seconds=round(time.monotonic() - started, 2))
    return out
