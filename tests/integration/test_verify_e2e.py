"""Joint verification through the whole chain: the public security bureau publishes household
records through the ingest gateway, a real chain worker (on the verify test catalogue) harmonises
them and writes the verification changelog from the canonical records, and the same gateway
(with ``verify_datasets``, on a real socket) answers the bank's claims: match, no_match,
unknown, 403 for a claim not allowed, 429 at the per-key limit, 401 unauthenticated, 403 for
an agency without a verify entry; a list version revoking the bank's entry, published on the
control topic, makes its next requests 403 (an unsigned one changes nothing). Every answer and
refusal after the entry is known is in ``audit.verify.household_change`` in an intact hash
chain, with digests only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from structlog.testing import capture_logs

from shulian.audit.verifying import Topics, run_verify
from shulian.audit.window import Window
from shulian.catalog.elements import citizen_id_check_char
from shulian.catalog.keys import Keyring
from shulian.catalog.load import load_catalog
from shulian.cli.main import cli
from shulian.clock import DEMO_CLOCK
from shulian.connectors.metrics import ConnectorMetrics
from shulian.connectors.sources.config import GatewayConfig
from shulian.connectors.sources.gateway import GatewaySource
from shulian.connectors.sources.gateway_auth import token_sha256
from shulian.embedded.net import free_port, wait_until
from shulian.io.kafka import producer_config
from shulian.io.reader import read_topics
from shulian.logic.audit import verify_chain
from shulian.logic.auditseal import verify_seals
from shulian.settings import Settings
from tests.fixtures.chain import ChainEnv, StartChain
from tests.fixtures.verify import revoking_version, verify_catalog_dir

pytestmark = pytest.mark.integration

TOKENS = {"psb": "psb-e2e-token", "bank": "bank-e2e-token"}
DATASET = "household_change"


def cid(first17: str) -> str:
    return first17 + citizen_id_check_char(first17)


ZHANG = cid("44010619850302123")
LI = cid("44010419900711456")
WANG = cid("44010319770412789")


def raw(serial: str, citizen_id: str, name: str, born: str, change: str) -> dict[str, Any]:
    """A record in the bureau's own words (pinyin-initial fields, 男/女, YYYYMMDD)."""
    return {"LSH": serial, "SFZH": citizen_id, "XM": name, "XB": "男", "CSRQ": born,
            "BDLX": change, "BDRQ": "2026/01/02", "QCDQ": None, "QRDQ": "440106",
            "HJDZ": "天河路1号", "DJSJ": "2026-01-02 09:00:00"}


def start_gateway(config: GatewayConfig, settings: Settings) -> GatewaySource:
    gateway = GatewaySource(config, settings=settings,
                            metrics=ConnectorMetrics.create(CollectorRegistry()))
    gateway.setup()
    gateway.start()
    return gateway


@dataclass
class Stack:
    chain: ChainEnv
    gateway: GatewaySource
    config: GatewayConfig
    settings: Settings

    def restart_gateway(self) -> None:
        """Stop the gateway and start a new one (a new process's state) on a new port."""
        self.gateway.stop()
        self.config = self.config.model_copy(update={"port": free_port()})
        self.gateway = start_gateway(self.config, self.settings)

    def ask(self, body: Any, agency: str | None = "bank") -> httpx.Response:
        headers = {} if agency is None else {"Authorization": f"Bearer {TOKENS[agency]}"}
        return httpx.post(f"{self.gateway.url}/v1/verify/{DATASET}", json=body,
                          headers=headers, timeout=30)


@pytest.fixture(scope="module")
def stack(start_chain_module: StartChain, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Stack]:
    catalog_dir = verify_catalog_dir(tmp_path_factory.mktemp("verify-e2e"))
    # decisions at the demo instant, inside the bank entry's validity (whatever today is)
    chain = start_chain_module(production_names=True, catalog_dir=catalog_dir,
                               extra_env={"SHULIAN_CLOCK": DEMO_CLOCK})
    config = GatewayConfig.model_validate({
        "name": "verify-e2e-gw", "type": "http_gateway", "host": "127.0.0.1",
        "port": free_port(), "verify_datasets": [DATASET],
        "agencies": {"psb": {"token_sha256": token_sha256(TOKENS["psb"]),
                             "datasets": [DATASET]},
                     "bank": {"token_sha256": token_sha256(TOKENS["bank"])}}})
    # the gateway checkpoints its verification audit heads to a file store after every write
    store = tmp_path_factory.mktemp("verify-e2e-checkpoints") / "checkpoints.jsonl"
    settings = chain.settings.model_copy(update={
        "clock": DEMO_CLOCK, "audit_checkpoint_store": SecretStr(str(store)),
        "audit_checkpoint_records": 1})
    gateway = start_gateway(config, settings)
    stack = Stack(chain, gateway, config, settings)
    try:
        assert gateway.verify is not None
        table = gateway.verify.tables[DATASET]
        publish(gateway, [raw("L1", ZHANG, "张三", "19850302", "出生"),
                          raw("L2", LI, "李四", "19900711", "迁入"),
                          raw("L4", WANG, "王五", "19770412", "迁入")])
        # the canonical topic is keyed by serial number: a later record of the same person
        # supersedes the earlier one in the order the chain decides them (docs/VERIFY.md)
        assert wait_until(lambda: table.applied >= 3, timeout_s=90), (
            f"the store has {table.applied} changelog records; worker log:\n"
            + chain.worker.log_text()[-3000:])
        publish(gateway, [raw("L3", LI, "李四", "19900711", "死亡")])
        assert wait_until(lambda: table.applied >= 4, timeout_s=60)
        yield stack
    finally:
        stack.gateway.stop()


