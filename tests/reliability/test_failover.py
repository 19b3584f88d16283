"""Broker failover on a real three-node Apache Kafka cluster (replication factor 3,
``min.insync.replicas`` 2): kill -9 the node leading the raw partitions (and whatever egress
partitions it leads) while 50,000 records flow, bring it back, and the chain has lost nothing
and done nothing twice (the checks of tests/fixtures/flow.py: every valid record once in each
allowed PostgreSQL table, every invalid one once in its dead-letter topic, every decision
once in the audit, ``audit verify`` passes). Then two of the three nodes down: writes get
errors (none is acknowledged and lost), the chain's worker waits, and when the nodes return it
carries on and processes everything exactly once. Figures printed; docs/RELIABILITY.md.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry

from shulian.audit.verifying import catalogue_topics, run_verify
from shulian.audit.window import Window
from shulian.connectors.metrics import ConnectorMetrics
from shulian.connectors.sources.config import GatewayConfig
from shulian.connectors.sources.gateway import AsyncDelivery, build_authenticator, create_app
from shulian.connectors.sources.gateway_auth import token_sha256
from shulian.connectors.sources.plumbing import RawProducer, RawSchemas
from shulian.embedded.kafka import KafkaCluster
from shulian.embedded.net import wait_until
from shulian.io.kafka import TopicSpec, admin_client, ensure_topics, producer_config
from shulian.io.publish import AgencyPublisher
from shulian.io.reader import read_topics
from shulian.serde import SchemaCache
from shulian.settings import Settings
from tests.fixtures.chain import ChainEnv, StartChain
from tests.fixtures.flow import (
    DATASET,
    PROVIDER,
    Disrupt,
    Expected,
    Tally,
    hw_sum,
    run_kill_scenario,
)

pytestmark = [pytest.mark.integration, pytest.mark.kafka_only]

HOUSEHOLD = Path(__file__).resolve().parents[2] / "schemas/raw/psb/household_change.avsc"


def leaders(bootstrap: str, topics: list[str]) -> dict[tuple[str, int], int]:
    md = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(timeout=10)
    return {(t, p.id): p.leader for t in topics for p in md.topics[t].partitions.values()}


def kill_the_raw_leader(cluster: KafkaCluster, figures: dict[str, Any]) -> Disrupt:
    def disrupt(env: ChainEnv) -> None:
        t = env.topology
        consumers = sorted({e.consumer for e in env.catalog.current_list.entries
                            if (e.provider, e.dataset) == (PROVIDER, DATASET)})
        raw = t.raw(PROVIDER, DATASET)
        led = leaders(cluster.bootstrap, [raw, *(t.egress(c, DATASET) for c in consumers)])
        victim = led[(raw, 0)]
        figures["killed_node"] = victim
        figures["partitions_it_led"] = sorted(f"{tp}[{p}]" for (tp, p), n in led.items()
                                              if n == victim)
        canonical = [t.canonical(DATASET)]
        before = hw_sum(env.settings, canonical, t.partitions)
        cluster.node(victim).kill()
        killed = time.monotonic()
        # the chain carries on with two nodes: leaders move, the canonical topic grows again
        assert wait_until(lambda: hw_sum(env.settings, canonical, t.partitions) > before + 500,
                          timeout_s=180, interval_s=0.5), env.worker.log_text()[-3000:]
        figures["progress_again_after_s"] = round(time.monotonic() - killed, 1)
        after = leaders(cluster.bootstrap, [raw])
        assert victim not in after.values()
        cluster.restart(victim)
        figures["node_back_after_s"] = round(time.monotonic() - killed, 1)

    return disrupt


def test_kill9_the_raw_leader_while_50k_flow(start_cluster_chain: StartChain,
                                             kafka_cluster: KafkaCluster, pg_dsn: str,
                                             unique: str, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    figures: dict[str, Any] = {}
    result = run_kill_scenario(start_cluster_chain, pg_dsn, unique, monkeypatch,
                               records=50_000, kills=1, timeout_s=600,
                               disrupt=kill_the_raw_leader(kafka_cluster, figures),
                               name="broker failover")
    print(f"broker failover: {figures}")
    assert result["starts"] == 1  # the worker itself never restarted
    assert all(n.alive() for n in kafka_cluster.members)


def produce_each(settings: Settings, topic: str, msgs: list[tuple[bytes | None, bytes]],
                 ) -> tuple[int, list[str]]:
    """Produce every message with acks=all and a 10 s delivery timeout: (acked, errors)."""
    producer = Producer(producer_config(settings, **{"message.timeout.ms": 10_000,
                                                     "request.timeout.ms": 5_000}))
    acked: list[int] = []
    errors: list[str] = []

    def report(err: Any, _msg: Any) -> None:
        (errors.append(str(err)) if err is not None else acked.append(1))

    for key, value in msgs:
        producer.produce(topic, value, key, on_delivery=report)
    producer.flush(60)
    return len(acked), errors


def gateway_for(settings: Settings, agency: str) -> GatewayConfig:
    """A gateway accepting ``agency``'s household changes into raw.<agency>.household_change
    (made here with replication factor 3)."""
    topic = f"raw.{agency}.household_change"
    ensure_topics(admin_client(settings), [TopicSpec(topic, 2)], replication_factor=3)
    SchemaCache(settings.registry_url).register(f"{topic}-value",
                                                HOUSEHOLD.read_text(encoding="utf-8"))
    return GatewayConfig.model_validate({
        "name": f"gw-{agency}", "port": 0,
        "agencies": {agency: {"token_sha256": token_sha256("token"),
                              "datasets": [{"dataset": "household_change",
                                            "key_fields": ["LSH"]}]}}})


def gateway_post(config: GatewayConfig, settings: Settings, agency: str,
                 records: list[dict[str, Any]], idempotency_key: str) -> httpx.Response:
    """POST through the gateway's app (in process, a real producer with a 10 s timeout)."""
    delivery = AsyncDelivery(RawProducer(settings, timeout_s=10))
    app = create_app(config, auth=build_authenticator(config),
                     schemas=RawSchemas(settings.registry_url), delivery=delivery,
                     metrics=ConnectorMetrics.create(CollectorRegistry()))

    async def post() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://gw") as client:
            return await client.post(
                f"/v1/agencies/{agency}/datasets/household_change/records", json=records,
                timeout=60, headers={"Authorization": "Bearer token",
                                     "Idempotency-Key": idempotency_key})

    delivery.start()
    try:
        return asyncio.run(post())
    finally:
        delivery.stop()


