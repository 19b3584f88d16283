"""The whole chain on the secured broker, every component authenticated as itself: ``shulian up
--engine kafka`` (SASL_SSL + SCRAM-SHA-512, the StandardAuthorizer, nothing allowed without an
ACL) with its default connectors; an agency POSTs through the gateway, the worker (Faust and its
confluent-kafka producers, as ``chain``), the registry (as ``registry``, checking HTTP Basic) and
the PostgreSQL sink (as ``sink.tax-business-licence-pg``) deliver the masked rows, and
``audit verify`` runs as ``auditor``; a list version published by the governance office moves
the ACLs within 10 s (the ``acl-sync`` child). Nothing else is allowed: a principal without ACLs, an
agency outside its grants, a wrong password and a plaintext client are refused.
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from shulian.catalog.load import load_catalog
from shulian.cli.up import UNAUTHENTICATED
from shulian.embedded.net import free_port, wait_until
from shulian.settings import REPO_ROOT
from tests.fixtures.signing import next_version
from tests.fixtures.up import LICENCES, SHULIAN, licence_rows, running_up, stack_env

pytestmark = [pytest.mark.integration, pytest.mark.kafka_only]

Stack = tuple[subprocess.Popen[bytes], Path, dict[str, int]]


@pytest.fixture
def secured_stack(tmp_path: Path, unique: str) -> Iterator[Stack]:
    ports = {k: free_port() for k in ("broker", "registry", "gateway", "metrics", "postgres",
                                      "console")}
    out = tmp_path / "up.out"
    args = [a for k, p in ports.items() for a in (f"--{k}-port", str(p))]
    with running_up([*args, "--engine", "kafka"], env=stack_env(unique), out=out, mark=unique,
                    leftover_timeout_s=30, ready_timeout_s=300) as proc:
        yield proc, out, ports


def _printed(text: str) -> tuple[Path, Path, Path, dict[str, str]]:
    found = re.search(r"^Kafka and registry credentials in (\S+) \(.*; CA (\S+); the broker's "
                      r"super user admin: secret in (\S+)\)$", text, re.MULTILINE)
    assert found is not None, text[:3000]
    secrets = dict(re.findall(r"^  ((?:agency|source|sink)\.\S+|chain|registry|governance|"
                              r"auditor)=(\S+)$", text, re.MULTILINE))
    return Path(found[1]), Path(found[2]), Path(found[3]), secrets


def _client(bootstrap: str, ca: Path, user: str, password: str) -> dict[str, Any]:
    return {"bootstrap.servers": bootstrap, "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user, "sasl.password": password,
            "ssl.ca.location": str(ca), "log_level": 0}


def _read(conf: dict[str, Any], topic: str, *, group: str) -> list[bytes] | str:
    """Every value of partitions 0-2 of ``topic``, or the error code's name that refused it."""
    c = Consumer({**conf, "group.id": group, "enable.partition.eof": True,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        # no DESCRIBE (nothing granted on the topic): refused at the metadata already
        meta = c.list_topics(topic, timeout=10).topics[topic]
        if meta.error is not None:
            return str(meta.error.name())
        c.assign([TopicPartition(topic, p, 0) for p in range(3)])
        got: list[bytes] = []
        ends: set[int] = set()
        for _ in range(100):
            for m in c.consume(100, 0.2):
                err = m.error()
                if err is None:
                    got.append(m.value() or b"")
                elif err.code() == KafkaError._PARTITION_EOF:
                    ends.add(int(m.partition() or 0))
                else:
                    return str(err.name())
            if len(ends) == 3:
                return got
        return "no answer"
    finally:
        c.close()


def _write(conf: dict[str, Any], topic: str) -> str:
    p = Producer({**conf, "message.timeout.ms": 10000})
    result: list[str] = []
    p.produce(topic, b"forged", on_delivery=lambda err, _m: result.append(
        "ok" if err is None else str(err.name())))
    p.flush(15)
    return result[0] if result else "no answer"


def _verify(ports: dict[str, int], ca: Path, secret_file: Path, principal: str,
            *args: str) -> subprocess.CompletedProcess[str]:
    env = {**stack_env(str(uuid.uuid4())), "SHULIAN_BROKER_ENGINE": "kafka",
           "SHULIAN_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
           "SHULIAN_KAFKA_SSL_CA_LOCATION": str(ca), "SHULIAN_PRINCIPAL": principal,
           "SHULIAN_SECRET_FILE": str(secret_file), "SHULIAN_ALLOW_DEV_KEYS": "1",
           "SHULIAN_LOG_LEVEL": "WARNING"}
    return subprocess.run([SHULIAN, "audit", "verify", "--bootstrap",
                           f"127.0.0.1:{ports['broker']}", *args],
                          env=env, capture_output=True, text=True, timeout=180, check=False)


def test_the_whole_chain_runs_authenticated_and_nothing_else_is_allowed(
        secured_stack: Stack, unique: str) -> None:
    _, out, ports = secured_stack
    text = out.read_text()
    creds, ca, admin_file, secrets = _printed(text)
    assert UNAUTHENTICATED not in text
    assert {"chain", "registry", "governance", "auditor", "agency.amr", "agency.tax",
            "source.ingest-gateway", "sink.tax-business-licence-pg"} <= set(secrets)
    assert re.search(r"^perimeter: list version \d+, 14 principals, \d+ ACLs", text, re.M)
    assert {p.name for p in creds.iterdir()} == set(secrets)
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in creds.iterdir())

    # the chain, end to end: gateway (source.ingest-gateway) -> worker (chain) -> registry
    # (registry) -> PostgreSQL sink (sink.tax-business-licence-pg)
    token = re.search(r"^  AMR_GATEWAY_TOKEN=(\S+)$", text, re.MULTILINE)
    assert token is not None
    reply = httpx.post(
        f"http://127.0.0.1:{ports['gateway']}/v1/agencies/amr/datasets/business_licence/records",
        json=LICENCES, timeout=30, headers={"Authorization": f"Bearer {token[1]}",
                                            "Idempotency-Key": f"secured-{unique}"})
    assert reply.status_code == 200, reply.text
    dsn = f"postgresql://postgres@127.0.0.1:{ports['postgres']}/postgres"
    assert wait_until(lambda: len(licence_rows(dsn)) == 2, timeout_s=90, interval_s=0.3), \
        f"rows: {licence_rows(dsn)}"
    assert "440106198503172237" not in str(licence_rows(dsn))  # masked on the way

    # the registry wants credentials; the agency reads its own egress, nothing more
    registry = f"http://127.0.0.1:{ports['registry']}"
    assert httpx.get(f"{registry}/subjects", timeout=10).status_code == 401
    assert httpx.get(f"{registry}/subjects", timeout=10,
                     auth=("agency.tax", secrets["agency.tax"])).status_code == 200
    bootstrap = f"127.0.0.1:{ports['broker']}"
    tax = _client(bootstrap, ca, "agency.tax", secrets["agency.tax"])
    mine = _read(tax, "egress.tax.business_licence", group="agency.tax.reader")
    assert isinstance(mine, list) and len(mine) == 2
    assert _read(tax, "canonical.business_licence", group="agency.tax.reader") == \
        "TOPIC_AUTHORIZATION_FAILED"
    amr = _client(bootstrap, ca, "agency.amr", secrets["agency.amr"])
    assert _read(amr, "egress.tax.business_licence", group="agency.amr.reader") == \
        "TOPIC_AUTHORIZATION_FAILED"
    assert _write(amr, "audit.business_licence") == "TOPIC_AUTHORIZATION_FAILED"
    assert _write(amr, "raw.psb.household_change") == "TOPIC_AUTHORIZATION_FAILED"

    # a principal the broker knows but no ACL names is refused everything
    admin = AdminClient(_client(bootstrap, ca, "admin",
                                admin_file.read_text().splitlines()[0].strip()))
    intruder = f"intruder{unique[:8]}"
    for fut in admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
            intruder, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
            b"intruder-password")]).values():
        fut.result()
    nobody = _client(bootstrap, ca, intruder, "intruder-password")
    assert wait_until(lambda: _read(nobody, "egress.tax.business_licence", group="x") ==
                      "TOPIC_AUTHORIZATION_FAILED", timeout_s=20)
    assert _write(nobody, "raw.amr.business_licence") == "TOPIC_AUTHORIZATION_FAILED"
    plaintext: dict[str, Any] = {"bootstrap.servers": bootstrap, "log_level": 0}
    for conf in (_client(bootstrap, ca, "agency.tax", "not-its-password"), plaintext):
        with pytest.raises(KafkaException):
            AdminClient(conf).list_topics(timeout=5)

    # audit verify as the auditor: chains and completeness; the canonical digests need the
    # chain's READ on canonical.*, which an auditor lacks: said so, never a false break
    ok = _verify(ports, ca, creds / "auditor", "auditor", "--no-digests")
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-2000:]
    assert "OK: every chain intact" in ok.stdout
    assert re.search(r"deliver audit records: [1-9]", ok.stdout), ok.stdout[-2000:]
    refused = _verify(ports, ca, creds / "auditor", "auditor")
    assert refused.returncode == 2
    assert "auditor may not read" in refused.stderr
    assert "canonical.business_licence" in refused.stderr
    full = _verify(ports, ca, creds / "chain", "chain")
    assert full.returncode == 0, full.stdout[-3000:] + full.stderr[-2000:]

    # the list moves the perimeter: the governance office publishes a version without the
    # licence entries; the stack's acl-sync child takes the tax bureau's READ away
    sl = next_version(load_catalog(REPO_ROOT / "catalog", schemas_dir=REPO_ROOT / "schemas"),
                      ("amr", "business_licence"))
    gov = Producer(_client(bootstrap, ca, "governance", secrets["governance"]))
    gov.produce("control.sharing-list", yaml.safe_dump(
        sl.model_dump(mode="json", exclude_none=True), allow_unicode=True).encode())
    assert gov.flush(15) == 0
    published = time.monotonic()
    assert wait_until(lambda: _read(tax, "egress.tax.business_licence",
                                    group="agency.tax.reader") == "TOPIC_AUTHORIZATION_FAILED",
                      timeout_s=10, interval_s=0.2), "revocation took longer than 10 s"
    print(f"revoked after {time.monotonic() - published:.1f} s")  # a figure for the report

    # secrets are shown once and never logged
    logs = Path(re.search(r"^logs in (\S+)$", text, re.MULTILINE).group(1))  # type: ignore[union-attr]
    assert text.count(secrets["chain"]) == 1
    for log in logs.glob("*.log"):
        body = log.read_text(errors="replace")
        assert not any(s in body for s in secrets.values()), log
