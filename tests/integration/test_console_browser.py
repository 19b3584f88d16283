"""The console in a real browser (Playwright driving Debian's Chromium) against a real stack:
the session broker and registry, a chain worker, the ingest gateway and the console, all on
127.0.0.1. Two agencies and the governance office log in; each sees exactly its own data and
is refused the rest; records the chain rejects, sent through the gateway, show on the sending
agency's dead-letter page with their reason in words; a list diff shows the entry that changed;
the browser logs no console error and sends no request off this machine. Screenshots of every
page go to build/screenshots/ (git-ignored)."""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import structlog.testing
import uvicorn
from playwright.sync_api import Browser, Page, sync_playwright

from shulian.connectors.metrics import ConnectorMetrics
from shulian.connectors.sources.config import GatewayConfig
from shulian.connectors.sources.gateway import GatewaySource
from shulian.connectors.sources.gateway_auth import token_sha256
from shulian.console.app import create_app
from shulian.console.serve import build_console
from shulian.embedded.net import free_port, wait_until
from shulian.logic.generate import generators_for
from tests.fixtures.chain import ChainEnv, StartChain
from tests.fixtures.proposals import CHANGED, propose_next, sign_detached, sign_in_place

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")  # Debian's chromium only

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
TOKENS = {"psb": "psb-browser-token", "amr": "amr-browser-token"}
GOV = "governance-browser-token"
DATASETS = {"psb": "household_change", "amr": "business_licence"}


@dataclass
class Stack:
    chain: ChainEnv
    gateway_url: str
    console_url: str
    broken: dict[str, str]  # agency -> the field its rejected record broke
    proposals: Path  # the folder `shulian sharing propose` works in, which the console shows


def _records(chain: ChainEnv, agency: str, *, invalid: bool, n: int) -> list[dict[str, Any]]:
    raw_schemas = {pair: json.loads((chain.settings.schemas_dir / m.raw_schema).read_text())
                   for pair, m in chain.catalog.mappings.items()}
    gen = generators_for(chain.catalog, raw_schemas)[(agency, DATASETS[agency])]
    rng = random.Random(f"{agency}-{invalid}")
    out = []
    while len(out) < n:
        g = gen.generate(rng, invalid_rate=1.0 if invalid else 0.0)
        if g.valid != invalid:
            out.append(g.raw)
    return out


def _serve(app: Any, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert wait_until(lambda: server.started, timeout_s=15, interval_s=0.05)
    return server, thread


@pytest.fixture(scope="module")
def stack(start_chain_module: StartChain, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Stack]:
    chain = start_chain_module(production_names=True)
    conn_dir = tmp_path_factory.mktemp("console-connectors")
    gw_config = {"name": "browser-gw", "type": "http_gateway", "port": 0,
                 "agencies": {a: {"token_sha256": token_sha256(t), "datasets": [DATASETS[a]]}
                              for a, t in TOKENS.items()}}
    (conn_dir / "gateway.yaml").write_text(json.dumps(gw_config), "utf-8")
    gateway = GatewaySource(GatewayConfig.model_validate(gw_config), settings=chain.settings,
                            metrics=ConnectorMetrics.create())
    gateway.setup()
    gateway.start()
    proposals = tmp_path_factory.mktemp("console-proposals")
    settings = chain.settings.model_copy(update={
        "connectors_dir": conn_dir, "console_governance_token": _secret(GOV),
        "gateway_port": gateway.port, "metrics_port": free_port(),
        "sharing_proposals_dir": proposals})
    console, tailer = build_console(settings, {}, namespace=None, interval_s=0.5)
    tailer.start()
    port = free_port()
    server, thread = _serve(create_app(console), port)
    broken: dict[str, str] = {}
    try:
        for agency, dataset in DATASETS.items():
            body = _records(chain, agency, invalid=False, n=3) + _records(chain, agency,
                                                                          invalid=True, n=1)
            r = httpx.post(f"{gateway.url}/v1/agencies/{agency}/datasets/{dataset}/records",
                           json=body, headers={"Authorization": f"Bearer {TOKENS[agency]}"},
                           timeout=30)
            assert r.status_code == 200, r.text  # the gateway takes them; the chain judges
        yield Stack(chain, gateway.url, f"http://127.0.0.1:{port}", broken, proposals)
    finally:
        server.should_exit = True
        thread.join(15)
        tailer.stop()
        gateway.stop()


def _secret(value: str) -> Any:
    from pydantic import SecretStr

    return SecretStr(value)


@dataclass
class Watch:
    errors: list[str]
    foreign: list[str]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: apt-get install chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM,
                              args=["--no-sandbox", "--disable-background-networking"])
        yield b
        b.close()


