"""Kill -9 the chain worker while records flow: nothing lost, nothing twice.

Agencies publish ``amr/business_licence`` records (~1 % invalid) into a real chain
(``start_chain``: a ``shulian worker`` subprocess on the session broker and registry); a
PostgreSQL sink loop (connectors/sinks, in a thread) writes every egress topic of the dataset
into one table per consumer. The worker is SIGKILLed at spread points of the flow (by the
canonical topic's progress) and started again each time. Afterwards:

- every valid record is in each authorised consumer's table exactly once (by key), and the
  table holds exactly what the sharing list allows (entries, row filters, masked keys),
  computed independently by running the pure stages over the raw topic;
- every invalid record is in the dead-letter topic exactly once (by raw origin, and no
  duplicate messages);
- every (record, entry) is decided exactly once in the audit, and ``shulian audit verify``
  (run_verify: chains, completeness, digests) passes.

Egress duplicates (the same view re-sent after a crash, same key) are counted and reported:
they are harmless to the idempotent sinks. The test prints its figures.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections import Counter
from typing import Any

import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition

from connectors.sinks.backoff import RetryPolicy
from connectors.sinks.config import PostgresSinkConfig
from shulian.audit.window import Window
from shulian.chain.dedup import origin_of
from shulian.chain.ingest import IngestStage
from shulian.chain.wire import decode_body, split_wire
from shulian.cli.audit import catalogue_topics, run_verify
from shulian.embedded.net import wait_until
from shulian.io.kafka import consumer_config
from shulian.io.publish import AgencyPublisher
from shulian.io.reader import read_topics
from shulian.io.setup import register_raw_and_canonical, registry_client
from shulian.logic.harmonise import Harmoniser
from shulian.logic.policy import Outcome, PolicyEngine
from shulian.serde import SchemaCache
from shulian.settings import Settings
from tests.fixtures.chain import MASTER_KEY, ChainEnv, StartChain
from tests.fixtures.clock import EXAMPLE_CLOCK, EXAMPLE_NOW
from tests.fixtures.sinks import running

pytestmark = [pytest.mark.integration]

PROVIDER, DATASET = "amr", "business_licence"
RawOrigin = tuple[str, int, int]


def _hw_sum(settings: Settings, topics: list[str], partitions: int) -> int:
    """Sum of high watermarks (progress only: they can lag on the embedded broker)."""
    c = Consumer(consumer_config(settings, group_id="kill9-progress"))
    try:
        return sum(c.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
                   for t in topics for p in range(partitions))
    finally:
        c.close()


def _table_keys(dsn: str, schema: str, table: str) -> list[str]:
    try:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            return [r[0] for r in conn.execute(
                f'SELECT _record_key FROM "{schema}"."{table}"').fetchall()]
    except psycopg.errors.UndefinedTable:
        return []


class Tally:
    """Follows topics by consuming (watermarks can lag what was written on the embedded
    broker, so progress is counted from the messages themselves): raw origins per topic."""

    def __init__(self, settings: Settings, topics: list[str], partitions: int) -> None:
        self._consumer = Consumer(consumer_config(settings, group_id="kill9-tally"))
        self._consumer.assign([TopicPartition(t, p, 0) for t in topics
                               for p in range(partitions)])
        self.counts: dict[str, Counter[tuple[Any, ...]]] = {t: Counter() for t in topics}
        self.messages: Counter[str] = Counter()

    def poll(self) -> None:
        while True:
            msgs = self._consumer.consume(10_000, 0.2)
            if not msgs:
                return
            for m in msgs:
                if m.error() is not None:
                    continue
                topic = m.topic() or ""
                self.messages[topic] += 1
                if ".audit." in topic:
                    rec = json.loads(m.value() or b"{}")
                    o = rec["origin"]
                    self.counts[topic][(o["topic"], o["partition"], o["offset"],
                                        rec["entry_id"])] += 1
                else:
                    headers: Any = m.headers() or []
                    origin = origin_of(headers)
                    assert origin is not None
                    self.counts[topic][(origin.topic, origin.partition, origin.offset)] += 1

    def distinct(self, topic: str) -> int:
        self.poll()
        return len(self.counts[topic])

    def close(self) -> None:
        self._consumer.close()


class Expected:
    """What the chain must produce, computed from the raw topic with the pure stages."""

    def __init__(self, env: ChainEnv) -> None:
        settings, catalog, topology = env.settings, env.catalog, env.topology
        canonical = register_raw_and_canonical(settings, catalog, topology,
                                               registry_client(settings))
        schemas = SchemaCache(settings.registry_url)
        ingest = IngestStage(topology=topology,
                             harmoniser=Harmoniser(catalog, clock=EXAMPLE_CLOCK),
                             schemas=schemas, canonical=canonical)
        engine = PolicyEngine(catalog=catalog, sharing_list=catalog.current_list,
                              master_key=MASTER_KEY.encode())
        self.valid: set[RawOrigin] = set()
        self.invalid: set[RawOrigin] = set()
        self.decisions: set[tuple[str, int, int, str]] = set()
        self.keys: dict[str, set[str]] = {}  # consumer -> egress keys
        now = EXAMPLE_NOW
        raw = read_topics(settings, [topology.raw(PROVIDER, DATASET)])
        for msgs in raw.values():
            out, _ = ingest.process(msgs)
            for m in out:
                origin = origin_of(m.headers)
                assert origin is not None
                o = (origin.topic, origin.partition, origin.offset)
                if m.topic != topology.canonical(DATASET):
                    self.invalid.add(o)
                    continue
                self.valid.add(o)
                wire = split_wire(m.value)
                assert isinstance(wire, tuple)
                record = decode_body(schemas.parsed(wire[0]), wire[1])
                assert isinstance(record, dict)
                key = (m.key or b"").decode()
                for d in engine.decide(dataset=DATASET, provider=PROVIDER, record=record,
                                       record_key=key, now=now):
                    self.decisions.add((*o, d.entry_id))
                    self.keys.setdefault(d.consumer, set())
                    if d.outcome is Outcome.DELIVER and d.view is not None:
                        self.keys[d.consumer].add(str(d.view.get("_record_key", key)))


def _origins(settings: Settings, topics: list[str]) -> Counter[RawOrigin]:
    found: Counter[RawOrigin] = Counter()
    for msgs in read_topics(settings, topics).values():
        for m in msgs:
            if m.topic.endswith(".audit." + DATASET):
                o = json.loads(m.value or b"{}")["origin"]
                found[(o["topic"], o["partition"], o["offset"])] += 1
                continue
            origin = origin_of(m.headers)
            assert origin is not None
            found[(origin.topic, origin.partition, origin.offset)] += 1
    return found


def _missing(env: ChainEnv, expected: Expected) -> str:
    """Where the records that did not arrive were lost (a failure message)."""
    t = env.topology
    canonical = _origins(env.settings, [t.canonical(DATASET)])
    audited = _origins(env.settings, [t.audit(DATASET)])
    dead = _origins(env.settings, [t.deadletter(PROVIDER, DATASET)])
    never_ingested = sorted(expected.valid - set(canonical))
    not_decided = sorted(expected.valid & set(canonical) - set(audited))
    not_dead = sorted(expected.invalid - set(dead))
    return (f"never ingested {len(never_ingested)} {never_ingested[:20]}; not decided "
            f"{len(not_decided)} {not_decided[:20]}; not dead-lettered {len(not_dead)} "
            f"{not_dead[:20]}\n{env.worker.log_text()[-1500:]}")


def _logged_counts(log_text: str, event: str) -> int:
    total = 0
    for line in log_text.splitlines():
        if event in line:
            m = re.search(r'"count":\s*(\d+)', line)
            total += int(m.group(1)) if m else 0
    return total


def run_kill_scenario(start_chain: StartChain, pg_dsn: str, unique: str,
                      monkeypatch: pytest.MonkeyPatch, *, records: int, kills: int,
                      timeout_s: float) -> dict[str, Any]:
    started = time.monotonic()
    # unbuffered: a SIGKILLed worker's last log lines (the skip counts below) are not lost
    env = start_chain(extra_env={"PYTHONUNBUFFERED": "1"})
    settings, topology, catalog = env.settings, env.topology, env.catalog
    consumers = sorted({e.consumer for e in catalog.current_list.entries
                        if (e.provider, e.dataset) == (PROVIDER, DATASET)})
    egress_topics = [topology.egress(c, DATASET) for c in consumers]
    dlq = topology.deadletter(PROVIDER, DATASET)
    parts = topology.partitions

    dsn_env = f"PG_DSN_{unique}"
    monkeypatch.setenv(dsn_env, pg_dsn)
    db_schema = f"k{unique}"
    config = PostgresSinkConfig(
        name=f"pg-kill9-{unique}", topics=tuple(egress_topics), dsn_env=dsn_env,
        db_schema=db_schema, table="{consumer}_{dataset}", batch_size=2000,
        connect_timeout_s=5, retry=RetryPolicy(initial_backoff_s=0.2, max_backoff_s=2.0))

    publisher = AgencyPublisher(settings, catalog, topology)
    publish_error: list[BaseException] = []

    def publish() -> None:
        try:
            rng = random.Random(9)
            chunk = 5000
            for i in range(0, records, chunk):
                publisher.publish((PROVIDER, DATASET), min(chunk, records - i), rng=rng,
                                  invalid_rate=0.01)
            publisher.flush()
        except BaseException as exc:  # re-raised in the test thread
            publish_error.append(exc)

    with running(config, settings):
        producer = threading.Thread(target=publish, name="kill9-publish", daemon=True)
        producer.start()
        kill_points = [(k + 1) / (kills + 1) for k in range(kills)]
        for frac in kill_points:
            target = int(records * frac)
            assert wait_until(lambda t=target: _hw_sum(  # type: ignore[misc]
                settings, [topology.canonical(DATASET)], parts) >= t,
                timeout_s=timeout_s, interval_s=0.2), env.worker.log_text()[-3000:]
            env.worker.kill9()
            env.worker.start()
        producer.join(timeout_s)
        assert not producer.is_alive() and not publish_error, publish_error
        expected = Expected(env)
        n_decisions = len(expected.decisions)
        assert len(expected.valid) + len(expected.invalid) == records
        assert expected.invalid and n_decisions

        # done: every decision audited, every invalid record dead-lettered, tables full
        audit_topic = topology.audit(DATASET)
        tally = Tally(settings, [audit_topic, dlq], parts)
        assert wait_until(lambda: tally.distinct(audit_topic) >= n_decisions
                          and tally.distinct(dlq) >= len(expected.invalid),
                          timeout_s=timeout_s, interval_s=0.5), _missing(env, expected)
        assert wait_until(lambda: all(
            len(_table_keys(pg_dsn, db_schema, f"{c}_{DATASET}")) >= len(expected.keys[c])
            for c in consumers), timeout_s=timeout_s, interval_s=0.5), \
            [(c, len(_table_keys(pg_dsn, db_schema, f"{c}_{DATASET}")), len(expected.keys[c]),
              sum(len(v) for v in read_topics(settings, [topology.egress(c, DATASET)]).values()))
             for c in consumers]
        chain_done_s = time.monotonic() - started
    env.worker.stop()

    # tables: exactly the allowed keys, each once
    for c in consumers:
        keys = _table_keys(pg_dsn, db_schema, f"{c}_{DATASET}")
        assert len(keys) == len(set(keys)), c
        assert set(keys) == expected.keys[c], (c, len(keys), len(expected.keys[c]))

    # dead letters: every invalid record once, by raw origin, no duplicate messages
    tally.poll()  # whatever came after the counts were reached (nothing, if all is well)
    tally.close()
    dead = tally.counts[dlq]
    assert set(dead) == expected.invalid
    dead_dupes = sum(n - 1 for n in dead.values())
    assert dead_dupes == 0 and tally.messages[dlq] == len(expected.invalid)
    canonical_dead = read_topics(settings, [topology.deadletter("_canonical", DATASET)])
    assert sum(len(v) for v in canonical_dead.values()) == 0

    # audit: every (record, entry) decided once
    decided = tally.counts[audit_topic]
    decision_dupes = sum(n - 1 for n in decided.values())
    assert decision_dupes == 0 and tally.messages[audit_topic] == n_decisions
    assert set(decided) == expected.decisions

    verify = run_verify(settings, catalogue_topics(settings, env.namespace), Window())
    assert verify.ok, verify.breaks[:5]

    # figures: what the kills re-did (re-ingested records, re-sent views) and what was skipped
    canonical = _origins(settings, [topology.canonical(DATASET)])
    egress: Counter[tuple[str, bytes | None]] = Counter()
    for msgs in read_topics(settings, egress_topics).values():
        for m in msgs:
            egress[(m.topic, m.key)] += 1
    log_text = env.worker.log_text()
    figures = {
        "records": records, "invalid": len(expected.invalid), "decisions": n_decisions,
        "kills": kills, "starts": env.worker.starts,
        "reingested": sum(n - 1 for n in canonical.values()),
        "egress_resent": sum(n - 1 for n in egress.values()),
        "skipped_decisions_records": _logged_counts(log_text, "enforce.skipped_decided"),
        "skipped_dead_letters": _logged_counts(log_text, "ingest.skipped_deadlettered"),
        "dead_letter_dupes": dead_dupes, "decision_dupes": decision_dupes,
        "chain_done_s": round(chain_done_s, 1),
        "total_s": round(time.monotonic() - started, 1),
    }
    print(f"\nkill -9 figures: {figures}")
    assert figures["starts"] == kills + 1
    return figures


def test_kill9_once_small(start_chain: StartChain, pg_dsn: str, unique: str,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    run_kill_scenario(start_chain, pg_dsn, unique, monkeypatch, records=5_000, kills=1,
                      timeout_s=120)


@pytest.mark.slow
def test_kill9_three_times_100k(start_chain: StartChain, pg_dsn: str, unique: str,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    run_kill_scenario(start_chain, pg_dsn, unique, monkeypatch, records=100_000, kills=3,
                      timeout_s=300)
