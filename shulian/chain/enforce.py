"""Stage 2, enforce + route + audit: ``canonical.<dataset>`` -> ``egress.<consumer>.<dataset>``
and ``audit.<dataset>``.

For every canonical record and every list entry of its (dataset, provider) the policy engine
decides; a delivered view goes to the consumer's egress topic in the consumer-view schema
registered for that topic; every decision, delivered or withheld, is sealed into the audit hash
chain of the canonical record's partition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from shulian.catalog.keys import SigningKey
from shulian.chain import headers as H
from shulian.chain.dedup import AuditResume, origin_of
from shulian.chain.messages import (
    InMessage,
    OutMessage,
    SchemaLookup,
    header_str,
    read_back,
)
from shulian.chain.topology import Topology
from shulian.chain.wire import decode_body, encode_wire, split_wire
from shulian.clock import Clock
from shulian.errors import BrokerError
from shulian.log import get_logger
from shulian.logic.audit import AuditBuilder, audit_ts, record_digest
from shulian.logic.auditseal import build_seal
from shulian.logic.digests import view_digest
from shulian.logic.egress import LEAVES_PER_SIGNATURE, EgressContent, sign_batch
from shulian.logic.policy import Decision, Outcome, PolicyEngine
from shulian.logic.result import Reason, Rejected
from shulian.logic.verify import Projection

log = get_logger(__name__)

CANONICAL_DEADLETTER_AGENCY = "_canonical"

AuditPartition = tuple[str, int, str]
"""(audit topic, partition, canonical topic whose decisions it chains)."""

ResumeLoader = Callable[[Sequence[AuditPartition]], dict[AuditPartition, AuditResume]]
"""Reads the tails of audit partitions: the chain resumed after the last record there, and
what was decided already (see :mod:`shulian.chain.dedup`)."""


class AuditTailBehind(BrokerError):
    """An audit tail read back ends before records this worker had acknowledged there (a
    stale read); retried by the worker until the broker shows them."""

    def __init__(self, behind: dict[str, tuple[int, int]]) -> None:
        self.behind = behind
        super().__init__("audit tail read behind acknowledged records (next seq read, "
                         f"written): {behind}")


@dataclass(frozen=True, slots=True)
class ViewSchema:
    schema_id: int
    parsed: Any


@dataclass(frozen=True, slots=True)
class Screened:
    """See :meth:`EnforceStage.screen`."""

    write: list[OutMessage]
    finish: list[InMessage]
    skipped: int


@dataclass(frozen=True, slots=True)
class EnforceStats:
    delivered: int
    withheld: int
    rejected: int
    skipped: int = 0  # already decided before a restart (same offset, or same raw origin)


class EnforceStage:
    """Canonical messages -> egress views + audit records. Pure given its collaborators."""

    def __init__(
        self,
        *,
        topology: Topology,
        schemas: SchemaLookup,
        engine: PolicyEngine,
        views: dict[tuple[int, str], ViewSchema],
        resume_loader: ResumeLoader,
        worker: str,
        clock: Clock,
        signer: SigningKey | None = None,
        leaves_per_signature: int = LEAVES_PER_SIGNATURE,
    ) -> None:
        """``signer``: the chain's key; every egress record carries its signature, one per
        batch over a Merkle root (shulian.logic.egress; the worker always has one; sinks
        dead-letter unsigned records); ``leaves_per_signature``: egress records per signature
        at most (the proof in each has log2 of it steps)."""
        self._signer = signer
        self._leaves_per_signature = leaves_per_signature
        self._topology = topology
        self._schemas = schemas
        self._engine = engine
        self._views = views
        self._resume_loader = resume_loader
        self._worker = worker
        self._clock = clock
        self._resumes: dict[tuple[str, int], AuditResume] = {}
        # next seq of every chain forgotten at a rebalance: this worker's records up to there
        # are acknowledged, so a tail read that ends below it is stale, never continued
        self._floors: dict[tuple[str, int], int] = {}
        self._unsealed: set[tuple[str, int]] = set()  # resumed with an unsigned tail
        # resumed after records the chain did not write: a resume seal goes first
        self._disowning: set[tuple[str, int]] = set()
        self._audits = AuditBuilder(worker=worker)
        # names derived once per topic / consumer (the hot path asks for them per record)
        self._datasets: dict[str, str | None] = {}
        self._audit_topics: dict[str, str] = {}
        self._egress_topics: dict[tuple[str, str], str] = {}
        self._egress_headers: dict[tuple[int, str, str], list[tuple[str, bytes]]] = {}

    @property
    def list_version(self) -> int:
        return self._engine.list_version

    def verified_datasets(self) -> list[str]:
        """The datasets whose records the list in force projects into a verification store."""
        return self._engine.projected_datasets()

    def apply_list(self, engine: PolicyEngine, views: dict[tuple[int, str], ViewSchema]) -> None:
        """Switch to a new list version; it decides from the next record on."""
        self._views = {**self._views, **views}
        self._engine = engine

    def forget_chains(self) -> None:
        """Drop cached chain heads and de-dup marks (after a rebalance another worker may have
        written): they are read again from the audit tails on next use. What this worker
        wrote stays a floor: a tail read must reach it (see :meth:`_load_resumes`)."""
        for key, resume in self._resumes.items():
            self._floors[key] = max(self._floors.get(key, 0), resume.chain.next_seq)
        self._resumes.clear()
        self._unsealed.clear()
        self._disowning.clear()

    def chain_heads(self) -> dict[tuple[str, int], str]:
        return {k: r.chain.head for k, r in self._resumes.items()}

    def audit_heads(self) -> list[tuple[str, int, int, str]]:
        """(audit topic, partition, seq, hash) of the last record of every chain written to
        (what a checkpoint signs; between batches the last record is the batch's seal)."""
        return [(t, p, r.chain.next_seq - 1, r.chain.head)
                for (t, p), r in self._resumes.items() if r.chain.next_seq > 0]

    def _dataset(self, topic: str) -> str | None:
        try:
            return self._datasets[topic]
        except KeyError:
            dataset = self._datasets[topic] = self._topology.parse_canonical(topic)
            return dataset

    def _audit_topic(self, dataset: str) -> str:
        try:
            return self._audit_topics[dataset]
        except KeyError:
            topic = self._audit_topics[dataset] = self._topology.audit(dataset)
            return topic

    def _egress_topic(self, consumer: str, dataset: str) -> str:
        try:
            return self._egress_topics[(consumer, dataset)]
        except KeyError:
            topic = self._egress_topics[(consumer, dataset)] = self._topology.egress(
                consumer, dataset)
            return topic

    def _load_resumes(self, msgs: Iterable[InMessage | OutMessage]) -> None:
        wanted: dict[tuple[str, int], AuditPartition] = {}
        for msg in msgs:
            dataset = self._dataset(msg.topic)
            if dataset is None or msg.partition is None:
                continue
            key = (self._audit_topic(dataset), msg.partition)
            if key not in self._resumes and key not in wanted:
                wanted[key] = (key[0], key[1], msg.topic)
        if wanted:
            loaded = self._resume_loader(list(wanted.values()))
            behind = {f"{key[0]}[{key[1]}]": (loaded[part].chain.next_seq, self._floors[key])
                      for key, part in wanted.items()
                      if loaded[part].chain.next_seq < self._floors.get(key, 0)}
            if behind:
                # e.g. read from a new leader before its high watermark covered what the old
                # one acknowledged: continuing there would reuse seqs and decide records again
                raise AuditTailBehind(behind)
            for key, part in wanted.items():
                self._floors.pop(key, None)
                self._resumes[key] = loaded[part]
                if not loaded[part].sealed:  # a worker stopped between records and seal
                    self._unsealed.add(key)
                if loaded[part].disowned:  # someone else appended while it was down
                    self._disowning.add(key)

    def screen(self, ingested: Sequence[OutMessage]) -> Screened:
        """The ingest stage's outputs of a batch, before they are written (the worker runs
        both stages on one batch): which canonical records to write, and which the audit shows
        as decided already (a raw batch re-read after a crash). A record decided completely is
        dropped; one whose audit was cut short is not written again but finished at its
        first canonical offset. Dead letters pass through. Call :meth:`process` next on the
        written records (with their offsets) and on ``finish``."""
        self._load_resumes(ingested)
        write: list[OutMessage] = []
        finish: list[InMessage] = []
        skipped = 0
        for out in ingested:
            dataset = self._dataset(out.topic)
            origin = None if dataset is None else origin_of(out.headers)
            if dataset is None or origin is None or out.partition is None:
                write.append(out)
                continue
            resume = self._resumes[(self._audit_topic(dataset), out.partition)]
            if not resume.origins.written(origin.topic, origin.partition, origin.offset):
                write.append(out)
            elif resume.unfinished(origin):
                finish.append(read_back(out, offset=resume.last_offset))
            else:
                skipped += 1
        if skipped:
            log.info("enforce.skipped_decided", count=skipped, batch=len(ingested))
        return Screened(write=write, finish=finish, skipped=skipped)

    def process(self, msgs: Iterable[InMessage]) -> tuple[list[OutMessage], EnforceStats]:
        """Outputs of a batch: egress views and dead letters (phase 0), then the audit records
        (phase 1). Records the audit tail shows as decided already are skipped."""
        batch = msgs if isinstance(msgs, Sequence) else list(msgs)
        self._load_resumes(batch)
        out: list[OutMessage] = []
        delivered = withheld = rejected = skipped = 0
        resumes = self._resumes
        audits = self._audits
        # one decision time per batch (the batch is decided at once)
        batch_now = self._clock.now()
        batch_ts = audit_ts(batch_now)
        touched: set[tuple[str, int]] = set()  # audit partitions this batch appended to
        out.extend(self._resume_seals(batch_now))
        signing: list[tuple[int, EgressContent]] = []  # (index in out, what to sign)
        for msg in batch:
            dataset = self._dataset(msg.topic)
            audit_topic = "" if dataset is None else self._audit_topic(dataset)
            resume = None if dataset is None else resumes[(audit_topic, msg.partition)]
            if resume is not None and resume.skip(msg.offset):
                skipped += 1
                continue
            origin = origin_of(msg.headers)
            finishing = (resume is not None and msg.offset == resume.last_offset
                         and resume.pending_from is not None)
            if resume is not None and origin is not None and not finishing:
                if resume.origins.written(origin.topic, origin.partition, origin.offset):
                    skipped += 1  # the same raw record, ingested twice
                    continue
                resume.origins.note(origin.topic, origin.partition, origin.offset)
            decoded = self._decode(msg)
            if dataset is None or resume is None or isinstance(decoded, Rejected):
                rej = decoded if isinstance(decoded, Rejected) else Rejected(
                    Reason.UNKNOWN_DATASET, "topic is not canonical.<dataset>")
                out.append(self._deadletter(msg, dataset or "unknown", rej))
                rejected += 1
                continue
            record, provider, key = decoded
            first = 0
            now, ts = batch_now, batch_ts
            if finishing and resume.pending_from is not None:
                # its audit was cut short: decide again as then, write the missing decisions
                first = resume.pending_from
                if resume.last_ts is not None:
                    now = datetime.fromisoformat(resume.last_ts)
                    ts = audit_ts(now)
                resume.pending_from = None
            decisions = self._engine.decide(
                dataset=dataset, provider=provider, record=record, record_key=key, now=now
            )
            projection = self._engine.projection(dataset)
            if projection is not None and provider in projection.providers:
                out.extend(self._changelog(dataset, projection, record, msg.timestamp_ms))
            digest = record_digest(msg.value or b"")
            source = (msg.topic, msg.partition, msg.offset)
            from_raw = None if origin is None else (origin.topic, origin.partition,
                                                    origin.offset)
            key_bytes = key.encode("utf-8")
            chain = resume.chain
            total = len(decisions)
            if total > first:
                touched.add((audit_topic, msg.partition))
            for index, decision in enumerate(decisions):
                if index < first:
                    continue
                egress_topic: str | None = None
                egress_key: str | None = None
                egress_digest: str | None = None
                if decision.outcome is Outcome.DELIVER and decision.view is not None:
                    egress_topic = self._egress_topic(decision.consumer, dataset)
                    egress_key = str(decision.view.get("_record_key", key))
                    egress = self._egress(egress_topic, egress_key, decision)
                    # of the view only: a digest of the canonical record would let the
                    # consumer test guesses of its masked fields (shulian.logic.digests)
                    egress_digest = view_digest(egress_topic, egress.key, egress.value,
                                                decision.entry_id, decision.list_version)
                    signing.append((len(out), EgressContent(
                        egress_topic, egress.key or b"", egress.value, decision.entry_id,
                        decision.list_version, egress_digest)))
                    out.append(egress)
                    delivered += 1
                else:
                    withheld += 1
                audit = audits.build(decision, record_digest=digest, source=source, ts=ts,
                                     origin=from_raw, part=(index, total))
                audit["egress_topic"] = egress_topic
                audit["egress_key"] = egress_key
                audit["egress_digest"] = egress_digest  # the egress record's shulian.digest
                out.append(OutMessage(topic=audit_topic, key=key_bytes, value=chain.seal(audit),
                                      partition=msg.partition, phase=1))
        if skipped:
            log.info("enforce.skipped_decided", count=skipped, batch=len(batch))
        self._sign(out, signing, batch_now)
        out.extend(self._seals(touched | self._unsealed, batch_now))
        self._unsealed.clear()
        return out, EnforceStats(delivered=delivered, withheld=withheld, rejected=rejected,
                                 skipped=skipped)

    def _resume_seals(self, now: datetime) -> list[OutMessage]:
        """A resume seal for every partition resumed after records the chain did not write
        (phase 1, before the batch's audit records there): it names the last record the worker
        trusts, so neither it nor any later seal vouches for the records after that
        (:mod:`shulian.logic.audittrail`). It seals the trusted tail too."""
        if self._signer is None or not self._disowning:
            return []
        out: list[OutMessage] = []
        for topic, partition in sorted(self._disowning):
            resume = self._resumes[(topic, partition)]
            assert resume.tail is not None
            value = build_seal(resume.chain, self._signer, topic=topic, partition=partition,
                               ts=now, worker=self._worker, resumes=resume.tail.resumes_hash,
                               disowned=resume.tail.disowned)
            log.error("audit.tail_disowned", topic=topic, partition=partition,
                      records=len(resume.tail.disowned), first=resume.tail.disowned[0],
                      why="records after the last seal that the chain did not write: "
                      "not learnt from, not vouched for, named in a resume seal")
            out.append(OutMessage(topic=topic, key=b"", value=value, partition=partition,
                                  phase=1))
            self._unsealed.discard((topic, partition))
        self._disowning.clear()
        return out

    def _sign(self, out: list[OutMessage], signing: Sequence[tuple[int, EgressContent]],
              now: datetime) -> None:
        """The batch's egress records get their signature headers: one signature over the
        Merkle root of all of them, each record with its own inclusion proof."""
        if self._signer is None or not signing:
            return
        signed = sign_batch(self._signer, [c for _, c in signing], at=now,
                            per_signature=self._leaves_per_signature)
        for (i, _), extra in zip(signing, signed, strict=True):
            out[i] = replace(out[i], headers=[*out[i].headers, *extra])

    def _seals(self, touched: set[tuple[str, int]], now: datetime) -> list[OutMessage]:
        """One signed seal per audit partition the batch appended to, after its records
        (phase 2: written once they are acknowledged; :mod:`shulian.logic.auditseal`). A
        partition resumed with an unsigned tail (a worker killed before its seal) is sealed
        with the first batch that touches it."""
        if self._signer is None:
            return []
        out: list[OutMessage] = []
        for topic, partition in sorted(touched):
            chain = self._resumes[(topic, partition)].chain
            value = build_seal(chain, self._signer, topic=topic, partition=partition, ts=now,
                               worker=self._worker)
            out.append(OutMessage(topic=topic, key=b"", value=value, partition=partition,
                                  phase=2))
        return out

    def _decode(self, msg: InMessage) -> tuple[dict[str, Any], str, str] | Rejected:
        if not msg.value:
            return Rejected(Reason.EMPTY_VALUE, "canonical record has no value")
        record = msg.decoded if msg.decoded is not None else self._decode_value(msg.value)
        if isinstance(record, Rejected):
            return record
        provider = header_str(msg.headers, H.PROVIDER)
        if not provider:
            return Rejected(Reason.MAPPING_ERROR, "canonical record has no provider header")
        try:
            key = (msg.key or b"").decode("utf-8")
        except UnicodeDecodeError:
            return Rejected(Reason.BAD_WIRE_FORMAT, "canonical record key is not UTF-8")
        return record, provider, key

    def _decode_value(self, value: bytes) -> dict[str, Any] | Rejected:
        wire = split_wire(value)
        if isinstance(wire, Rejected):
            return wire
        schema_id, body = wire
        parsed = self._schemas.parsed(schema_id)
        if parsed is None:
            return Rejected(Reason.UNKNOWN_SCHEMA_ID, f"schema id {schema_id} is not registered")
        return decode_body(parsed, body)

    def _egress(self, topic: str, egress_key: str, decision: Decision) -> OutMessage:
        """The view, unsigned yet (:meth:`_sign` adds the signature headers per batch)."""
        view = self._views.get((decision.list_version, decision.entry_id))
        if view is None:  # registered when the list version was applied; absence is a bug
            raise KeyError(f"no view schema for entry {decision.entry_id} "
                           f"v{decision.list_version}")
        assert decision.view is not None
        # egress_key is the view's _record_key, pseudonymised when the consumer may not see a
        # key field (e.g. a citizen ID): the Kafka key must not leak what the view masks
        hkey = (decision.list_version, decision.entry_id, decision.provider)
        headers = self._egress_headers.get(hkey)
        if headers is None:  # the same for every view of the entry: built once, never edited
            headers = self._egress_headers[hkey] = [
                (H.ENTRY, H.text_bytes(decision.entry_id)),
                (H.LIST_VERSION, str(decision.list_version).encode()),
                (H.PROVIDER, H.text_bytes(decision.provider)),
            ]
        key = egress_key.encode("utf-8")
        value = encode_wire(view.schema_id, view.parsed, decision.view)
        return OutMessage(topic=topic, key=key, value=value, headers=headers)

    def _changelog(self, dataset: str, projection: Projection, record: dict[str, Any],
                   entered_ms: int) -> list[OutMessage]:
        """The verification store's upsert for this record (phase 0, keyed by the lookup key),
        with its source order: the store keeps the newest at the source whatever order the
        workers write in (shulian.logic.supersede)."""
        projected = projection.project(record)
        if projected is None:
            return []
        order = projection.order(record, fallback_ms=entered_ms, stored=projected[1])
        return [OutMessage(topic=self._topology.verify_changelog(dataset), key=projected[0],
                           value=projected[1], headers=[(H.ORDER, order.encode())])]

    def _deadletter(self, msg: InMessage, dataset: str, rej: Rejected) -> OutMessage:
        return OutMessage(
            topic=self._topology.deadletter(CANONICAL_DEADLETTER_AGENCY, dataset),
            key=msg.key,
            value=msg.value or b"",
            headers=H.rejected_headers(rej, source={
                "topic": msg.topic, "partition": msg.partition, "offset": msg.offset}),
        )
