"""Restart de-duplication: what a stage already wrote before it was killed (pure).

The chain is at-least-once: Faust commits input offsets about once a second after the outputs
are acknowledged, so a worker killed with SIGKILL re-reads its last uncommitted batches after
restart. Each stage therefore asks its *output* what it already holds and skips it:

- ingest, dead letters: a raw record's dead letter goes to the dead-letter partition equal to
  its raw partition (one writer per raw partition), so that partition's last record names the
  highest raw offset already rejected (:class:`SourceMarks`, loaded from one record per
  partition);
- enforce, audit: a record's egress views are acknowledged before its audit records are
  produced, so an audited canonical offset has its egress already. The tail of audit partition
  q names the last canonical offset decided (and, with ``part``, whether all its decisions were
  written): canonical offsets at or below it are skipped (:class:`AuditResume`);
- enforce, raw records read twice: the worker runs both stages on a raw batch, so after a
  crash ingest makes the same canonical records again. Canonical partition q receives each raw
  partition's records in raw-offset order, so enforce keeps the highest raw offset decided per
  raw partition (recovered from the audit tail's ``origin`` fields) and drops a canonical
  record at or below it before it is written (``EnforceStage.screen``); the last audited record,
  if its audit was cut short (:meth:`AuditResume.unfinished`), is finished at its first
  canonical offset instead. A canonical copy written but never decided is written again.

Only what the chain wrote counts: a record appended to the audit tail by someone else while
the worker was down (links computed as the worker computes them) would otherwise tell it that
raw records were decided which never were, and they would never be delivered. The tail is
judged by :func:`shulian.logic.audittrail.trusted_tail` (what the last valid seal vouches for,
then the worker's own tagged records); the rest is disowned: not learnt from, and named by the
resume seal the worker writes before its next record.

Everything here is pure: the I/O that reads the tails lives in :mod:`shulian.streams.runtime`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from shulian.chain.headers import SOURCE_OFFSET, SOURCE_PARTITION, SOURCE_TOPIC
from shulian.chain.messages import Headers
from shulian.logic.audit import AuditChain
from shulian.logic.audittrail import Tail, TailTrust, trusted_tail

__all__ = ["AuditResume", "Origin", "SourceMarks", "origin_of", "resume_from_audit"]



@dataclass(frozen=True, slots=True)
class Origin:
    """Coordinates of the record a message was made from."""

    topic: str
    partition: int
    offset: int


def origin_of(headers: Headers) -> Origin | None:
    """The ``shulian.source.*`` headers of a chain message (the first of each name), or None if
    absent or malformed. One pass over the headers: this runs for every canonical record."""
    topic = partition = offset = None
    for name, value in headers:
        if name == SOURCE_TOPIC:
            if topic is None:
                topic = value
        elif name == SOURCE_PARTITION:
            if partition is None:
                partition = value
        elif name == SOURCE_OFFSET and offset is None:
            offset = value
    if topic is None or partition is None or offset is None:
        return None
    try:
        return Origin(topic.decode("utf-8"), int(partition), int(offset))
    except (UnicodeDecodeError, ValueError):
        return None


@dataclass
class SourceMarks:
    """The highest source offset already written, per source (topic, partition).

    A source is *loaded* once its mark was read back from the output (possibly "nothing
    written": no mark); until then :meth:`loaded` is False and the stage must load it first.
    """

    marks: dict[tuple[str, int], int] = field(default_factory=dict)
    _loaded: set[tuple[str, int]] = field(default_factory=set)

    def loaded(self, topic: str, partition: int) -> bool:
        return (topic, partition) in self._loaded

    def load(self, topic: str, partition: int, offset: int | None) -> None:
        """Record what the output holds for a source (``None``: nothing)."""
        self._loaded.add((topic, partition))
        if offset is not None:
            self.note(topic, partition, offset)

    def written(self, topic: str, partition: int, offset: int) -> bool:
        """True if this source offset is at or below the mark: its output exists already."""
        mark = self.marks.get((topic, partition))
        return mark is not None and offset <= mark

    def note(self, topic: str, partition: int, offset: int) -> None:
        """An output for this source offset is being written."""
        key = (topic, partition)
        mark = self.marks.get(key)
        if mark is None or offset > mark:
            self.marks[key] = offset

    def reload(self) -> None:
        """Read every source again on next use (after a rebalance another worker may have
        written more), keeping the marks known so far as floors: they name acknowledged
        outputs, which never disappear, so a read that shows less (a tail read below a new
        leader's settling high watermark) cannot move a mark back."""
        self._loaded.clear()


@dataclass
class AuditResume:
    """What the tail of one audit partition says about the enforce stage's progress there.

    ``last_offset``: canonical offset of the last audited record (-1: none);
    ``last_origin``: its raw origin (None: none recorded);
    ``last_ts``: the decision time used for it; ``pending_from``: the index of its first
    decision that has no audit record yet (None: all were written, or unknown for records
    written before decisions were numbered); ``origins``: the highest raw offset per raw
    partition among the audited records read.
    """

    chain: AuditChain
    last_offset: int = -1
    last_origin: Origin | None = None
    last_ts: str | None = None
    pending_from: int | None = None
    origins: SourceMarks = field(default_factory=SourceMarks)
    sealed: bool = True  # no trusted record after the last seal (nothing left to seal)
    rejected: int = 0  # records disowned: after the last seal, not written by the chain
    tail: Tail | None = None  # the verdict on the partition's tail (None: not read)

    @property
    def disowned(self) -> list[int]:
        return [] if self.tail is None else self.tail.disowned

    def skip(self, canonical_offset: int) -> bool:
        """True if the record at this canonical offset was decided completely already."""
        if canonical_offset < self.last_offset:
            return True
        return canonical_offset == self.last_offset and self.pending_from is None

    def unfinished(self, origin: Origin) -> bool:
        """True if ``origin`` is the raw record of the last audited record and some of its
        decisions were never written (its audit was cut short)."""
        return self.pending_from is not None and self.last_origin == origin


def resume_from_audit(values: Iterable[bytes], *, canonical_topic: str | None = None,
                      topic: str = "", partition: int = 0, trust: TailTrust | None = None,
                      offsets: Sequence[int] | None = None) -> AuditResume:
    """Resume state from the last records of audit partition ``topic[partition]``, in offset
    order (``offsets``: theirs, default 0, 1, ...).

    Only records the writer may vouch for count (:func:`shulian.logic.audittrail.trusted_tail`
    with ``trust``; without one, every sound linked record): what a seal vouches for, then its
    own tagged records. The rest is disowned (``disowned``: their offsets): not learnt from,
    and the chain's next record must be a resume seal. Records whose ``source.topic`` is not
    ``canonical_topic`` (if given) do not count for progress."""
    values = list(values)
    trust = trust or TailTrust()
    items = list(zip(offsets if offsets is not None else range(len(values)), values,
                     strict=True))
    tail = trusted_tail(topic, partition, items, trust)
    last_rec: dict[str, object] | None = None
    last_origin: Origin | None = None
    origins = SourceMarks()
    for rec in tail.trusted:
        src = rec.get("source")
        if not isinstance(src, dict) or (canonical_topic is not None
                                         and src.get("topic") != canonical_topic):
            continue
        last_rec = rec
        last_origin = None
        origin = rec.get("origin")
        if isinstance(origin, dict):
            otopic, opartition, ooffset = (origin.get("topic"), origin.get("partition"),
                                           origin.get("offset"))
            if (isinstance(otopic, str) and isinstance(opartition, int)
                    and isinstance(ooffset, int)):
                origins.note(otopic, opartition, ooffset)
                last_origin = Origin(otopic, opartition, ooffset)
    resume = AuditResume(chain=tail.chain(trust.tag), origins=origins,
                         sealed=tail.unsealed == 0, rejected=len(tail.disowned), tail=tail)
    if last_rec is not None:
        src = last_rec["source"]
        assert isinstance(src, dict)
        offset = src.get("offset")
        if isinstance(offset, int):
            resume.last_offset = offset
            resume.last_origin = last_origin
            ts = last_rec.get("ts")
            resume.last_ts = ts if isinstance(ts, str) else None
            part = last_rec.get("part")
            if (isinstance(part, list) and len(part) == 2
                    and all(isinstance(x, int) for x in part) and part[0] + 1 < part[1]):
                resume.pending_from = part[0] + 1
    return resume
