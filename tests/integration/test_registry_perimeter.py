"""The authenticated registry, as a real ``shulian registry`` process over HTTP(S): Confluent's
own SchemaRegistryClient with ``basic.auth.user.info``, the registry attacks of issue 21 refused
for an agency principal and allowed for the governance office, Confluent-style 401/403 bodies,
HTTPS verified against a generated CA and refused to plain HTTP."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from shulian.perimeter.identities import Principal, Role, generate_credentials
from shulian.perimeter.tls import make_test_pki
from tests.fixtures.registry import RegistryProcess

pytestmark = pytest.mark.integration

NOW = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)  # certificates are valid from the injected time
PRINCIPALS = [Principal(Role.AGENCY, "psb"), Principal(Role.AGENCY, "amr"),
              Principal(Role.GOVERNANCE), Principal(Role.CHAIN), Principal(Role.SINK, "tax-pg")]
SCHEMA = json.dumps({"type": "record", "name": "HouseholdChange", "namespace": "gov.psb",
                     "fields": [{"name": "LSH", "type": "string"}]})


def _secret(creds: Path, p: Principal) -> str:
    return (creds / p.name).read_text().strip()


@pytest.fixture(scope="module")
def creds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("creds")
    generate_credentials(folder, PRINCIPALS)
    return folder


@pytest.fixture(scope="module")
def secured(bootstrap: str, creds: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[RegistryProcess]:
    logdir = tmp_path_factory.mktemp("registry-auth")
    gov = Principal(Role.GOVERNANCE)
    proc = RegistryProcess(bootstrap=bootstrap, topic=f"_schemas.{uuid.uuid4().hex[:8]}",
                           log_file=logdir / "registry.log",
                           env={"SHULIAN_CREDENTIALS_DIR": str(creds)},
                           auth=(gov.name, _secret(creds, gov))).start()
    yield proc
    assert proc.stop() == 0


def _client(url: str, creds: Path, p: Principal, **extra: str) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": url,
                                 "basic.auth.user.info": f"{p.name}:{_secret(creds, p)}",
                                 **extra})


def _auth(creds: Path, p: Principal) -> tuple[str, str]:
    return (p.name, _secret(creds, p))


def test_confluent_client_registers_own_raw_subject_and_is_refused_others(
        secured: RegistryProcess, creds: Path) -> None:
    psb = _client(secured.url, creds, Principal(Role.AGENCY, "psb"))
    sid = psb.register_schema("raw.psb.household_change-value", Schema(SCHEMA, "AVRO"))
    assert psb.get_schema(sid).schema_str  # reading needs any valid principal
    with pytest.raises(SchemaRegistryError) as refused:
        psb.register_schema("raw.amr.business_licence-value", Schema(SCHEMA, "AVRO"))
    assert refused.value.http_status_code == 403 and refused.value.error_code == 40301
    sink = _client(secured.url, creds, Principal(Role.SINK, "tax-pg"))
    assert sink.get_schema(sid).schema_str
    with pytest.raises(SchemaRegistryError) as bad:
        SchemaRegistryClient({"url": secured.url,
                              "basic.auth.user.info": "agency.psb:wrong"}).get_subjects()
    assert bad.value.http_status_code == 401 and bad.value.error_code == 40101


def test_registry_attacks_refused_for_an_agency_allowed_for_governance(
        secured: RegistryProcess, creds: Path) -> None:
    subject = "raw.psb.household_change-value"
    gov = _client(secured.url, creds, Principal(Role.GOVERNANCE))
    gov.register_schema(subject, Schema(SCHEMA, "AVRO"))
    agency = _auth(creds, Principal(Role.AGENCY, "psb"))
    attacks = [("PUT", f"/config/{subject}", {"compatibility": "NONE"}),
               ("DELETE", f"/subjects/{subject}", None),
               ("DELETE", f"/subjects/{subject}/versions/1", None),
               ("PUT", "/mode", {"mode": "READONLY"}),
               ("PUT", f"/mode/{subject}", {"mode": "READONLY"}),
               ("PUT", "/config", {"compatibility": "NONE"})]
    with httpx.Client(base_url=secured.url, timeout=10) as http:
        for method, path, body in attacks:
            r = http.request(method, path, json=body, auth=agency)
            assert r.status_code == 403, (method, path, r.text)
            assert r.json()["error_code"] == 40301
            anon = http.request(method, path, json=body)
            assert anon.status_code == 401 and anon.json()["error_code"] == 40101
            assert anon.headers["www-authenticate"].startswith("Basic")
        # nothing changed: the subject is there with its compatibility unset
        assert http.get("/subjects", auth=agency).json().count(subject) == 1
        assert http.get("/mode", auth=agency).json()["mode"] == "READWRITE"
        # the governance office may
        gov_auth = _auth(creds, Principal(Role.GOVERNANCE))
        r = http.put(f"/config/{subject}", json={"compatibility": "FULL"}, auth=gov_auth)
        assert r.status_code == 200, r.text
        assert http.get(f"/config/{subject}", auth=agency).json()["compatibilityLevel"] == "FULL"
        assert http.delete(f"/config/{subject}", auth=gov_auth).status_code == 200


def test_https_registry_verified_against_the_ca(bootstrap: str, creds: Path,
                                                tmp_path: Path) -> None:
    pki = make_test_pki(tmp_path / "pki", now=dt.datetime.now(dt.UTC))
    gov = Principal(Role.GOVERNANCE)
    proc = RegistryProcess(bootstrap=bootstrap, topic=f"_schemas.{uuid.uuid4().hex[:8]}",
                           log_file=tmp_path / "registry.log", ca=pki.ca_cert,
                           auth=_auth(creds, gov),
                           env={"SHULIAN_CREDENTIALS_DIR": str(creds),
                                "SHULIAN_TLS_CERT_FILE": str(pki.server_cert),
                                "SHULIAN_TLS_KEY_FILE": str(pki.server_key)}).start()
    try:
        assert proc.url.startswith("https://")
        client = _client(proc.url, creds, gov, **{"ssl.ca.location": str(pki.ca_cert)})
        assert client.get_subjects() == []
        plain = proc.url.replace("https://", "http://")
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{plain}/subjects", auth=_auth(creds, gov), timeout=5)
        with pytest.raises(httpx.ConnectError):  # a client that does not trust the CA
            httpx.get(f"{proc.url}/subjects", auth=_auth(creds, gov), timeout=5)
    finally:
        assert proc.stop() == 0


def test_registry_without_credentials_says_it_is_unauthenticated(
        registry: RegistryProcess) -> None:
    log = registry.log_file.read_text(errors="replace")
    assert log.count("registry.unauthenticated") == 1
    assert httpx.get(f"{registry.url}/subjects", timeout=5).status_code == 200