@pytest.fixture
def session(browser: Browser, stack: Stack) -> Iterator[tuple[Page, Watch]]:
    context = browser.new_context(locale="zh-CN")
    watch = Watch([], [])

    def only_local(route: Any) -> None:
        host = urlsplit(route.request.url).hostname
        if host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            watch.foreign.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    page = context.new_page()
    page.on("console", lambda m: watch.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: watch.errors.append(str(e)))
    yield page, watch
    context.close()
    assert watch.foreign == [], f"requests left this machine: {watch.foreign}"
    # the 403 pages are expected to be logged by the browser as failed loads, nothing else
    unexpected = [e for e in watch.errors if "403" not in e]
    assert unexpected == [], unexpected


def login(page: Page, stack: Stack, token: str) -> None:
    page.goto(f"{stack.console_url}/login")
    page.fill("#token", token)
    page.click("#login")
    page.wait_for_selector("#who")


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def main_text(page: Page) -> str:
    return page.inner_text("main")


def eventually(page: Page, url: str, ok: Callable[[str], bool], *, timeout_s: float = 90.0
               ) -> str:
    """Reload ``url`` until ``ok(main text)``: the console reads the topics in the background."""
    deadline = time.monotonic() + timeout_s
    while True:
        page.goto(url)
        text = main_text(page)
        if ok(text) or time.monotonic() > deadline:
            return text
        page.wait_for_timeout(500)


def test_an_agency_sees_its_dead_letters_in_words_and_nothing_of_another(
        stack: Stack, session: tuple[Page, Watch]) -> None:
    page, _ = session
    login(page, stack, TOKENS["psb"])
    shot(page, "overview-psb")
    text = eventually(page, f"{stack.console_url}/deadletters",
                      lambda t: "某字段未通过数据元校验" in t)
    assert "某字段未通过数据元校验" in text and "household_change" in text
    assert "business_licence" not in text and "amr" not in text
    rows = page.locator("#deadletters tr[data-agency]")
    assert rows.count() >= 1 and all(
        rows.nth(i).get_attribute("data-agency") == "psb" for i in range(rows.count()))
    shot(page, "deadletters-psb")
    href = page.locator("a.download").first.get_attribute("href")
    assert href is not None and "deadletter.psb." in href
    own = page.request.get(f"{stack.console_url}{href}")
    assert own.status == 200 and own.body()[:1] == b"\x00"  # the original Avro bytes
    # another agency's dead letters, its original records, the audit pages: refused
    for path in ("/deadletters?agency=amr", "/audit", "/audit/report",
                 "/catalogue/mappings/amr/business_licence",
                 "/deadletters/deadletter.amr.business_licence/0/0/original"):
        response = page.goto(f"{stack.console_url}{path}")
        assert response is not None and response.status == 403, path
        assert "business_licence" not in main_text(page) and "amr" not in main_text(page)
    shot(page, "forbidden-psb")
    page.goto(f"{stack.console_url}/sharing")
    entries = page.locator("#entries li[data-entry]")
    ids = [entries.nth(i).get_attribute("data-entry") or "" for i in range(entries.count())]
    assert ids and all("psb" in i for i in ids), ids  # only the entries psb is party to
    shot(page, "sharing-psb")


