"""``replay deliver`` as a service: re-derive and re-send what a consumer was delivered in a
window, to its egress topic or straight into a sink, audited in ``audit.replay.<dataset>``.

Called by ``shulian replay deliver``, the tests and a future console alike. What is sent is
re-derived by the pure :mod:`shulian.audit.rederive`; the replay audit records are the pure
:mod:`shulian.audit.redeliver`. Writing into a sink is the sink connector's own code
(``shulian.connectors.sinks.direct``), which this layer may not import: the caller passes a
:data:`SinkFactory` in. Kafka is imported inside the function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from shulian.audit.check import audit_entries
from shulian.audit.names import require_delivery
from shulian.audit.produce import Outgoing, produce_all
from shulian.audit.progress import Advance, reading
from shulian.audit.redeliver import (
    REPLAY_AUDIT_PARTITIONS,
    replay_audit_record,
    replay_audit_topic,
)
from shulian.audit.replaying import list_versions, load_catalog, master_key_of
from shulian.audit.window import Window
from shulian.chain.messages import InMessage
from shulian.chain.topology import Topology
from shulian.errors import ConfigError, ConfigIssue
from shulian.log import get_logger
from shulian.logic.auditseal import build_seal
from shulian.logic.audittrail import TailTrust, tail_tagger, trusted_tail
from shulian.settings import Settings

__all__ = ["REPLAY_WORKER", "DeliverResult", "SinkFactory", "SinkTarget", "run_redeliver"]

log = get_logger("shulian.audit.redelivering")
REPLAY_WORKER = "shulian-replay"
REPLAY_RESUME_DEPTH = 10_000  # replay audit records read back to judge the tail


class SinkTarget(Protocol):
    """A sink written to directly (``shulian.connectors.sinks.direct.DirectSink``)."""

    @property
    def target(self) -> str:
        """How the replay audit names it (``sink:<connector name>``)."""
        ...

    def write(self, messages: Sequence[InMessage], progress: Advance | None = None) -> None:
        """Verify, decode and write ``messages`` as the sink's connector would."""
        ...


# called with the egress topic the records belong to; refuses a sink that does not consume it
SinkFactory = Callable[[str], SinkTarget]


@dataclass
class DeliverResult:
    candidates: int  # live deliver audit records of the window
    refused: int  # of them, those that did not re-derive to a delivery (logged with why)
    delivered: int
    target: str
    replay_audit_topic: str
    unaudited: int = 0  # egress records of the window without a deliver audit record


