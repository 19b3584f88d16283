"""The console's app in process (no broker): login with CSRF, signed sessions, who sees what
(403 and nothing foreign in the page), words, SVG plots, offline assets. The store is filled
through the same calls its Kafka reader makes, with chain-shaped synthetic messages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog.testing
from fastapi.testclient import TestClient

from shulian.bench.console_pages import NOW, audit_messages, deadletter_messages
from shulian.connectors.sources.gateway_auth import token_sha256
from shulian.console.app import COOKIE, create_app
from shulian.console.auth import Kind, Principal, SessionCodec, TokenBook
from shulian.console.data.words import diff_lists, entry_words, reason_words
from shulian.console.serve import build_console
from shulian.console.svg import bars
from shulian.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
TOKENS = {"psb": "psb-token-1", "amr": "amr-token-2"}
GOV, AUD = "gov-token-3", "aud-token-4"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    gw = tmp_path / "connectors"
    gw.mkdir()
    (gw / "gw.yaml").write_text(
        "name: gw\ntype: http_gateway\nagencies:\n"
        f"  psb:\n    token_sha256: {token_sha256(TOKENS['psb'])}\n"
        "    datasets: [household_change]\n"
        "  amr:\n    token_env: AMR_TOKEN\n    datasets: [business_licence]\n", "utf-8")
    settings = load_settings(connectors_dir=gw, console_governance_token=GOV,
                             console_auditor_token=AUD)
    console, _ = build_console(settings, {"AMR_TOKEN": TOKENS["amr"]}, namespace=None,
                               clock=lambda: NOW)
    now_ms = int(NOW.timestamp() * 1000)
    for topic, partition, msgs in audit_messages(400, now_ms=now_ms):
        console.store.add_audit(topic, partition, msgs)
    console.store.add_deadletters(deadletter_messages(40, now_ms=now_ms))
    with TestClient(create_app(console), base_url="http://127.0.0.1") as c:
        yield c


def login(c: TestClient, token: str) -> None:
    page = c.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    r = c.post("/login", data={"token": token, "csrf": csrf.group(1)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] != "/login?failed=1", r.text


def main(html: str) -> str:
    """The page's content (the header echoes the requested path in its language form)."""
    return html.split("<main>", 1)[1].split("</main>", 1)[0]


def test_token_book_identifies_each_principal_and_nobody_else() -> None:
    book = TokenBook.of(agencies={"psb": token_sha256("a")}, governance="g", auditor="x")
    assert book.identify("a") == Principal(Kind.AGENCY, "psb")
    assert book.identify("g") == Principal(Kind.GOVERNANCE)
    assert book.identify("x") == Principal(Kind.AUDITOR)
    assert book.identify("b") is None and book.identify("") is None


def test_session_cookie_is_signed_and_expires() -> None:
    codec = SessionCodec(b"k" * 32, ttl_ms=1000)
    value, _ = codec.issue(Principal(Kind.AGENCY, "amr"), now_ms=0)
    assert codec.read(value, now_ms=10) is not None
    assert codec.read(value, now_ms=1000) is None  # expired
    body, sig = value.split(".")
    forged = body.replace(body[2], "A" if body[2] != "A" else "B") + "." + sig
    assert codec.read(forged, now_ms=10) is None
    assert SessionCodec(b"x" * 32).read(value, now_ms=10) is None  # another key


def test_login_needs_the_form_csrf_and_sets_a_strict_httponly_cookie(client: TestClient) -> None:
    client.get("/login")
    r = client.post("/login", data={"token": GOV, "csrf": "wrong"}, follow_redirects=False)
    assert r.status_code == 403
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    bad = client.post("/login", data={"token": "nope", "csrf": csrf.group(1)},
                      follow_redirects=False)
    assert bad.headers["location"] == "/login?failed=1"
    ok = client.post("/login", data={"token": GOV, "csrf": csrf.group(1)},
                     follow_redirects=False)
    cookie = ok.headers["set-cookie"]
    assert cookie.startswith(COOKIE) and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert client.get("/").status_code == 200
    # logout without the session's CSRF token is refused
    assert client.post("/logout", data={"csrf": "x"}).status_code == 403


