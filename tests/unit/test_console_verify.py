"""The console's audit pages show verifications (audit.verify.<dataset>) next to deliveries:
the chain check of their partition, and report rows with who asked, entry, version and each
claim's answer, the key as a digest. No claimed value reaches the page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shulian.chain.messages import InMessage
from shulian.chain.topology import Topology
from shulian.console.app import create_app
from shulian.console.data.tail import TopicSet
from shulian.console.serve import build_console
from shulian.logic.audit import AuditChain, build_verification
from shulian.settings import load_settings
from tests.fixtures.verify import verify_catalog

GOV = "gov-token-verify"
AT = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
TOPIC = "audit.verify.household_change"


def verification_messages() -> list[InMessage]:
    chain = AuditChain()
    out: list[InMessage] = []
    for i, answer in enumerate(["match", "no_match"]):
        rec = build_verification(entry_id="psb-bank-verify", list_version=3,
                                 dataset="household_change", provider="psb", consumer="bank",
                                 ts=AT, worker="gw", key_digest=f"{i}f" * 32,
                                 claims=[("name", "equals", answer, "secretdigest")])
        out.append(InMessage(TOPIC, 0, i, None, chain.seal(rec),
                             int(AT.timestamp() * 1000)))
    return out


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    (tmp_path / "connectors").mkdir()
    settings = load_settings(connectors_dir=tmp_path / "connectors",
                             console_governance_token=GOV)
    console, _ = build_console(settings, {}, namespace=None, clock=lambda: AT)
    console.store.add_audit(TOPIC, 0, verification_messages())
    with TestClient(create_app(console), base_url="http://127.0.0.1") as c:
        page = c.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        c.post("/login", data={"token": GOV, "csrf": csrf.group(1)}, follow_redirects=False)
        yield c


def test_verifications_on_the_audit_pages(client: TestClient) -> None:
    audit = client.get("/audit")
    assert audit.status_code == 200 and f"{TOPIC}[0]" in audit.text
    assert "已损坏" not in audit.text
    report = client.get("/audit/report?consumer=bank")
    assert report.status_code == 200
    assert "name equals: match" in report.text and "name equals: no_match" in report.text
    assert "psb-bank-verify v3" in report.text and "0f0f0f0f0f0f0f0f" in report.text
    assert "secretdigest" not in report.text
    csv = client.get("/audit/report.csv?consumer=bank").text.splitlines()
    assert len(csv) == 3 and csv[0].endswith("answers,key_digest")


def test_the_console_tails_the_verification_audit(tmp_path: Path) -> None:
    catalog = verify_catalog(tmp_path)
    assert TOPIC in TopicSet.of(catalog, Topology()).audit
