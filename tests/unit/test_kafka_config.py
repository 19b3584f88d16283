"""The Apache Kafka broker's configuration generator (pure; no JVM started here)."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from shulian.embedded.kafka import POM
from shulian.embedded.kafka_config import (
    ADMIN_PRINCIPAL,
    KAFKA_VERSION,
    NODE_CN,
    SHARED_PROPERTIES,
    KafkaNodeConfig,
    Listener,
    SecureNode,
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


def test_a_secured_node_has_sasl_ssl_for_clients_and_mutual_tls_between_nodes() -> None:
    sec = SecureNode(internal_port=9200, keystore=Path("/tls/node.pem"),
                     truststore=Path("/tls/ca.pem"))
    props = node_properties(_node(2, 3, secure=sec))
    assert props["listeners"] == ("CLIENT://127.0.0.1:9102,INTERNAL://127.0.0.1:9200,"
                                  "CONTROLLER://127.0.0.1:19002")
    assert props["advertised.listeners"] == "CLIENT://127.0.0.1:9102,INTERNAL://127.0.0.1:9200"
    assert props["listener.security.protocol.map"] == \
        "CLIENT:SASL_SSL,INTERNAL:SSL,CONTROLLER:SSL"  # nothing in plain text
    assert props["inter.broker.listener.name"] == "INTERNAL"
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == f"User:{ADMIN_PRINCIPAL};User:CN={NODE_CN}"
    assert props["listener.name.internal.ssl.client.auth"] == "required"
    assert props["listener.name.controller.ssl.client.auth"] == "required"
    assert props["listener.name.client.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["ssl.keystore.location"] == "/tls/node.pem"
    assert props["ssl.truststore.location"] == "/tls/ca.pem"
    assert not any("password" in k for k in props)  # no secret in server.properties
    assert props == {**node_properties(_node(2, 3)) | props}  # the shared ones are kept

    for key, value in SHARED_PROPERTIES.items():
        if key != "inter.broker.listener.name":
            assert props[key] == value, key


def test_the_broker_pki_makes_one_node_certificate_for_both_ends(tmp_path: Path) -> None:
    import datetime as dt

    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from shulian.perimeter.tls import make_broker_pki

    files = make_broker_pki(tmp_path / "tls", now=dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
                            node_cn=NODE_CN, hosts=("127.0.0.1", "kafka"))
    text = files.keystore.read_text("ascii")
    assert text.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8, what Kafka's PEM reads
    assert text.count("BEGIN CERTIFICATE") == 2 and files.keystore.stat().st_mode & 0o077 == 0
    node = x509.load_pem_x509_certificates(text.encode())[0]
    usage = node.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usage) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert node.subject.rfc4514_string() == f"CN={NODE_CN}"
    sans = node.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["kafka"]


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """``kafka-storage format -t <id>`` reads an id starting with '-' as an option (a bench run
    failed on one): such a draw is drawn again, as Kafka's Uuid.randomUuid does."""
    import uuid

    from shulian.embedded import kafka

    draws = iter([uuid.UUID(bytes=b"\xf8" + b"\x00" * 15), uuid.UUID(bytes=b"\x10" * 16)])
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: next(draws))
    assert base64.urlsafe_b64encode(b"\xf8" + b"\x00" * 15).decode().startswith("-")
    cid = kafka.new_cluster_id()
    assert not cid.startswith("-") and len(cid) == 22


def test_the_engine_must_fit_the_broker_that_answers() -> None:
    """Apache Kafka (a KRaft cluster id) with the embedded engine's client behaviour would run
    producers without idempotence; Tansu with Kafka's would trust its lagging watermarks."""
    from shulian.embedded.kafka import new_cluster_id
    from shulian.io.kafka import TANSU_CLUSTER_ID, engine_mismatch

    kraft = new_cluster_id()
    assert "SHULIAN_BROKER_ENGINE=kafka" in (engine_mismatch("tansu", kraft) or "")
    assert "SHULIAN_BROKER_ENGINE=tansu" in (engine_mismatch("kafka", TANSU_CLUSTER_ID) or "")
    assert engine_mismatch("kafka", kraft) is None
    assert engine_mismatch("tansu", TANSU_CLUSTER_ID) is None
    assert engine_mismatch("tansu", "my-own-tansu") is None  # unknown: not refused
    assert engine_mismatch("tansu", None) is None