def test_pages_without_a_session_go_to_login(client: TestClient) -> None:
    for path in ("/", "/deadletters", "/audit", "/audit/report.csv", "/sharing"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login", path


def test_governance_sees_every_page_and_every_agency(client: TestClient) -> None:
    login(client, GOV)
    for path in ("/", "/catalogue", "/catalogue/mappings/amr/business_licence", "/sharing",
                 "/sharing/diff?a=1&b=2", "/deadletters", "/audit", "/audit/report",
                 "/audit/report.csv", "/audit/journey?key=K00000001"):
        assert client.get(path).status_code == 200, path
    dead = client.get("/deadletters").text
    assert 'data-agency="psb"' in dead and 'data-agency="amr"' in dead


def test_an_agency_sees_its_own_and_is_refused_the_rest(client: TestClient) -> None:
    login(client, TOKENS["amr"])
    dead = client.get("/deadletters")
    assert dead.status_code == 200
    assert 'data-agency="amr"' in dead.text and 'data-agency="psb"' not in dead.text
    assert "raw.psb." not in dead.text
    with structlog.testing.capture_logs() as logged:
        for path in ("/deadletters?agency=psb", "/audit", "/audit/report", "/audit/report.csv",
                     "/catalogue/mappings/psb/household_change",
                     "/deadletters/deadletter.psb.household_change/0/0/original"):
            r = client.get(path)
            assert r.status_code == 403, path
            assert "household_change" not in main(r.text)
    own = client.get("/deadletters/deadletter.amr.business_licence/0/1/original")
    assert own.status_code == 200 and own.content.startswith(b"\x00")
    sharing = client.get("/sharing").text
    assert 'data-entry="amr-tax-licence"' in sharing
    assert 'data-entry="psb-civil-household"' not in sharing
    overview = client.get("/").text
    assert 'data-agency="amr"' in overview and 'data-agency="psb"' not in overview
    forbidden = [e for e in logged if e["event"] == "console.forbidden"]
    assert len(forbidden) == 6 and "agency:amr" in str(forbidden[0])


def test_the_auditor_gets_audit_pages_only_among_the_data_pages(client: TestClient) -> None:
    login(client, AUD)
    assert client.get("/audit").status_code == 200
    assert client.get("/audit/report?consumer=civil").status_code == 200
    assert client.get("/deadletters").status_code == 403
    assert client.get("/", follow_redirects=False).headers["location"] == "/audit"


def test_audit_verify_page_reports_intact_chains_and_counts(client: TestClient) -> None:
    login(client, GOV)
    page = client.get("/audit").text
    assert page.count(">完整<") == 9 and "已损坏" not in page
    csv = client.get("/audit/report.csv?consumer=tax").text.splitlines()
    assert csv[0].startswith("ts,kind,dataset") and len(csv) == 1 + 100
    assert all(",tax," in line for line in csv[1:])


def test_english_switch_and_offline_assets(client: TestClient) -> None:
    login(client, GOV)
    page = client.get("/")
    assert "总览" in page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    client.post("/lang", data={"csrf": csrf.group(1), "lang": "en", "next": "/"})
    page = client.get("/")
    assert "Overview" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert urls and all(u.startswith(("/", "?", "#")) for u in urls), urls
    assert "<script" not in page.text and "style=" not in page.text
    assert client.get("/static/console.css").status_code == 200


def test_words_for_reasons_entries_and_diffs() -> None:
    from shulian.catalog.load import load_catalog

    cat = load_catalog(ROOT / "catalog", schemas_dir=ROOT / "schemas")
    assert reason_words("element_check_failed", "zh", field="citizen_id",
                        check="check_digit") == ("某字段未通过数据元校验；字段 citizen_id；"
                                                 "检查：校验码不符")
    assert "check: the check character does not match" in reason_words(
        "element_check_failed", "en", check="check_digit")
    entry = next(e for e in cat.sharing_lists[2].entries if e.id == "amr-hrss-licence")
    words = entry_words(entry, cat, "zh")
    assert "有条件共享" in words and "仅保留姓氏" in words and "审批" in words
    changes = {c.entry_id: c.change for c in diff_lists(cat.sharing_lists[1],
                                                        cat.sharing_lists[2])}
    assert changes and set(changes.values()) <= {"added", "removed", "changed"}


def test_bars_are_plain_svg() -> None:
    svg = bars([("in", [0, 3, 1]), ("dead", [1, 0, 0])], title="t <x>")
    assert svg.startswith("<svg") and "t &lt;x&gt;" in svg and "style" not in svg
    assert svg.count('class="s0"') == 3 and svg.count('class="s1"') == 2  # bars + legend


def test_up_runs_the_console_with_its_tokens_in_the_environment_not_argv() -> None:
    from pydantic import SecretStr

    from shulian.cli.up import console_tokens, endpoints_table
    from shulian.embedded.stack import Endpoints, stack_children

    settings, made = console_tokens(load_settings(console_port=18090))
    assert set(made) == {"SHULIAN_CONSOLE_GOVERNANCE_TOKEN", "SHULIAN_CONSOLE_AUDITOR_TOKEN"}
    kept, none = console_tokens(settings.model_copy(update={
        "console_auditor_token": SecretStr("given")}))
    assert kept.console_auditor_token is not None and "SHULIAN_CONSOLE_AUDITOR_TOKEN" not in none
    endpoints = Endpoints.from_settings(settings)
    child = next(c for c in stack_children(settings, endpoints, commands={"console"})
                 if c.name == "console")
    assert child.needs_init and "console" in child.argv
    gov = made["SHULIAN_CONSOLE_GOVERNANCE_TOKEN"]
    assert child.env["SHULIAN_CONSOLE_GOVERNANCE_TOKEN"] == gov
    assert all(gov not in a for a in child.argv)
    table = endpoints_table(endpoints, running={"console"})
    assert "console" in table and "http://127.0.0.1:18090" in table
    line = endpoints_table(endpoints, running=set()).splitlines()[-1]
    assert line.strip().startswith("console") and "not running: no console" in line
