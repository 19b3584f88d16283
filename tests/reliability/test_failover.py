"""Broker failover on a real three-node Apache Kafka cluster (replication factor 3,
``min.insync.replicas`` 2): kill -9 the node leading the raw partitions (and whatever egress
partitions it leads) while 50,000 records flow, bring it back, and the chain has lost nothing
and done nothing twice (the checks of tests/fixtures/flow.py: every valid record once in each
allowed PostgreSQL table, every invalid one once in its dead-letter topic, every decision
once in the audit, ``audit verify`` passes). Figures printed; docs/RELIABILITY.md has them.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from shulian.embedded.kafka import KafkaCluster
from shulian.embedded.net import wait_until
from tests.fixtures.chain import ChainEnv, StartChain
from tests.fixtures.flow import DATASET, PROVIDER, Disrupt, hw_sum, run_kill_scenario

pytestmark = [pytest.mark.integration, pytest.mark.kafka_only]


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
