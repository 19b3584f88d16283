"""EnforceStage across a simulated crash: the pure stage over the shipped catalogue, with the
audit partition kept in a list (what the broker would hold) and read back by the resume loader.

A first worker decides a batch; only its egress views and part of its audit records reach
the "broker" before it dies. A second worker resumes from that audit tail and gets the batch
again plus copies of the same raw records at new canonical offsets (re-ingested): it writes
exactly the missing decisions, with the first worker's decision time, and nothing twice."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from fastavro import parse_schema

from shulian.catalog.load import load_catalog
from shulian.catalog.models import Catalog, ShareType
from shulian.chain.dedup import resume_from_audit
from shulian.chain.enforce import AuditPartition, AuditTailBehind, EnforceStage, ViewSchema
from shulian.chain.messages import InMessage, OutMessage
from shulian.chain.topology import Topology
from shulian.chain.wire import encode_wire
from shulian.clock import FixedClock
from shulian.errors import InfrastructureError
from shulian.io.publish import load_raw_schemas
from shulian.logic.audit import verify_chain
from shulian.logic.generate import generators_for
from shulian.logic.harmonise import Harmoniser
from shulian.logic.policy import PolicyEngine
from shulian.logic.result import Accepted
from shulian.logic.views import view_schema
from shulian.settings import load_settings
from tests.fixtures.clock import EXAMPLE_CLOCK, EXAMPLE_NOW

PROVIDER, DATASET = "amr", "business_licence"
CANONICAL_ID = 1
TOPO = Topology(namespace="t")


class Lookup:
    """In-memory schema ids (the SchemaLookup protocol; the registry in production)."""

    def __init__(self, parsed: dict[int, Any]) -> None:
        self._parsed = parsed

    def parsed(self, schema_id: int) -> Any | None:
        return self._parsed.get(schema_id)

    def subjects_of(self, schema_id: int) -> frozenset[str]:
        return frozenset()


def _catalog() -> Catalog:
    s = load_settings()
    return load_catalog(s.catalog_dir, schemas_dir=s.schemas_dir)


def _canonical_batch(catalog: Catalog, n: int) -> tuple[list[InMessage], Lookup]:
    """n valid canonical messages on partition 0, from raw partition 0 offsets 0..n-1."""
    s = load_settings()
    with (s.schemas_dir / "canonical" / f"{DATASET}.avsc").open(encoding="utf-8") as fh:
        parsed = parse_schema(json.load(fh))
    gen = generators_for(catalog, load_raw_schemas(catalog, s.schemas_dir))[(PROVIDER, DATASET)]
    harmoniser = Harmoniser(catalog, clock=EXAMPLE_CLOCK)
    rng = random.Random(3)
    msgs: list[InMessage] = []
    while len(msgs) < n:
        result = harmoniser.harmonise(PROVIDER, DATASET, gen.generate(rng).raw)
        if not isinstance(result, Accepted):
            continue
        h = result.value
        raw_offset = len(msgs)
        msgs.append(InMessage(
            topic=TOPO.canonical(DATASET), partition=0, offset=raw_offset,
            key=h.key.encode(), value=encode_wire(CANONICAL_ID, parsed, h.record),
            timestamp_ms=0,
            headers=[("shulian.provider", PROVIDER.encode()),
                     ("shulian.source.topic", TOPO.raw(PROVIDER, DATASET).encode()),
                     ("shulian.source.partition", b"0"),
                     ("shulian.source.offset", str(raw_offset).encode())]))
    return msgs, Lookup({CANONICAL_ID: parsed})


def _stage(catalog: Catalog, lookup: Lookup, audit: list[bytes], now: datetime) -> EnforceStage:
    sl = catalog.current_list
    views: dict[tuple[int, str], ViewSchema] = {
        (sl.version, str(e.id)): ViewSchema(100 + i, parse_schema(
            view_schema(catalog.datasets[e.dataset], catalog.elements, e)))
        for i, e in enumerate(sl.entries) if e.share_type is not ShareType.NONE}

    def loader(parts: Sequence[AuditPartition]) -> dict[AuditPartition, Any]:
        return {p: resume_from_audit(list(audit), canonical_topic=p[2]) for p in parts}

    return EnforceStage(topology=TOPO, schemas=lookup, engine=PolicyEngine(
        catalog=catalog, sharing_list=sl, master_key=b"k"), views=views, resume_loader=loader,
        worker="w", clock=FixedClock(now))


def _audits(out: list[OutMessage]) -> list[OutMessage]:
    return [m for m in out if m.topic == TOPO.audit(DATASET)]


def test_audit_comes_after_egress_and_carries_origin_and_part() -> None:
    catalog = _catalog()
    msgs, lookup = _canonical_batch(catalog, 5)
    out, stats = _stage(catalog, lookup, [], EXAMPLE_NOW).process(msgs)
    audits = _audits(out)
    assert audits and all(m.phase == 1 for m in audits)
    assert all(m.phase == 0 for m in out if m not in audits) and stats.delivered > 0
    recs = [json.loads(m.value) for m in audits]
    per_record = len(recs) // 5
    assert [r["part"] for r in recs[:per_record]] == [[i, per_record] for i in range(per_record)]
    assert recs[0]["origin"] == {"topic": TOPO.raw(PROVIDER, DATASET), "partition": 0,
                                 "offset": 0}


FIRST_NOW = datetime(2026, 6, 1, 12, 0, 0, 123000, tzinfo=UTC)


def _first_worker_dies(catalog: Catalog) -> tuple[list[InMessage], Lookup, int, list[bytes]]:
    """A first worker decides 20 records and dies with its audit cut inside record 11 (one
    decision of it written): the batch, the lookup, decisions per record and the audit
    records that reached the broker."""
    msgs, lookup = _canonical_batch(catalog, 20)
    out, _ = _stage(catalog, lookup, [], FIRST_NOW).process(msgs)
    audits = _audits(out)
    per_record = len(audits) // len(msgs)
    assert per_record >= 2  # the catalogue has several entries for this pair
    return msgs, lookup, per_record, [m.value for m in audits[:11 * per_record + 1]]


def test_restart_writes_only_the_missing_decisions_once() -> None:
    catalog = _catalog()
    msgs, lookup, per_record, broker_audit = _first_worker_dies(catalog)

    # the second worker gets the batch again, then the same raw records re-ingested at new
    # canonical offsets 20..39, then three new ones (raw offsets 20..22) at 40..42
    more, _ = _canonical_batch(catalog, 23)
    reingested = [InMessage(topic=m.topic, partition=0, offset=20 + m.offset, key=m.key,
                            value=m.value, timestamp_ms=0, headers=m.headers) for m in msgs]
    new = [InMessage(topic=m.topic, partition=0, offset=20 + m.offset, key=m.key,
                     value=m.value, timestamp_ms=0, headers=m.headers) for m in more[20:]]
    second = _stage(catalog, lookup, broker_audit, datetime(2026, 6, 2, tzinfo=UTC))
    out2, stats2 = second.process([*msgs, *reingested, *new])
    audits2 = [json.loads(m.value) for m in _audits(out2)]

    assert stats2.skipped == 11 + 20  # 0..10 decided already, 20..39 are copies
    decided = Counter((r["origin"]["offset"], r["entry_id"])
                      for r in [json.loads(v) for v in broker_audit] + audits2)
    assert set(o for o, _ in decided) == set(range(23))
    assert all(n == 1 for n in decided.values()) and len(decided) == 23 * per_record
    # record 11's missing decisions were taken with the first worker's decision time
    finished = [r for r in audits2 if r["source"]["offset"] == 11]
    assert [r["part"][0] for r in finished] == list(range(1, per_record))
    assert {r["ts"] for r in finished} == {"2026-06-01T12:00:00.123Z"}
    # the resumed chain links to what the first worker wrote
    values = broker_audit + [m.value for m in _audits(out2)]
    assert verify_chain(list(enumerate(values))) == []


def test_screen_skips_decided_raw_records_and_finishes_the_cut_one() -> None:
    """The worker runs ingest and enforce on one raw batch: after a crash the raw batch comes
    again and ingest makes the same canonical records. ``screen`` keeps those the audit holds
    from being written twice, and hands back the one whose audit was cut short, at its first
    canonical offset, so that ``process`` writes exactly its missing decisions."""
    catalog = _catalog()
    _, lookup, per_record, broker_audit = _first_worker_dies(catalog)

    more, _ = _canonical_batch(catalog, 23)  # the raw batch again, plus raw offsets 20..22
    ingested = [OutMessage(topic=m.topic, key=m.key, value=m.value or b"", partition=0,
                           headers=[(k, v or b"") for k, v in m.headers]) for m in more]
    second = _stage(catalog, lookup, broker_audit, datetime(2026, 6, 2, tzinfo=UTC))
    screened = second.screen(ingested)

    assert screened.skipped == 11
    assert [(m.offset, m.value) for m in screened.finish] == [(11, more[11].value)]
    assert screened.write == ingested[12:]
    written = [InMessage(topic=m.topic, partition=0, offset=100 + i, key=m.key, value=m.value,
                         timestamp_ms=0, headers=m.headers)
               for i, m in enumerate(screened.write)]
    out2, stats2 = second.process([*screened.finish, *written])
    audits2 = [json.loads(m.value) for m in _audits(out2)]

    assert stats2.skipped == 0
    decided = Counter((r["origin"]["offset"], r["entry_id"])
                      for r in [json.loads(v) for v in broker_audit] + audits2)
    assert set(o for o, _ in decided) == set(range(23))
    assert all(n == 1 for n in decided.values()) and len(decided) == 23 * per_record
    finished = [r for r in audits2 if r["origin"]["offset"] == 11]
    assert [r["part"][0] for r in finished] == list(range(1, per_record))
    assert {r["source"]["offset"] for r in finished} == {11}
    assert {r["ts"] for r in finished} == {"2026-06-01T12:00:00.123Z"}
    values = broker_audit + [m.value for m in _audits(out2)]
    assert verify_chain(list(enumerate(values))) == []


def test_screen_passes_dead_letters_and_records_without_origin() -> None:
    catalog = _catalog()
    msgs, lookup = _canonical_batch(catalog, 3)
    dead = OutMessage(topic=TOPO.deadletter(PROVIDER, DATASET), key=b"k", value=b"x",
                      partition=0)
    bare = OutMessage(topic=msgs[0].topic, key=msgs[0].key, value=msgs[0].value or b"",
                      partition=0)
    screened = _stage(catalog, lookup, [], EXAMPLE_NOW).screen([dead, bare])
    assert screened.write == [dead, bare] and screened.finish == [] and screened.skipped == 0


def test_a_stale_tail_after_a_rebalance_is_refused_until_it_shows_what_was_written() -> None:
    """After a rebalance the stage reads its audit tails again. A read that ends before the
    records this worker had acknowledged (a new leader's high watermark still settling after
    a broker died) must not be continued: the chain would reuse seqs ("seq went back") and
    decide records again. It is refused (an infrastructure error, retried) until the read
    shows them; then the chain goes on after them, each decision once."""
    catalog = _catalog()
    msgs, lookup = _canonical_batch(catalog, 10)
    broker: list[bytes] = []
    stage = _stage(catalog, lookup, broker, EXAMPLE_NOW)
    first, _ = stage.process(msgs[:5])
    broker.extend(m.value for m in _audits(first))  # acknowledged
    stage.forget_chains()  # a rebalance

    acknowledged = list(broker)
    del broker[len(broker) // 2:]  # what a stale read of the tail shows
    with pytest.raises(AuditTailBehind) as refused:
        stage.process(msgs)
    assert list(refused.value.behind.values()) == [
        (json.loads(broker[-1])["seq"] + 1, json.loads(acknowledged[-1])["seq"] + 1)]
    assert isinstance(refused.value, InfrastructureError)  # the worker waits and retries

    broker[:] = acknowledged  # the high watermark has settled
    second, stats = stage.process(msgs)  # Faust hands the uncommitted batch again
    assert stats.skipped == 5
    values = acknowledged + [m.value for m in _audits(second)]
    assert verify_chain(list(enumerate(values))) == []
    decided = Counter((r["origin"]["offset"], r["entry_id"])
                      for r in (json.loads(v) for v in values) if r.get("kind") != "seal")
    assert set(o for o, _ in decided) == set(range(10)) and set(decided.values()) == {1}