def publish(gateway: GatewaySource, records: list[dict[str, Any]]) -> None:
    r = httpx.post(f"{gateway.url}/v1/agencies/psb/datasets/{DATASET}/records", json=records,
                   headers={"Authorization": f"Bearer {TOKENS['psb']}"}, timeout=30)
    assert r.status_code == 200, r.text


def name_id(citizen_id: str, name: str) -> dict[str, Any]:
    return {"key": {"citizen_id": citizen_id},
            "claims": [{"field": "name", "how": "equals", "value": name}]}


def test_the_bank_verifies_against_the_chain_and_every_answer_is_audited(stack: Stack) -> None:
    # match, no_match, unknown; the latest record of 李四 is a death (04)
    r = stack.ask({"queries": [name_id(ZHANG, "张三"), name_id(ZHANG, "张山"),
                               name_id(cid("44010119700101001"), "张三"),
                               {"key": {"citizen_id": LI}, "claims": [
                                   {"field": "change_type", "how": "equals", "value": "04"},
                                   {"field": "birth_date", "how": "range",
                                    "min": "1990-01-01", "max": "1990-12-31"}]}]})
    assert r.status_code == 200, r.text
    assert [x["answers"] for x in r.json()["results"]] == [
        ["match"], ["no_match"], ["unknown"], ["match", "match"]]
    assert r.json()["entry"] == "psb-bank-verify" and r.json()["list_version"] == 3
    for value in (ZHANG, LI, "张三", "李四", "1990-07-11"):
        assert value not in r.text
    # a claim the entry does not allow
    forbidden = stack.ask({"key": {"citizen_id": ZHANG},
                           "claims": [{"field": "address", "how": "equals", "value": "天河路1号"}]})
    assert forbidden.status_code == 403 and forbidden.json()["error"] == "claim_not_allowed"
    # five distinct claims per key per day, the sixth is refused with the list's reason
    for guess in ("王一", "王二", "王三", "王四", "王五"):
        assert stack.ask(name_id(WANG, guess)).status_code == 200
    limited = stack.ask(name_id(WANG, "王六"))
    assert limited.status_code == 429, limited.text
    assert limited.json()["limit"] == "distinct_claims_per_key_per_day"
    assert int(limited.headers["Retry-After"]) > 0
    # who asks is checked first; an agency without a verify entry learns nothing
    assert stack.ask(name_id(ZHANG, "张三"), agency=None).status_code == 401
    assert stack.ask(name_id(ZHANG, "张三"), agency="psb").status_code == 403

    topic = stack.chain.topology.verify_audit(DATASET)
    want = 4 + 1 + 5 + 1  # answered queries, the 403, five answered guesses, the 429

    def everything() -> list[Any]:
        return [m for msgs in read_topics(stack.chain.settings, [topic]).values()
                for m in msgs]

    def audited() -> list[Any]:  # the seals after each write vouch, they decide nothing
        return [m for m in everything() if json.loads(m.value or b"{}").get("kind") != "seal"]

    assert wait_until(lambda: len(audited()) >= want, timeout_s=30)
    msgs = audited()
    assert len(msgs) == want
    written = everything()
    items = [(m.offset, m.value or b"") for m in written]
    assert verify_chain(items) == []
    # sealed like the chain's audit: every write closed by a seal in the chain's key
    verdict = verify_seals(topic, written[0].partition, items, Keyring(stack.chain.catalog.keys))
    assert verdict.breaks == [] and verdict.unsigned_tail == 0 and verdict.seals >= 1
    # and its heads checkpointed outside Kafka: audit verify checks them against the topic
    result = run_verify(stack.settings, Topics((topic,), (), ()), Window(), check_digests=False)
    assert result.checkpoint_source == "store" and result.checkpoints
    assert result.ok and not result.unsigned_tails, result.breaks
    assert (topic, written[0].partition, written[-1].offset) in {
        (t, p, o) for t, p, o in _checkpointed(stack.settings, written)}
    recs = [json.loads(m.value or b"{}") for m in msgs]
    assert {r["kind"] for r in recs} == {"verification"}
    assert {(r["consumer"], r["entry_id"], r["list_version"]) for r in recs} == {
        ("bank", "psb-bank-verify", 3)}
    answered = [r for r in recs if r["decision"] == "verify"]
    assert [[c[2] for c in r["claims"]] for r in answered[:4]] == [
        ["match"], ["no_match"], ["unknown"], ["match", "match"]]
    assert sorted(r.get("reason") for r in recs if r["decision"] == "refused") == [
        "claim_not_allowed", "rate_limited:distinct_claims_per_key_per_day"]
    text = b"".join(m.value or b"" for m in msgs).decode()
    for value in (ZHANG, LI, WANG, "张三", "李四", "王六"):
        assert value not in text