def test_the_other_agency_sees_only_its_own(stack: Stack, session: tuple[Page, Watch]) -> None:
    page, _ = session
    login(page, stack, TOKENS["amr"])
    text = eventually(page, f"{stack.console_url}/deadletters",
                      lambda t: "某字段未通过数据元校验" in t)
    assert "business_licence" in text and "household_change" not in text and "psb" not in text
    shot(page, "deadletters-amr")
    response = page.goto(f"{stack.console_url}/deadletters?agency=psb")
    assert response is not None and response.status == 403
    assert "household_change" not in main_text(page)
    page.goto(f"{stack.console_url}/")
    cards = page.locator(".card[data-agency]")
    assert {cards.nth(i).get_attribute("data-agency") for i in range(cards.count())} == {"amr"}
    shot(page, "overview-amr")


def test_governance_sees_everything_and_the_list_diff(stack: Stack,
                                                      session: tuple[Page, Watch]) -> None:
    page, _ = session
    login(page, stack, GOV)
    text = eventually(page, f"{stack.console_url}/deadletters",
                      lambda t: "household_change" in t and "business_licence" in t)
    assert "household_change" in text and "business_licence" in text
    shot(page, "deadletters-governance")
    overview = eventually(page, f"{stack.console_url}/", lambda t: "已交付" in t and "v2" in t)
    assert "v2" in page.inner_text("#in-force")
    shot(page, "overview-governance")
    for name, path in (("catalogue", "/catalogue"),
                       ("mapping-psb", "/catalogue/mappings/psb/household_change"),
                       ("sharing", "/sharing"), ("audit-verify", "/audit"),
                       ("audit-report", "/audit/report"),
                       ("audit-journey", "/audit/journey")):
        response = page.goto(f"{stack.console_url}{path}")
        assert response is not None and response.status == 200, path
        shot(page, name)
    assert "完整" in eventually(page, f"{stack.console_url}/audit", lambda t: "完整" in t)
    assert "已损坏" not in main_text(page)
    page.goto(f"{stack.console_url}/sharing/diff?a=1&b=2")
    diff = page.locator("#diff tr[data-entry]")
    changes = {diff.nth(i).get_attribute("data-entry"): diff.nth(i).get_attribute("class")
               for i in range(diff.count())}
    assert changes.get("amr-hrss-licence") == "changed", changes  # v2 tightens its row filter
    assert "row_filter" in page.inner_text("#diff tr[data-entry='amr-hrss-licence']")
    shot(page, "sharing-diff")
    page.click("#lang-switch")
    page.wait_for_selector("#diff")
    assert "Compare versions" in main_text(page)
    shot(page, "sharing-diff-en")
    assert overview


def _status(page: Page, entry: str, role: str) -> str | None:
    return page.get_attribute(f"tr[data-entry='{entry}'] td[data-role='{role}']", "data-status")


def _applied(stack: Stack, version: int) -> bool:
    """The chain worker logged applying list ``version`` (it judged it as the signed next)."""
    marks = (f"version={version} ", f'"version": {version},', f'"version":{version},')
    return any("sharing_list.applied" in line and any(m in line for m in marks)
               for line in stack.chain.worker.log_text().splitlines())


def _paste(page: Page, proposal: str, text: str) -> int:
    """Paste signatures into the proposal's form and submit; the response's status."""
    form = f"section[data-proposal='{proposal}'] form.sign-form"
    page.fill(f"{form} textarea", text)
    with page.expect_navigation() as nav:
        page.click(f"{form} button")
    response = nav.value
    assert response is not None
    return response.status