def household(i: int) -> dict[str, Any]:
    return {"LSH": f"L{i:06d}", "SFZH": "440106199001011234", "XM": "张三", "XB": "男",
            "CSRQ": "19900101", "BDLX": "迁入", "BDRQ": "2024/05/01", "QCDQ": None,
            "QRDQ": "440106", "HJDZ": None, "DJSJ": "2024-05-01 08:00:00"}


def test_two_of_three_down_writes_fail_the_chain_waits_and_carries_on(
    start_cluster_chain: StartChain, kafka_cluster: KafkaCluster, unique: str
) -> None:
    env = start_cluster_chain()
    settings, t = env.settings, env.topology
    agency = f"g{unique}"
    gateway = gateway_for(settings, agency)
    agency_records = [household(i) for i in range(5)]
    raw = t.raw(PROVIDER, DATASET)
    publisher = AgencyPublisher(settings, env.catalog, t)
    rng = random.Random(21)
    publisher.publish((PROVIDER, DATASET), 2_000, rng=rng, invalid_rate=0.01)
    publisher.flush()  # acknowledged by two replicas (acks=all, min.insync.replicas 2)
    sample = [(m.key, m.value or b"") for msgs in read_topics(settings, [raw]).values()
              for m in msgs][:300]
    # the chain is up and has taken in the first 2,000 (a worker still starting would meet the
    # outage in its start-up registry calls and exit, which is not the case tested here)
    first = [t.canonical(DATASET), t.deadletter(PROVIDER, DATASET)]
    assert wait_until(lambda: hw_sum(settings, first, t.partitions) >= 2_000,
                      timeout_s=180, interval_s=0.5), env.worker.log_text()[-3000:]

    down = [n.config.node_id for n in kafka_cluster.members][1:]  # two of three
    for node_id in down:
        kafka_cluster.node(node_id).kill()
    outage = time.monotonic()
    acked, errors = produce_each(settings, raw, sample)
    figures: dict[str, Any] = {"outage_writes": len(sample), "outage_acked": acked,
                               "outage_errors": len(errors),
                               "first_error": errors[0] if errors else None}
    assert errors, "a write with one broker of three up must fail, not be acknowledged"
    refused = gateway_post(gateway, settings, agency, agency_records, "outage")
    figures["gateway_during_outage"] = refused.status_code
    assert refused.status_code == 503, refused.text  # retry later, nothing accepted
    time.sleep(5)  # the chain, meanwhile, waits: its worker does not give up
    assert env.worker.running, env.worker.log_text()[-3000:]
    for node_id in down:
        kafka_cluster.restart(node_id)
    figures["outage_s"] = round(time.monotonic() - outage, 1)
    assert env.worker.running, env.worker.log_text()[-3000:]

    publisher.publish((PROVIDER, DATASET), 2_000, rng=rng, invalid_rate=0.01)
    publisher.flush()
    retried = gateway_post(gateway, settings, agency, agency_records, "outage")
    assert retried.status_code == 200 and retried.json()["accepted"] == 5, retried.text
    landed = {m.key for msgs in read_topics(settings, [f"raw.{agency}.household_change"])
              .values() for m in msgs}
    assert landed == {f"L{i:06d}".encode() for i in range(5)}
    expected = Expected(env)
    # everything acknowledged is in the raw topic: 4,000 published, plus the outage's acks
    # (a write that timed out on the client may still have been appended: it is processed too)
    in_raw = len(expected.valid) + len(expected.invalid)
    figures["outage_appended"] = in_raw - 4_000
    assert 4_000 + acked <= in_raw <= 4_000 + len(sample)
    audit, dlq = t.audit(DATASET), t.deadletter(PROVIDER, DATASET)
    tally = Tally(settings, [audit, dlq], t.partitions)
    carried_on = time.monotonic()
    assert wait_until(lambda: tally.distinct(audit) >= len(expected.decisions)
                      and tally.distinct(dlq) >= len(expected.invalid),
                      timeout_s=300, interval_s=0.5), env.worker.log_text()[-3000:]
    figures["caught_up_s"] = round(time.monotonic() - carried_on, 1)
    tally.poll()
    tally.close()
    assert set(tally.counts[audit]) == expected.decisions
    assert sum(tally.counts[audit].values()) == len(expected.decisions)  # each once
    assert set(tally.counts[dlq]) == expected.invalid
    assert sum(tally.counts[dlq].values()) == len(expected.invalid)
    verify = run_verify(settings, catalogue_topics(settings, env.namespace), Window())
    assert verify.ok, verify.breaks[:5]
    assert env.worker.starts == 1 and env.worker.running  # it waited, never restarted
    print(f"\ntwo of three down: {figures}")