def _checkpointed(settings: Settings, written: list[Any]) -> list[tuple[str, int, int]]:
    """(topic, partition, offset) of every head the store's checkpoints name, by seq."""
    from shulian.audit.verifying import read_checkpoints

    by_seq = {json.loads(m.value or b"{}")["seq"]: m.offset for m in written}
    return [(t, p, by_seq[seq]) for cp in read_checkpoints(settings) or []
            for t, p, seq, _ in cp.heads if seq in by_seq]


def test_the_store_follows_the_chain(stack: Stack) -> None:
    """A record published after the gateway started reaches its store through the chain."""
    born = cid("44010620010101002")
    publish(stack.gateway, [raw("L9", born, "赵六", "20010101", "出生")])

    def known() -> bool:
        got = stack.ask(name_id(born, "赵六"))
        return bool(got.status_code == 200 and got.json()["results"][0]["answers"] == ["match"])

    assert wait_until(known, timeout_s=60, interval_s=0.5)


def test_audit_report_and_verify_show_the_verifications(stack: Stack) -> None:
    """``audit report --consumer bank`` lists the bank's verifications next to the chain's
    decisions for it (every record withheld: verify_only), answers and digests only; ``audit
    verify`` checks audit.verify.* too."""
    runner = CliRunner()
    common = ["--bootstrap", stack.chain.settings.bootstrap_servers,
              "--catalog", str(stack.chain.settings.catalog_dir)]
    got = runner.invoke(cli, ["audit", "report", *common, "--consumer", "bank",
                              "--format", "json"])
    assert got.exit_code == 0, got.output
    rows = json.loads(got.output)
    decided = [r for r in rows if r["kind"] == "decision"]
    asked = [r for r in rows if r["kind"] == "verification"]
    assert len(decided) >= 4 and len(asked) >= 11 and len(rows) == len(decided) + len(asked)
    assert {(r["decision"], r["reason"]) for r in decided} == {("withhold", "verify_only")}
    assert {(r["entry_id"], r["list_version"]) for r in rows} == {("psb-bank-verify", 3)}
    assert asked[0]["answers"] == "name equals: match" and asked[0]["key_digest"]
    assert all(r["answers"] == "" and r["key_digest"] == "" for r in decided)
    for value in (ZHANG, LI, WANG, "张三", "李四", "王六"):
        assert value not in got.output
    table = runner.invoke(cli, ["audit", "report", *common, "--consumer", "bank"],
                          env={"COLUMNS": "250"})
    assert table.exit_code == 0, table.output
    assert "match " in table.output and "claim_not_allowed" in table.output
    verified = runner.invoke(cli, ["audit", "verify", *common], env={"COLUMNS": "250"})
    assert verified.exit_code == 0, verified.output
    assert stack.chain.topology.verify_audit(DATASET) in verified.output
    assert "OK: every chain intact" in verified.output


def test_rate_limit_counts_survive_a_gateway_restart(stack: Stack) -> None:
    """A new gateway counts again the day's admitted claims from the verification audit: the
    bank's sixth distinct guess about 王五 is still refused; a claim already asked is free."""
    stack.restart_gateway()
    assert stack.gateway.verify is not None and stack.gateway.verify.restored >= 11
    assert stack.ask(name_id(WANG, "王七")).status_code == 429
    assert stack.ask(name_id(WANG, "王三")).status_code == 200
    assert stack.ask(name_id(ZHANG, "张三")).json()["results"] == [{"answers": ["match"]}]


def test_the_gateway_follows_the_list_in_force(stack: Stack) -> None:
    """An unsigned v4 on the control topic is refused and changes nothing; the signed v4 that
    revokes the bank's entry makes its requests 403 within seconds (last: it ends the entry)."""
    catalog = load_catalog(stack.chain.settings.catalog_dir,
                           schemas_dir=stack.chain.settings.schemas_dir)
    producer = Producer(producer_config(stack.chain.settings))

    def publish_list(text: bytes) -> None:
        producer.produce(stack.chain.topology.control, text, b"4")
        assert producer.flush(30) == 0

    with capture_logs() as logs:
        publish_list(revoking_version(catalog, signed=False))
        assert wait_until(lambda: any(e["event"] == "verify.list_refused" for e in logs),
                          timeout_s=15)
    still = stack.ask(name_id(ZHANG, "张三"))
    assert still.status_code == 200 and still.json()["list_version"] == 3
    publish_list(revoking_version(catalog))
    assert wait_until(lambda: stack.ask(name_id(ZHANG, "张三")).status_code == 403,
                      timeout_s=15, interval_s=0.2)
    assert stack.ask(name_id(ZHANG, "张三")).json()["error"] == "forbidden"
