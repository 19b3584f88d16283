"""The secured Apache Kafka broker on its own: who gets in at all, before any ACL exists.

Nothing here reaches the broker in plain text, with a wrong password, as a SCRAM user Kafka does
not know, or as a known user without an ACL; the admin (the super user bootstrapped at format
time) does everything. The ACL plan on this broker: tests/integration/test_acl_live.py.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    NewTopic,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from tests.fixtures.secure_kafka import SecureKafka

pytestmark = [pytest.mark.integration, pytest.mark.kafka_only]

QUIET = {"log_level": 0, "socket.connection.setup.timeout.ms": 3000}


def _metadata_fails(conf: dict[str, Any]) -> KafkaException:
    admin = AdminClient({**conf, **QUIET})
    with pytest.raises(KafkaException) as err:
        admin.list_topics(timeout=4)
    return err.value


def test_plaintext_wrong_password_and_unknown_users_are_refused(secure_kafka: SecureKafka
                                                                 ) -> None:
    _metadata_fails({"bootstrap.servers": secure_kafka.bootstrap})  # PLAINTEXT on SASL_SSL
    _metadata_fails(secure_kafka.client_config(secure_kafka.admin, "not-the-password"))
    _metadata_fails(secure_kafka.client_config("agency.nobody", "whatever"))
    # TLS without the CA: the broker's certificate is not trusted
    conf = secure_kafka.admin_config()
    conf.pop("ssl.ca.location")
    _metadata_fails(conf)


def test_the_controller_and_inter_broker_listeners_want_the_nodes_certificate(
        secure_kafka: SecureKafka) -> None:
    """A client with the right CA but no node certificate cannot talk to the node ports."""
    node = secure_kafka.cluster.members[0].config
    assert node.secure is not None
    for port in (node.controller_port, node.secure.internal_port):
        _metadata_fails({"bootstrap.servers": f"127.0.0.1:{port}", "security.protocol": "SSL",
                         "ssl.ca.location": str(secure_kafka.ca_file)})


def test_admin_may_everything_and_a_user_without_acls_nothing(secure_kafka: SecureKafka
                                                              ) -> None:
    topic = f"perimeter.probe.{uuid.uuid4().hex[:8]}"
    admin = AdminClient(secure_kafka.admin_config())
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
    user, password = f"probe-{uuid.uuid4().hex[:8]}", os.urandom(12).hex()
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)
    for fut in admin.alter_user_scram_credentials(
            [UserScramCredentialUpsertion(user, info, password.encode())]).values():
        fut.result(timeout=30)

    producer = Producer({**secure_kafka.client_config(user, password), **QUIET,
                         "message.timeout.ms": 5000})
    errors: list[KafkaError | None] = []
    producer.produce(topic, b"x", on_delivery=lambda e, _m: errors.append(e))
    producer.flush(10)
    assert errors and errors[0] is not None
    assert errors[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    consumer = Consumer({**secure_kafka.client_config(user, password), **QUIET,
                         "group.id": f"probe-{uuid.uuid4().hex[:6]}"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    try:
        codes = set()
        for _ in range(10):
            m = consumer.poll(1.0)
            err = None if m is None else m.error()
            if err is not None:
                codes.add(err.code())
                break
        assert codes & {KafkaError.TOPIC_AUTHORIZATION_FAILED,
                        KafkaError.GROUP_AUTHORIZATION_FAILED}, codes
    finally:
        consumer.close()

    ok = Producer({**secure_kafka.admin_config(), **QUIET})
    ok.produce(topic, b"admin")
    assert ok.flush(10) == 0


def test_the_admin_secret_is_in_no_argv_config_or_log(secure_kafka: SecureKafka) -> None:
    """Formatting took the admin's password through a java @argfile that is gone; the running
    JVM's command line, server.properties and the node's logs never hold it."""
    secret = secure_kafka.admin_secret.get_secret_value().encode()
    node = secure_kafka.cluster.members[0]
    assert node.proc is not None
    assert secret not in Path(f"/proc/{node.proc.pid}/cmdline").read_bytes()
    assert not (node.home / ".format-args").exists()
    for path in node.home.glob("*"):
        if path.is_file():
            assert secret not in path.read_bytes(), path
    assert secure_kafka.admin_secret_file.stat().st_mode & 0o077 == 0
