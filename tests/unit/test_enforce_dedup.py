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

from shulian.catalog.keys import CHAIN, Keyring, SigningKey
from shulian.catalog.load import load_catalog
from shulian.catalog.models import Catalog, PublicKey, ShareType
from shulian.chain.dedup import resume_from_audit
from shulian.chain.enforce import AuditPartition, AuditTailBehind, EnforceStage, ViewSchema
from shulian.chain.messages import InMessage, OutMessage
from shulian.chain.topology import Topology
from shulian.chain.wire import encode_wire
from shulian.clock import FixedClock
from shulian.errors import InfrastructureError
from shulian.io.publish import load_raw_schemas
from shulian.logic.audit import AuditChain, encode, hash_record, verify_chain
from shulian.logic.auditseal import build_seal, verify_seals
from shulian.logic.audittrail import TailTrust, tail_tagger
from shulian.logic.egress import SIGNATURE_HEADER, verify_egress
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


CHAIN_KEY = SigningKey.generate("chain-test-1")
KEYS = Keyring([PublicKey(id=CHAIN_KEY.key_id, owner=CHAIN, public_key=CHAIN_KEY.public_b64,
                          valid_from=datetime(2026, 1, 1, tzinfo=UTC))])


def _stage(catalog: Catalog, lookup: Lookup, audit: list[bytes], now: datetime, *,
           signed: bool = False, signer: SigningKey | None = None) -> EnforceStage:
    """The stage over ``audit`` (the partition as the broker holds it); ``signed``: with the
    chain's key, as a production worker (seals, tail tags, only trusted records learnt)."""
    sl = catalog.current_list
    views: dict[tuple[int, str], ViewSchema] = {
        (sl.version, str(e.id)): ViewSchema(100 + i, parse_schema(
            view_schema(catalog.datasets[e.dataset], catalog.elements, e)))
        for i, e in enumerate(sl.entries) if e.share_type is not ShareType.NONE}

    def loader(parts: Sequence[AuditPartition]) -> dict[AuditPartition, Any]:
        return {p: resume_from_audit(
            list(audit), canonical_topic=p[2], topic=p[0], partition=p[1],
            trust=TailTrust(KEYS, tail_tagger(CHAIN_KEY, p[0], p[1])) if signed else None)
            for p in parts}

    return EnforceStage(topology=TOPO, schemas=lookup, engine=PolicyEngine(
        catalog=catalog, sharing_list=sl, master_key=b"k"), views=views, resume_loader=loader,
        worker="w", clock=FixedClock(now),
        signer=signer if signer is not None else (CHAIN_KEY if signed else None))


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


# --- a forged record in the unsealed tail, written while the worker is down -------------------

def _ingested(msgs: Sequence[InMessage]) -> list[OutMessage]:
    return [OutMessage(topic=m.topic, key=m.key, value=m.value or b"", partition=0,
                       headers=[(k, v or b"") for k, v in m.headers]) for m in msgs]


def _forge_after(audit: list[bytes], *, raw_offset: int, canonical_offset: int) -> bytes:
    """What an attacker with write access appends: the worker's last genuine decision record
    made to claim that raw record ``raw_offset`` was decided, every field as the worker writes
    it (its tag copied, since the attacker cannot make one), linked and hashed exactly as
    AuditChain does, encoded with the same canonical encoder."""
    genuine = next(json.loads(v) for v in reversed(audit)
                   if json.loads(v).get("kind") == "decision")
    last = json.loads(audit[-1])
    forged = {**genuine, "origin": {**genuine["origin"], "offset": raw_offset},
              "source": {**genuine["source"], "offset": canonical_offset},
              "part": [genuine["part"][1] - 1, genuine["part"][1]],
              "seq": last["seq"] + 1, "prev_hash": last["hash"]}
    forged.pop("hash")
    forged["hash"] = hash_record(forged)
    return encode(forged)


def test_a_forged_tail_record_neither_steers_dedup_nor_gets_vouched_for() -> None:
    catalog = _catalog()
    msgs, lookup = _canonical_batch(catalog, 10)
    out1, _ = _stage(catalog, lookup, [], FIRST_NOW, signed=True).process(msgs[:5])
    broker = [m.value for m in _audits(out1)]  # five records' decisions, then the seal
    assert json.loads(broker[-1])["kind"] == "seal"
    forged = _forge_after(broker, raw_offset=9, canonical_offset=9)
    broker.append(forged)
    forged_at = len(broker) - 1
    # the links hold and, without the chain's trust, the forgery would say raw 5..9 are decided
    assert verify_chain(list(enumerate(broker))) == []
    assert resume_from_audit(broker).origins.written(TOPO.raw(PROVIDER, DATASET), 0, 7)

    second = _stage(catalog, lookup, broker, datetime(2026, 6, 2, tzinfo=UTC), signed=True)
    screened = second.screen(_ingested(msgs[5:]))
    assert screened.skipped == 0 and len(screened.write) == 5  # none suppressed
    out2, stats2 = second.process(msgs[5:])
    assert stats2.skipped == 0 and stats2.delivered > 0
    audits2 = [json.loads(m.value) for m in _audits(out2)]
    resume_seal = audits2[0]
    assert resume_seal["kind"] == "seal" and resume_seal["disowned"] == [forged_at]
    assert resume_seal["resumes"] == json.loads(broker[-2])["hash"]  # the worker's own seal
    decided = Counter(r["origin"]["offset"] for r in audits2 if r["kind"] == "decision")
    assert set(decided) == set(range(5, 10))

    partition = list(enumerate(broker + [m.value for m in _audits(out2)]))
    assert verify_chain(partition) == []  # one unbroken line of links
    verdict = verify_seals(TOPO.audit(DATASET), 0, partition, KEYS)
    assert [o for o, _ in verdict.breaks] == [forged_at]
    assert "disowned by the resume seal" in verdict.breaks[0][1]
    assert verdict.unsigned_tail == 0


