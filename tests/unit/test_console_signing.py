"""Pending list versions in the console, in process (no broker): the signatures' states, an
agency adding the signatures it made offline with `shulian sharing sign --detached`, every
refusal (another's entry, a bad signature, another party's key, no CSRF, the auditor), and
the governance office completing a version. Publishing itself needs a broker: the browser
test (tests/integration/test_console_browser.py) publishes and sees the version in force."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog.testing
from fastapi.testclient import TestClient

from shulian.bench.console_pages import NOW
from shulian.connectors.sources.gateway_auth import token_sha256
from shulian.console.app import create_app
from shulian.console.serve import build_console
from shulian.settings import REPO_ROOT, load_settings
from tests.fixtures.proposals import CHANGED, propose_next, sign_detached, sign_in_place

TOKENS = {"psb": "psb-token-1", "amr": "amr-token-2"}
GOV, AUD = "gov-token-3", "aud-token-4"


@dataclass
class Rig:
    client: TestClient
    proposal: Path


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    gw = tmp_path / "connectors"
    gw.mkdir()
    (gw / "gw.yaml").write_text(
        "name: gw\ntype: http_gateway\nagencies:\n"
        f"  psb:\n    token_sha256: {token_sha256(TOKENS['psb'])}\n"
        "    datasets: [household_change]\n"
        f"  amr:\n    token_sha256: {token_sha256(TOKENS['amr'])}\n"
        "    datasets: [business_licence]\n", "utf-8")
    proposals = tmp_path / "proposals"
    path = propose_next(proposals, REPO_ROOT / "catalog" / "sharing" / "list.v2.yaml")
    settings = load_settings(connectors_dir=gw, console_governance_token=GOV,
                             console_auditor_token=AUD, sharing_proposals_dir=proposals)
    console, _ = build_console(settings, {}, namespace=None, clock=lambda: NOW)
    with TestClient(create_app(console), base_url="http://127.0.0.1") as c:
        yield Rig(c, path)


def login(c: TestClient, token: str) -> str:
    """Log in; the session's CSRF token (from the sharing page's forms)."""
    c.cookies.clear()
    page = c.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    r = c.post("/login", data={"token": token, "csrf": csrf.group(1)}, follow_redirects=False)
    assert r.status_code == 303 and "failed" not in r.headers["location"]
    found = re.search(r'name="csrf" value="([^"]+)"', c.get("/sharing").text)
    assert found is not None
    return found.group(1)


def status_of(html: str, entry: str, role: str) -> str:
    row = html.split(f'<tr data-entry="{entry}">', 1)[1].split("</tr>", 1)[0]
    found = re.search(rf'data-role="{role}" data-status="(\w+)"', row)
    assert found is not None, row
    return found.group(1)


def test_an_agency_sees_its_pending_entries_and_signs_what_it_made_offline(rig: Rig) -> None:
    c = rig.client
    csrf = login(c, TOKENS["psb"])
    page = c.get("/sharing").text
    assert 'data-version="3"' in page and status_of(page, CHANGED, "provider") == "missing"
    assert status_of(page, CHANGED, "consumer") == "missing"
    assert status_of(page, "psb-civil-household", "provider") == "valid"  # unchanged: kept
    assert 'data-entry="amr-tax-licence"' not in page  # not party to it
    assert f"shulian sharing sign {rig.proposal} --key &lt;psb-private-key.pem&gt; --detached" \
        in page
    with structlog.testing.capture_logs() as logs:
        r = c.post(f"/sharing/proposals/{rig.proposal.name}/sign", follow_redirects=False,
                   data={"csrf": csrf, "signatures": sign_detached(rig.proposal, "psb-dev-1.pem")})
    assert r.status_code == 303, r.text
    assert any(e["event"] == "console.signatures_added" for e in logs)
    page = c.get("/sharing").text
    assert status_of(page, CHANGED, "provider") == "valid"
    assert status_of(page, CHANGED, "consumer") == "missing"
    assert "psb-dev-1" in rig.proposal.read_text("utf-8")


def test_refused_another_entry_a_bad_signature_another_key_no_csrf_and_the_auditor(
        rig: Rig) -> None:
    c = rig.client
    before = rig.proposal.read_text("utf-8")
    gov_lines = sign_detached(rig.proposal, "governance-dev-1.pem").splitlines()
    psb_line = next(x for x in sign_detached(rig.proposal, "psb-dev-1.pem").splitlines()
                    if x.startswith(f"{CHANGED}:provider "))
    target, key, sig = psb_line.split()
    flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    hrss_line = next(x for x in sign_detached(rig.proposal, "hrss-dev-1.pem").splitlines()
                     if x.startswith(f"{CHANGED}:consumer "))
    csrf = login(c, TOKENS["psb"])
    cases = {
        "not_yours": "amr-tax-licence:provider " + " ".join(psb_line.split()[1:]),
        "not_yours ": hrss_line,  # hrss's signature of its own role: not psb's to add
        "not_yours  ": next(x for x in gov_lines if x.startswith("version ")),
        "invalid": f"{target} {key} {flipped}",
        "invalid ": f"{target} hrss-dev-1 {sig}",  # a key that is not psb's
        "unreadable": "hello",
    }
    url = f"/sharing/proposals/{rig.proposal.name}/sign"
    for code, pasted in cases.items():
        with structlog.testing.capture_logs() as logs:
            r = c.post(url, data={"csrf": csrf, "signatures": pasted})
        assert r.status_code == 403, (code, r.text)
        assert any(e["event"] == "console.forbidden" and e.get("code") == code.strip()
                   and e["principal"] == "agency:psb" for e in logs), (code, logs)
        why = r.text.split('id="refused-why" class="bad">', 1)[1].split("</p>", 1)[0]
        assert why.strip(), code  # a reason in words
    r = c.post(url, data={"csrf": csrf, "signatures": f"{target} {key} {flipped}"})
    assert "invalid signature by key" in r.text
    assert c.post(url, data={"signatures": psb_line}).status_code == 403  # no CSRF
    assert rig.proposal.read_text("utf-8") == before  # nothing written by any of them
    csrf = login(c, AUD)
    assert c.post(url, data={"csrf": csrf, "signatures": psb_line}).status_code == 403
    assert c.post(f"/sharing/proposals/{rig.proposal.name}/publish",
                  data={"csrf": csrf}).status_code == 403
    csrf = login(c, TOKENS["amr"])
    assert c.post(f"/sharing/proposals/{rig.proposal.name}/publish",
                  data={"csrf": csrf}).status_code == 403
    assert c.post("/sharing/proposals/..%2Fsecret.yaml/sign",
                  data={"csrf": csrf, "signatures": psb_line}).status_code in (403, 404)
    assert rig.proposal.read_text("utf-8") == before


def test_the_governance_office_completes_the_version_and_may_publish_it(rig: Rig) -> None:
    c = rig.client
    csrf = login(c, TOKENS["psb"])
    url = f"/sharing/proposals/{rig.proposal.name}/sign"
    c.post(url, data={"csrf": csrf, "signatures": sign_detached(rig.proposal, "psb-dev-1.pem")})
    csrf = login(c, GOV)
    publish = f"/sharing/proposals/{rig.proposal.name}/publish"
    r = c.post(publish, data={"csrf": csrf})
    assert r.status_code == 403 and "no consumer signature (hrss)" in r.text  # incomplete
    sign_in_place(rig.proposal, "hrss-dev-1.pem")  # hrss signs the file offline, the CLI way
    r = c.post(url, follow_redirects=False, data={
        "csrf": csrf, "signatures": sign_detached(rig.proposal, "governance-dev-1.pem")})
    assert r.status_code == 303, r.text
    page = c.get("/sharing").text
    assert status_of(page, CHANGED, "governance") == "valid"
    assert status_of(page, "version", "version") == "valid"
    assert 'class="publish"' in page  # complete: the governance office may publish
    assert "sharing/proposals" in page and 'class="good proposal-state"' in page


def test_without_a_proposals_folder_the_page_says_where_proposals_come_from(
        tmp_path: Path) -> None:
    gw = tmp_path / "connectors"
    gw.mkdir()
    (gw / "gw.yaml").write_text(
        "name: gw\ntype: http_gateway\nagencies:\n"
        f"  psb:\n    token_sha256: {token_sha256(TOKENS['psb'])}\n"
        "    datasets: [household_change]\n", "utf-8")
    settings = load_settings(connectors_dir=gw, console_governance_token=GOV)
    console, _ = build_console(settings, {}, namespace=None, clock=lambda: NOW)
    with TestClient(create_app(console), base_url="http://127.0.0.1") as c:
        login(c, GOV)
        page = c.get("/sharing").text
    assert 'id="no-proposals"' in page and "SHULIAN_SHARING_PROPOSALS_DIR" in page
    assert "sign-form" not in page and 'class="publish"' not in page