def run_redeliver(settings: Settings, *, topology: Topology, consumer: str, dataset: str,
                  window: Window, sink: SinkFactory | None = None,
                  master_key: bytes | None = None) -> DeliverResult:
    """Re-derive and re-send what ``consumer`` was delivered of ``dataset`` in the window.

    The egress records of the window (by Kafka timestamp) only *select* the live deliver
    audit records they match; what is sent is re-derived from the canonical record and that
    audit record and signed like the worker (:func:`shulian.audit.rederive.rederive`). No
    egress record is ever copied, so a forgery on the egress topic cannot be re-sent. With
    ``sink`` the records go straight into the sink it makes instead of the egress topic."""
    from shulian.audit.rederive import Rederived, rederive, select_deliveries, sign_rederived
    from shulian.io.kafka import TopicSpec, admin_client, ensure_topics
    from shulian.io.reader import read_topics, read_window
    from shulian.io.setup import register_views, registry_client
    from shulian.io.tail import read_tails
    from shulian.io.trust import chain_trust
    from shulian.logic.policy import PolicyEngine
    from shulian.serde import SchemaCache

    catalog = load_catalog(settings)
    # refused before anything is read or created: a misspelt name must not make a topic
    egress_topic = require_delivery(catalog, topology, consumer, dataset)
    target = sink(egress_topic) if sink is not None else None  # a wrong sink config: refused
    key = master_key if master_key is not None else master_key_of(settings)
    if key is None:
        raise ConfigError([ConfigIssue("environment", "SHULIAN_HMAC_MASTER_KEY", "not set: "
                                       "re-delivery re-derives masked views with the chain's "
                                       "master key")])
    trust = chain_trust(settings, catalog)
    signer = trust.signer
    versions = list_versions(settings, catalog, topology)
    client = registry_client(settings)
    engines = {v: PolicyEngine(catalog=catalog, sharing_list=sl, master_key=key)
               for v, sl in versions.items()}
    views = {k: vs for sl in versions.values()
             for k, vs in register_views(catalog, sl, client).items()}
    replay_topic = replay_audit_topic(topology, dataset)
    ensure_topics(admin_client(settings), [TopicSpec(replay_topic, REPLAY_AUDIT_PARTITIONS)],
                  replication_factor=settings.replication_factor)
    with reading("audit topics") as progress:
        parts = read_topics(settings, [topology.audit(dataset)], progress=progress)
    with reading("egress window") as progress:
        sent = [m for msgs in read_window(settings, [egress_topic], window,
                                          progress=progress).values() for m in msgs]
    delivers, unaudited = select_deliveries(
        sent, (e for msgs in parts.values() for e in audit_entries(msgs)))
    for m in unaudited:
        log.warning("replay.unaudited_egress_record", topic=m.topic, partition=m.partition,
                    offset=m.offset)
    with reading("canonical topic") as progress:
        canonical = {(m.topic, m.partition, m.offset): m for msgs in read_topics(
            settings, [topology.canonical(dataset)], progress=progress).values() for m in msgs}
    schemas = SchemaCache(settings.registry_url, auth=settings.registry_auth_conf())
    now = settings.decision_clock().now()
    signed = sign_rederived([rederive(e.record, (e.topic, e.partition, e.offset),
                                      canonical=canonical, engines=engines, views=views,
                                      schemas=schemas) for e, _ in delivers], signer, at=now)
    made = list(zip(signed, (m for _, m in delivers), strict=True))
    sends = [(r, m) for r, m in made if isinstance(r, Rederived)]
    for r, _ in made:
        if not isinstance(r, Rederived):
            log.warning("replay.refused", audit=f"{r.audit_position[0]}[{r.audit_position[1]}]"
                        f"@{r.audit_position[2]}", why=r.why)
    if target is not None:  # the row names the original delivery's position
        msgs = [InMessage(r.topic, m.partition, m.offset, r.key, r.value, m.timestamp_ms,
                          list(r.headers)) for r, m in sends]
        with reading(f"writing to {target.target}", total=len(msgs)) as progress:
            target.write(msgs, progress)
        where, audit_egress = target.target, None
    else:
        where, audit_egress = egress_topic, egress_topic
        produce_all(settings, [(r.topic, m.partition, r.key, r.value, list(r.headers))
                               for r, m in sends])
    # replay audit: one chain on the single partition of audit.replay.<dataset>, continued
    # only after what the chain wrote (shulian.logic.audittrail)
    tag = tail_tagger(signer, replay_topic, 0)
    tp = (replay_topic, 0)
    tail = trusted_tail(replay_topic, 0, [
        (m.offset, m.value or b"")
        for m in read_tails(settings, [tp], depth=REPLAY_RESUME_DEPTH)[tp]],
        TailTrust(trust.keys, tag))
    chain = tail.chain(tag)
    sealed: list[Outgoing] = []
    if sends and tail.needs_resume_seal:
        log.error("audit.tail_disowned", topic=replay_topic, partition=0,
                  records=len(tail.disowned), first=tail.disowned[0],
                  why="records after the last seal that the chain did not write")
        sealed.append((replay_topic, 0, b"", build_seal(
            chain, signer, topic=replay_topic, partition=0, ts=now, worker=REPLAY_WORKER,
            resumes=tail.resumes_hash, disowned=tail.disowned), []))
    sealed += [
        (replay_topic, 0, str(r.audit.get("record_key")).encode("utf-8"),
         chain.seal(replay_audit_record(r.audit, original_position=r.audit_position,
                                        target=where, egress_topic=audit_egress, ts=now,
                                        worker=REPLAY_WORKER,
                                        egress_digest=r.content.digest)), [])
        for r, _ in sends]
    if sealed:  # signed like the worker's batches (shulian.logic.auditseal)
        sealed.append((replay_topic, 0, b"", build_seal(chain, signer, topic=replay_topic,
                                                         partition=0, ts=now,
                                                         worker=REPLAY_WORKER), []))
    produce_all(settings, sealed)
    refused = len(made) - len(sends)
    log.info("replay.delivered", target=where, records=len(sends), refused=refused,
             unaudited=len(unaudited))
    return DeliverResult(len(made), refused, len(sends), where, replay_topic, len(unaudited))