def test_the_workers_own_unsealed_tail_is_trusted_and_sealed_once() -> None:
    catalog = _catalog()
    msgs, lookup = _canonical_batch(catalog, 10)
    out1, _ = _stage(catalog, lookup, [], FIRST_NOW, signed=True).process(msgs[:5])
    broker = [m.value for m in _audits(out1)][:-1]  # killed after its records, before the seal
    assert all("mac" in json.loads(v) for v in broker)
    second = _stage(catalog, lookup, broker, datetime(2026, 6, 2, tzinfo=UTC), signed=True)
    out2, stats2 = second.process(msgs)  # the whole batch again: 0..4 decided already
    assert stats2.skipped == 5
    audits2 = [json.loads(m.value) for m in _audits(out2)]
    assert not any("resumes" in r for r in audits2)
    partition = list(enumerate(broker + [m.value for m in _audits(out2)]))
    verdict = verify_seals(TOPO.audit(DATASET), 0, partition, KEYS)
    assert verdict.breaks == [] and verdict.unsigned_tail == 0 and verdict.seals == 1


def test_a_forged_record_with_a_seal_by_another_key_is_disowned_too() -> None:
    catalog = _catalog()
    msgs, lookup = _canonical_batch(catalog, 10)
    out1, _ = _stage(catalog, lookup, [], FIRST_NOW, signed=True).process(msgs[:5])
    broker = [m.value for m in _audits(out1)]
    broker.append(_forge_after(broker, raw_offset=9, canonical_offset=9))
    last = json.loads(broker[-1])
    broker.append(build_seal(AuditChain(last["hash"], next_seq=last["seq"] + 1),
                             SigningKey.generate(CHAIN_KEY.key_id), topic=TOPO.audit(DATASET),
                             partition=0, ts=FIRST_NOW, worker="w"))
    second = _stage(catalog, lookup, broker, datetime(2026, 6, 2, tzinfo=UTC), signed=True)
    out2, stats2 = second.process(msgs[5:])
    assert stats2.skipped == 0
    assert json.loads(_audits(out2)[0].value)["disowned"] == [len(broker) - 2, len(broker) - 1]
    partition = list(enumerate(broker + [m.value for m in _audits(out2)]))
    verdict = verify_seals(TOPO.audit(DATASET), 0, partition, KEYS)
    assert sorted(o for o, _ in verdict.breaks) == [len(broker) - 2, len(broker) - 1]


def test_a_batch_egress_is_signed_once_and_each_record_verifies_alone() -> None:
    """One signature per egress topic over the Merkle root of the batch's records of that
    topic; every egress record verifies on its own with the chain's public key, and not with
    another record's proof."""
    catalog = _catalog()
    msgs, lookup = _canonical_batch(catalog, 9)
    signer = SigningKey.generate("chain-test")
    keys = Keyring([PublicKey.model_validate({
        "id": signer.key_id, "owner": CHAIN, "public_key": signer.public_b64,
        "valid_from": "2026-01-01T00:00:00+00:00"})])
    out, stats = _stage(catalog, lookup, [], EXAMPLE_NOW, signer=signer).process(msgs)
    egress = [m for m in out if m.topic.startswith(TOPO.prefix("egress"))]
    assert len(egress) == stats.delivered > 2
    topics = {m.topic for m in egress}
    # one signature per egress topic of the batch, not per record
    assert len({dict(m.headers)[SIGNATURE_HEADER] for m in egress}) == len(topics)
    for m in egress:
        assert verify_egress(topic=m.topic, key=m.key, value=m.value, headers=m.headers,
                             keys=keys, at=EXAMPLE_NOW, now=EXAMPLE_NOW) is None
    a = egress[0]
    b = next(m for m in egress[1:] if m.topic == a.topic)
    swapped = [(k, dict(b.headers)[k] if k == "shulian.sig.proof" else v) for k, v in a.headers]
    assert verify_egress(topic=a.topic, key=a.key, value=a.value, headers=swapped, keys=keys,
                         at=EXAMPLE_NOW, now=None) is not None


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
