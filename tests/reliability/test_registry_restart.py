"""Restart the schema registry mid-stream: producers and the chain carry on from cached schemas.

A registry of the test's own (``RegistryProcess`` on its own ``_schemas`` topic; the session
registry is never stopped) serves a chain of its own (``start_chain(registry_url=...)``):

    batch A  -> chain (schemas fetched and cached: raw ids, egress views)
    registry stopped (SIGTERM) ........................................ ~15 s
    batch B  published and processed while the registry is down
    registry started again (same port, same topic)
    batch C  published

Afterwards every valid record of A+B+C is decided once per list entry in the audit (hash chains
intact), every delivery is in an egress topic, every invalid or garbage record is in the
dead-letter topics once, and the worker never stopped.

A second test sends, during the outage, a schema id the worker has never seen (no cached answer
to fall back on): the ingest stage must wait for the registry (streams/app.py retries
infrastructure errors, nothing acked) and dead-letter it once the registry answers 404.
"""

from __future__ import annotations

import random
import struct
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from shulian.embedded.net import free_port, wait_until
from shulian.errors import RegistryError
from shulian.io.kafka import producer_config
from shulian.io.publish import AgencyPublisher, PublishTally
from shulian.serde import SchemaCache
from tests.fixtures.chain import ChainEnv, StartChain, chain_outcome, expected_decisions
from tests.fixtures.registry import RegistryProcess

pytestmark = pytest.mark.integration

OUTAGE_S = 15.0
PER_PAIR = 30


def _publish(publisher: AgencyPublisher, tally: PublishTally, seed: int) -> None:
    rng = random.Random(seed)
    for pair in publisher.pairs:
        t = publisher.publish(pair, PER_PAIR, rng=rng, invalid_rate=0.1, garbage=3)
        tally.valid.update(t.valid)
        tally.invalid.update(t.invalid)
        tally.garbage.update(t.garbage)
    publisher.flush()


def _caught_up(env: ChainEnv, tally: PublishTally) -> bool:
    out = chain_outcome(env)
    return (out.decisions >= expected_decisions(env.catalog, tally.valid)
            and out.dead >= sum(tally.invalid.values()) + sum(tally.garbage.values())
            and out.egress >= out.deliveries)


