"""Stage 2, enforce + route + audit: ``canonical.<dataset>`` -> ``egress.<consumer>.<dataset>``
and ``audit.<dataset>``.

For every canonical record and every list entry of its (dataset, provider) the policy engine
decides; a delivered view goes to the consumer's egress topic in the consumer-view schema
registered for that topic; every decision, delivered or withheld, is sealed into the audit hash
chain of the canonical record's partition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shulian.chain.messages import InMessage, OutMessage, SchemaLookup, header_str
from shulian.chain.topology import Topology
from shulian.chain.wire import decode_body, encode_wire, split_wire
from shulian.logic.audit import AuditChain, build_audit, record_digest
from shulian.logic.policy import Decision, Outcome, PolicyEngine
from shulian.logic.result import Reason, Rejected

CANONICAL_DEADLETTER_AGENCY = "_canonical"

ChainLoader = Callable[[str, int], AuditChain]
"""(audit topic, partition) -> the chain resumed after the last audit record there."""


@dataclass(frozen=True, slots=True)
class ViewSchema:
    schema_id: int
    parsed: Any


@dataclass(frozen=True, slots=True)
class EnforceStats:
    delivered: int
    withheld: int
    rejected: int


class EnforceStage:
    """Canonical messages -> egress views + audit records. Pure given its collaborators."""

    def __init__(
        self,
        *,
        topology: Topology,
        schemas: SchemaLookup,
        engine: PolicyEngine,
        views: dict[tuple[int, str], ViewSchema],
        chain_loader: ChainLoader,
        worker: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._topology = topology
        self._schemas = schemas
        self._engine = engine
        self._views = views
        self._chain_loader = chain_loader
        self._worker = worker
        self._clock = clock
        self._chains: dict[tuple[str, int], AuditChain] = {}

    @property
    def list_version(self) -> int:
        return self._engine.list_version

    def apply_list(self, engine: PolicyEngine, views: dict[tuple[int, str], ViewSchema]) -> None:
        """Switch to a new list version; it decides from the next record on."""
        self._views = {**self._views, **views}
        self._engine = engine

    def forget_chains(self) -> None:
        """Drop cached chain heads (after a rebalance another worker may have written)."""
        self._chains.clear()

    def chain_heads(self) -> dict[tuple[str, int], str]:
        return {k: c.head for k, c in self._chains.items()}

    def _chain(self, audit_topic: str, partition: int) -> AuditChain:
        chain = self._chains.get((audit_topic, partition))
        if chain is None:
            chain = self._chain_loader(audit_topic, partition)
            self._chains[(audit_topic, partition)] = chain
        return chain

    def process(self, msgs: Iterable[InMessage]) -> tuple[list[OutMessage], EnforceStats]:
        out: list[OutMessage] = []
        delivered = withheld = rejected = 0
        for msg in msgs:
            dataset = self._topology.parse_canonical(msg.topic)
            decoded = self._decode(msg)
            if dataset is None or isinstance(decoded, Rejected):
                rej = decoded if isinstance(decoded, Rejected) else Rejected(
                    Reason.UNKNOWN_DATASET, "topic is not canonical.<dataset>")
                out.append(self._deadletter(msg, dataset or "unknown", rej))
                rejected += 1
                continue
            record, provider, key = decoded
            now = self._clock()
            decisions = self._engine.decide(
                dataset=dataset, provider=provider, record=record, record_key=key, now=now
            )
            digest = record_digest(msg.value or b"")
            audit_topic = self._topology.audit(dataset)
            chain = self._chain(audit_topic, msg.partition)
            for decision in decisions:
                egress_topic: str | None = None
                egress_key: str | None = None
                if decision.outcome is Outcome.DELIVER and decision.view is not None:
                    egress_topic = self._topology.egress(decision.consumer, dataset)
                    egress_key = str(decision.view.get("_record_key", key))
                    out.append(self._egress(egress_topic, key, decision))
                    delivered += 1
                else:
                    withheld += 1
                audit = build_audit(
                    decision,
                    record_digest=digest,
                    source=(msg.topic, msg.partition, msg.offset),
                    ts=now,
                    worker=self._worker,
                )
                audit["egress_topic"] = egress_topic
                audit["egress_key"] = egress_key
                out.append(
                    OutMessage(
                        topic=audit_topic,
                        key=key.encode("utf-8"),
                        value=chain.seal(audit),
                        partition=msg.partition,
                    )
                )
        return out, EnforceStats(delivered=delivered, withheld=withheld, rejected=rejected)

    def _decode(self, msg: InMessage) -> tuple[dict[str, Any], str, str] | Rejected:
        if not msg.value:
            return Rejected(Reason.EMPTY_VALUE, "canonical record has no value")
        wire = split_wire(msg.value)
        if isinstance(wire, Rejected):
            return wire
        schema_id, body = wire
        parsed = self._schemas.parsed(schema_id)
        if parsed is None:
            return Rejected(Reason.UNKNOWN_SCHEMA_ID, f"schema id {schema_id} is not registered")
        record = decode_body(parsed, body)
        if isinstance(record, Rejected):
            return record
        provider = header_str(msg.headers, "shulian.provider")
        if not provider:
            return Rejected(Reason.MAPPING_ERROR, "canonical record has no provider header")
        try:
            key = (msg.key or b"").decode("utf-8")
        except UnicodeDecodeError:
            return Rejected(Reason.BAD_WIRE_FORMAT, "canonical record key is not UTF-8")
        return record, provider, key

    def _egress(self, topic: str, key: str, decision: Decision) -> OutMessage:
        view = self._views.get((decision.list_version, decision.entry_id))
        if view is None:  # registered when the list version was applied; absence is a bug
            raise KeyError(f"no view schema for entry {decision.entry_id} "
                           f"v{decision.list_version}")
        assert decision.view is not None
        # the view's _record_key is pseudonymised when the consumer may not see a key field
        # (e.g. a citizen ID): the Kafka key must not leak what the view masks
        egress_key = str(decision.view.get("_record_key", key))
        return OutMessage(
            topic=topic,
            key=egress_key.encode("utf-8"),
            value=encode_wire(view.schema_id, view.parsed, decision.view),
            headers=[
                ("shulian.entry", decision.entry_id.encode()),
                ("shulian.list.version", str(decision.list_version).encode()),
                ("shulian.provider", decision.provider.encode()),
            ],
        )

    def _deadletter(self, msg: InMessage, dataset: str, rej: Rejected) -> OutMessage:
        return OutMessage(
            topic=self._topology.deadletter(CANONICAL_DEADLETTER_AGENCY, dataset),
            key=msg.key,
            value=msg.value or b"",
            headers=[
                ("shulian.reason", rej.reason.value.encode()),
                ("shulian.detail", rej.detail.encode("utf-8", "replace")),
                ("shulian.source.topic", msg.topic.encode()),
                ("shulian.source.partition", str(msg.partition).encode()),
                ("shulian.source.offset", str(msg.offset).encode()),
            ],
        )
