"""``audit verify`` as a service: which topics, reading them, and the verdict.

Called by ``shulian audit verify``, the tests and a future console; the checks themselves are
the pure :mod:`shulian.audit.check`. Topic and consumer names typed by a user are checked by
:mod:`shulian.audit.names` first: an unknown one is refused, never read as empty.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shulian.audit.check import (
    Break,
    audit_entries,
    completeness,
    deliveries_from_audit,
    deliveries_from_egress,
    digest_breaks,
    forged_egress,
    verify_partitions,
)
from shulian.audit.names import require_topics
from shulian.audit.progress import reading
from shulian.audit.window import Window
from shulian.catalog.keys import Keyring
from shulian.logic.checkpoint import Checkpoint, checkpoint_breaks, parse_checkpoint
from shulian.settings import Settings

__all__ = ["Topics", "VerifyResult", "catalogue_keys", "catalogue_topics", "read_checkpoints",
           "resolve_topics", "run_verify"]


@dataclass(frozen=True)
class Topics:
    audit: tuple[str, ...]
    egress: tuple[str, ...]
    canonical: tuple[str, ...]
    lists_audit: str = ""  # where the workers copy their checkpoints (audit.sharing-list)


def catalogue_topics(settings: Settings, namespace: str | None) -> Topics:
    """Audit (live, replay and verification: all sealed and checked alike), egress and
    canonical topics of the catalogue."""
    from shulian.audit.redeliver import replay_audit_topic
    from shulian.catalog.load import load_catalog
    from shulian.chain.topology import Topology, plan_topics

    catalog = load_catalog(settings.catalog_dir, schemas_dir=settings.schemas_dir)
    topology = Topology.from_settings(settings, namespace)
    plan = plan_topics(catalog, topology)
    replay = tuple(replay_audit_topic(topology, d) for d in sorted(catalog.datasets))
    return Topics(plan.audit + replay + plan.verify_audit, plan.egress, plan.canonical,
                  plan.lists_audit)


def catalogue_keys(settings: Settings) -> Keyring:
    from shulian.catalog.load import load_catalog

    return Keyring(load_catalog(settings.catalog_dir, schemas_dir=settings.schemas_dir).keys)


def resolve_topics(settings: Settings, *, namespace: str | None, audit: Sequence[str],
                   egress: Sequence[str], canonical: Sequence[str]) -> Topics:
    """The catalogue's topics, or those given; a topic given that does not exist on the broker
    is refused (exit 2), naming the existing topics nearest to it, and never read as empty."""
    require_topics(settings, "--audit-topic", audit)
    require_topics(settings, "--egress-topic", egress)
    require_topics(settings, "--canonical-topic", canonical)
    if audit:
        return Topics(tuple(audit), tuple(egress), tuple(canonical))
    found = catalogue_topics(settings, namespace)
    return Topics(found.audit, tuple(egress) or found.egress, tuple(canonical) or found.canonical,
                  found.lists_audit)


@dataclass
class VerifyResult:
    breaks: list[Break]
    audit_records: dict[tuple[str, int], int] = field(default_factory=dict)
    egress_records: int = 0
    egress_forged: int = 0  # egress records whose chain signature does not hold
    egress_unaudited: int = 0  # egress records without a matching deliver audit record
    deliveries_audited: int = 0
    canonical_records: int = 0
    # audit partition -> records after its last valid seal (a worker stopped mid-batch, or
    # records someone else appended): a warning, not a break
    unsigned_tails: dict[tuple[str, int], int] = field(default_factory=dict)
    checkpoints: int | None = None  # checkpoints checked (None: none found anywhere: a tail
    # truncated back to a seal, or a replaced topic, go unnoticed)
    checkpoint_source: str | None = None  # "store" (outside Kafka), "audit topic", "given"

    @property
    def ok(self) -> bool:
        return not self.breaks and not self.read_nothing

    @property
    def read_nothing(self) -> bool:
        """No audit record and no egress record was read: nothing was verified."""
        return sum(self.audit_records.values()) == 0 and self.egress_records == 0


def read_checkpoints(settings: Settings) -> list[Checkpoint] | None:
    """The checkpoints in the store ``SHULIAN_AUDIT_CHECKPOINT_STORE`` names (None: none
    configured)."""
    from shulian.io.checkpoints import open_store

    spec = settings.audit_checkpoint_store
    store = open_store(None if spec is None else spec.get_secret_value())
    return None if store is None else list(store.read())


def run_verify(settings: Settings, topics: Topics, window: Window, *,
               check_digests: bool = True, keys: Keyring | None = None,
               checkpoints: Sequence[Checkpoint] | None = None) -> VerifyResult:
    """Read the topics and check chains, seals, checkpoints, signatures, completeness and
    digests. ``keys``: the public keys (default: the catalogue's); ``checkpoints``: default
    those of the configured store."""
    from shulian.io.reader import read_topics

    if keys is None:
        keys = catalogue_keys(settings)
    source = "given" if checkpoints is not None else "store"
    if checkpoints is None:
        checkpoints = read_checkpoints(settings)
    if checkpoints is None and topics.lists_audit:
        # no store configured: the copies the workers put on the audit topic (weaker: a
        # writer to that topic can remove them; they still catch a replaced audit topic)
        source = "audit topic"
        copies = read_topics(settings, [topics.lists_audit])
        checkpoints = [cp for msgs in copies.values() for m in msgs
                       if (rec := parse_json(m.value)) is not None
                       and rec.get("kind") == "checkpoint"
                       and (cp := parse_checkpoint(rec)) is not None]

    with reading("audit topics") as progress:
        audit_parts = read_topics(settings, topics.audit, progress=progress)
    unsigned: dict[tuple[str, int], int] = {}
    breaks = verify_partitions(audit_parts, keys, unsigned)
    if checkpoints is not None:
        items = {tp: [(m.offset, m.value or b"") for m in msgs]
                 for tp, msgs in audit_parts.items()}
        breaks.extend(Break(*b) for b in checkpoint_breaks(checkpoints, items, keys))
    entries = [e for msgs in audit_parts.values() for e in audit_entries(msgs)]
    audited = deliveries_from_audit(entries)
    egress_topics = sorted(set(topics.egress) | {d.egress_topic for d in audited})
    with reading("egress topics") as progress:
        egress_parts = read_topics(settings, egress_topics, progress=progress)
    egress_msgs = [m for msgs in egress_parts.values() for m in msgs]
    egress, bad = deliveries_from_egress(egress_msgs)
    forged = forged_egress(egress_msgs, keys, now=None)
    bad.extend(forged)
    breaks.extend(b for b in bad if any(window.contains(m.timestamp_ms) for m in
                                        egress_parts[(b.topic, b.partition)]
                                        if m.offset == b.offset))
    unmatched = completeness(egress, audited, window)
    breaks.extend(unmatched)
    canonical_count = 0
    if check_digests and topics.canonical:
        with reading("canonical topics") as progress:
            canonical_parts = read_topics(settings, topics.canonical, progress=progress)
        values = {(m.topic, m.partition, m.offset): m.value or b""
                  for msgs in canonical_parts.values() for m in msgs}
        canonical_count = len(values)
        breaks.extend(digest_breaks(entries, values, read_topics=frozenset(topics.canonical),
                                    window=window))
    return VerifyResult(
        breaks=sorted(set(breaks)),
        audit_records={tp: len(msgs) for tp, msgs in audit_parts.items()},
        egress_records=len(egress_msgs),
        egress_forged=len({(b.topic, b.partition, b.offset) for b in forged}),
        egress_unaudited=sum(1 for b in unmatched if b.topic in set(egress_topics)),
        deliveries_audited=len(audited),
        canonical_records=canonical_count,
        unsigned_tails=unsigned,
        checkpoints=None if checkpoints is None else len(checkpoints),
        checkpoint_source=None if checkpoints is None else source,
    )


def parse_json(value: bytes | None) -> dict[str, Any] | None:
    try:
        rec = json.loads(value or b"")
    except ValueError:
        return None
    return rec if isinstance(rec, dict) else None