def test_schema_cache_asks_an_unreachable_registry_once_per_ttl(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Held answers are kept while the registry is down, and it is asked again only after
    ``negative_ttl_s`` (before the fix every record retried the registry, ~0.2 s each)."""
    cache = SchemaCache(f"http://127.0.0.1:{free_port()}", negative_ttl_s=60)
    old = time.monotonic() - 120  # both answers are due for a refresh
    cache._subjects[7] = (old, frozenset({"raw.a.d-value"}))
    cache._missing[8] = old
    calls: Counter[str] = Counter()
    client = cache._client
    real_subjects, real_schema = client.get_subjects_by_schema_id, client.get_schema

    def subjects(schema_id: int) -> list[str]:
        calls["subjects"] += 1
        return real_subjects(schema_id)

    def schema(schema_id: int) -> Any:
        calls["schema"] += 1
        return real_schema(schema_id)

    monkeypatch.setattr(client, "get_subjects_by_schema_id", subjects)
    monkeypatch.setattr(client, "get_schema", schema)
    for _ in range(50):
        assert cache.subjects_of(7) == frozenset({"raw.a.d-value"})
        assert cache.parsed(8) is None
    assert calls == Counter({"subjects": 1})
    with pytest.raises(RegistryError, match="unreachable"):
        cache.parsed(9)  # never seen: no answer to keep


@pytest.mark.slow
def test_registry_restart_mid_stream_loses_nothing(
    start_chain: StartChain, bootstrap: str, unique: str, tmp_path: Path,
) -> None:
    reg = RegistryProcess(bootstrap=bootstrap, topic=f"_schemas.r{unique}",
                          log_file=tmp_path / "registry.log").start()
    try:
        env = start_chain(registry_url=reg.url)
        publisher = AgencyPublisher(env.settings, env.catalog, env.topology)
        tally = PublishTally()
        t0 = time.monotonic()
        _publish(publisher, tally, 1)
        assert wait_until(lambda: _caught_up(env, tally), timeout_s=90, interval_s=0.5), \
            env.worker.log_text()[-3000:]

        first_s = time.monotonic() - t0
        assert reg.stop() == 0
        down_at = time.monotonic()
        assert not _answers(reg)
        _publish(publisher, tally, 2)  # producers serialize from their cached schemas
        # the chain processes batch B while the registry is still down
        processed_while_down = wait_until(lambda: _caught_up(env, tally),
                                          timeout_s=OUTAGE_S, interval_s=0.5)
        during_s = time.monotonic() - down_at
        # hold the outage for its full length; the worker must stay up all along
        died = wait_until(lambda: not env.worker.running,
                          timeout_s=max(0.0, OUTAGE_S - (time.monotonic() - down_at)),
                          interval_s=0.5)
        assert not died, env.worker.log_text()[-3000:]
        outage_s = time.monotonic() - down_at
        reg.start()

        up_at = time.monotonic()
        _publish(publisher, tally, 3)
        assert wait_until(lambda: _caught_up(env, tally), timeout_s=90, interval_s=0.5), \
            env.worker.log_text()[-3000:]
        catch_up_s = time.monotonic() - up_at
        out = chain_outcome(env)
        assert out.decisions == expected_decisions(env.catalog, tally.valid)
        assert out.duplicate_decisions == 0 and out.duplicate_dead == 0
        assert out.egress == out.deliveries > 0
        assert out.dead == sum(tally.invalid.values()) + sum(tally.garbage.values())
        assert out.chain_breaks == []
        assert env.worker.running and env.worker.starts == 1
        print(f"\nbatch A {first_s:.1f} s, batch B (registry down) {during_s:.1f} s, "
              f"batch C after the restart {catch_up_s:.1f} s")
        assert processed_while_down, "the chain waited for the registry instead of its cache"
        print(f"\nregistry outage {outage_s:.1f} s; published {tally.total} records "
              f"({sum(tally.valid.values())} valid); decisions {out.decisions}, egress "
              f"{out.egress}, dead letters {out.dead}; batch B processed during the outage: "
              f"{processed_while_down}")
    finally:
        reg.stop()


@pytest.mark.slow
def test_unseen_schema_id_while_the_registry_is_down(
    start_chain: StartChain, bootstrap: str, unique: str, tmp_path: Path,
) -> None:
    reg = RegistryProcess(bootstrap=bootstrap, topic=f"_schemas.u{unique}",
                          log_file=tmp_path / "registry.log").start()
    try:
        env = start_chain(registry_url=reg.url)
        publisher = AgencyPublisher(env.settings, env.catalog, env.topology)
        tally = PublishTally()
        _publish(publisher, tally, 1)
        assert wait_until(lambda: _caught_up(env, tally), timeout_s=90, interval_s=0.5)
        assert reg.stop() == 0
        # an id no lookup has seen: the chain cannot tell unknown from valid until the
        # registry is back, so it must wait for it (never drop the record or its batch)
        _produce_raw(env, b"\x00" + struct.pack(">I", 55_555_555) + b"\x02a")
        tally.garbage[("unseen-id", "")] += 1
        _publish(publisher, tally, 2)
        # the ingest stage waits for the registry (retrying with backoff, nothing acked)
        waiting = wait_until(lambda: "stage.infrastructure_retry" in env.worker.log_text(),
                             timeout_s=OUTAGE_S, interval_s=0.2)
        log_text = env.worker.log_text()
        assert waiting and "Crashed" not in log_text, log_text[-3000:]
        assert env.worker.running
        reg.start()
        assert wait_until(lambda: _caught_up(env, tally), timeout_s=60, interval_s=0.5), \
            env.worker.log_text()[-3000:]
        out = chain_outcome(env)
        assert out.decisions == expected_decisions(env.catalog, tally.valid)
        assert out.duplicate_decisions == 0 and out.duplicate_dead == 0
        assert out.egress == out.deliveries
        # the unseen id is dead-lettered once the registry can say it does not exist
        assert out.dead == sum(tally.invalid.values()) + sum(tally.garbage.values())
        assert out.chain_breaks == [] and env.worker.starts == 1 and env.worker.running
    finally:
        reg.stop()


def _produce_raw(env: ChainEnv, value: bytes) -> None:
    pair = sorted(env.catalog.mappings)[0]
    p = Producer(producer_config(env.settings))
    p.produce(env.topology.raw(*pair), value, b"unseen")
    assert p.flush(30) == 0


def _answers(reg: RegistryProcess) -> bool:
    try:
        return reg.answers()
    except Exception:
        return False
