"""The Apache Kafka broker's configuration generator (pure; no JVM started here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shulian.embedded.kafka import POM
from shulian.embedded.kafka_config import (
    KAFKA_VERSION,
    SHARED_PROPERTIES,
    KafkaNodeConfig,
    Listener,
    Voter,
    cluster_properties,
    compose_env_name,
    compose_property,
    node_properties,
    render_properties,
)
from shulian.settings import ENGINE_DEFAULTS, load_settings

ROOT = Path(__file__).resolve().parents[2]


def _node(node_id: int = 1, nodes: int = 1, **kw: object) -> KafkaNodeConfig:
    voters = tuple(Voter(i, "127.0.0.1", 19000 + i) for i in range(1, nodes + 1))
    return KafkaNodeConfig(node_id=node_id, host="127.0.0.1", port=9100 + node_id,
                           controller_port=19000 + node_id, voters=voters,
                           log_dir=Path(f"/data/n{node_id}"), **kw)  # type: ignore[arg-type]


def test_one_kafka_version_in_pom_module_and_compose() -> None:
    pom = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text("utf-8"))
    assert pom is not None and pom.group(1) == KAFKA_VERSION
    images = set(re.findall(r"image:\s*apache/kafka:(\S+)",
                            (ROOT / "docker-compose.yml").read_text("utf-8")))
    assert images == {KAFKA_VERSION}


def test_single_node_properties() -> None:
    props = node_properties(_node())
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19001"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9101,CONTROLLER://127.0.0.1:19001"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9101"  # never the controller
    assert props["listener.security.protocol.map"] == "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["min.insync.replicas"] == "1"
    assert props["auto.create.topics.enable"] == "false"
    assert props["log.dirs"] == "/data/n1"


def test_three_nodes_replicate_three_ways_and_ack_on_two() -> None:
    props = node_properties(_node(2, 3))
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"].count("@") == 3
    assert props["default.replication.factor"] == "3"
    assert props["min.insync.replicas"] == "2"
    assert props["transaction.state.log.min.isr"] == "2"


def test_a_listener_can_be_added_and_overrides_have_the_last_word() -> None:
    """What the perimeter needs: another listener with its own protocol, and its settings."""
    extra = Listener("AGENCY", "127.0.0.1", 9300, protocol="SASL_SSL")
    props = node_properties(_node(extra_listeners=(extra,),
                                  overrides=(("sasl.enabled.mechanisms", "SCRAM-SHA-512"),
                                             ("min.insync.replicas", "1"))))
    assert props["listeners"].endswith(",AGENCY://127.0.0.1:9300")
    assert "AGENCY://127.0.0.1:9300" in props["advertised.listeners"]
    assert "AGENCY:SASL_SSL" in props["listener.security.protocol.map"]
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["inter.broker.listener.name"] == "PLAINTEXT"


def test_rendered_properties_parse_back() -> None:
    props = node_properties(_node())
    text = render_properties(props)
    parsed = dict(line.split("=", 1) for line in text.splitlines())
    assert parsed == props


@pytest.mark.parametrize("prop", [*SHARED_PROPERTIES, *cluster_properties(nodes=3),
                                  "node.id", "log.dirs", "a_b.c-d"])
def test_compose_variable_names_round_trip(prop: str) -> None:
    assert compose_property(compose_env_name(prop)) == prop
    assert compose_env_name("log.dirs") == "KAFKA_LOG_DIRS"


def test_engine_defaults_and_overrides() -> None:
    tansu = load_settings(broker_engine="tansu").behaviour()
    kafka = load_settings(broker_engine="kafka").behaviour()
    assert tansu == ENGINE_DEFAULTS["tansu"] and kafka == ENGINE_DEFAULTS["kafka"]
    assert not tansu.idempotence and kafka.idempotence
    assert tansu.fetch_max_wait_ms < kafka.fetch_max_wait_ms
    forced = load_settings(broker_engine="kafka", kafka_idempotence=False,
                           fetch_max_wait_ms=25).behaviour()
    assert not forced.idempotence and forced.fetch_max_wait_ms == 25
    assert forced.session_timeout_ms == kafka.session_timeout_ms