def test_signed_list_versions_are_signed_and_published_from_the_console(
        stack: Stack, session: tuple[Page, Watch]) -> None:
    """An agency signs (offline, pasting what `shulian sharing sign --detached` printed) the
    pending entry it is party to, is refused another's entry and a bad signature (403,
    logged); the consumer signs the file with the CLI; the governance office completes the
    version and publishes it; the worker applies it and the console shows it in force. Runs
    last in this module: the version it publishes replaces v2 for the session's stack."""
    page, _ = session
    lists = stack.chain.catalog.sharing_lists
    assert max(lists) == 2, "the example catalogue's newest version should be v2"
    path = propose_next(stack.proposals, stack.chain.settings.catalog_dir / "sharing" /
                        "list.v2.yaml")
    name = path.name
    login(page, stack, TOKENS["psb"])
    page.goto(f"{stack.console_url}/sharing")
    assert page.get_attribute(f"section[data-proposal='{name}']", "data-version") == "3"
    assert _status(page, CHANGED, "provider") == "missing"
    assert _status(page, CHANGED, "consumer") == "missing"
    assert page.locator("tr[data-entry='amr-tax-licence']").count() == 0  # not party to it
    command = page.inner_text("pre.command")
    assert command == f"shulian sharing sign {path} --key <psb-private-key.pem> --detached"
    shot(page, "sharing-proposal-psb")
    psb = sign_detached(path, "psb-dev-1.pem")  # offline, with psb's own key file
    before = path.read_text("utf-8")
    line = next(x for x in psb.splitlines() if x.startswith(f"{CHANGED}:provider "))
    target, key, sig = line.split()
    with structlog.testing.capture_logs() as logs:
        assert _paste(page, name, f"amr-tax-licence:provider {key} {sig}") == 403
        assert "not psb's to sign" in page.inner_text("#refused-why")
        assert "amr" not in page.inner_text("#refused-why").replace("amr-tax-licence", "")
        shot(page, "sharing-sign-refused-psb")
        page.goto(f"{stack.console_url}/sharing")
        flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
        assert _paste(page, name, f"{target} {key} {flipped}") == 403
        assert "invalid signature by key 'psb-dev-1'" in page.inner_text("#refused-why")
    refusals = [e for e in logs if e["event"] == "console.forbidden"]
    assert [e["code"] for e in refusals] == ["not_yours", "invalid"], logs
    assert all(e["principal"] == "agency:psb" for e in refusals)
    assert path.read_text("utf-8") == before  # nothing written
    page.goto(f"{stack.console_url}/sharing")
    assert _paste(page, name, psb) == 200  # 303 -> the sharing page
    assert page.is_visible("#signed-ok")
    assert _status(page, CHANGED, "provider") == "valid"
    assert page.locator("form.sign-form").count() == 0  # nothing left for psb to sign
    sign_in_place(path, "hrss-dev-1.pem")  # hrss (no console login here) signs with the CLI

    login(page, stack, GOV)
    page.goto(f"{stack.console_url}/sharing")
    assert _status(page, CHANGED, "consumer") == "valid"
    assert _status(page, CHANGED, "governance") == "missing"
    assert page.locator("button.publish").count() == 0  # incomplete: nothing to publish
    assert _paste(page, name, sign_detached(path, "governance-dev-1.pem")) == 200
    assert _status(page, CHANGED, "governance") == "valid"
    assert _status(page, "version", "version") == "valid"
    shot(page, "sharing-proposal-complete")
    with page.expect_navigation():
        page.click(f"section[data-proposal='{name}'] button.publish")
    assert page.is_visible("#published-ok")
    deadline = time.monotonic() + 60
    while not _applied(stack, 3) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _applied(stack, 3), stack.chain.worker.log_text()[-3000:]
    text = eventually(page, f"{stack.console_url}/sharing",
                      lambda t: "v3" in t.split("\n", 1)[0])
    assert "v3" in page.inner_text("h1") and "现行" in page.inner_text("h1"), text[:200]
    assert page.locator("section.proposal").count() == 0  # in force: no longer pending
    assert "含跨市迁移" in page.inner_text(f"#entries li[data-entry='{CHANGED}']")
    shot(page, "sharing-published-v3")
