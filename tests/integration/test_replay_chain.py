"""Replay tooling against a running chain: a real worker process on the session broker and
registry, example records published with confluent-kafka's AvroSerializer.

One chain per module (``start_chain_module``; the worker's first group join is the slow part);
tests that only read run first, the drill (which only reads production) last.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from shulian.audit.check import audit_entries
from shulian.audit.drill import run_drill
from shulian.audit.redelivering import run_redeliver
from shulian.audit.replaying import run_replay_decisions
from shulian.audit.verifying import catalogue_topics, run_verify
from shulian.audit.window import Window
from shulian.catalog.models import Catalog
from shulian.chain.topology import Topology, plan_topics
from shulian.cli.main import cli
from shulian.io.publish import AgencyPublisher
from shulian.io.reader import read_topics
from shulian.settings import Settings
from tests.fixtures.chain import StartChain

pytestmark = pytest.mark.both_engines

KEY = "replay-test-master-key"


def _expected_decisions(catalog: Catalog, valid: dict[tuple[str, str], int]) -> int:
    sl = catalog.current_list
    return sum(n * sum(1 for e in sl.entries if (e.provider, e.dataset) == pair)
               for pair, n in valid.items())


def _wait_audits(settings: Settings, topics: list[str], n: int, log: Path) -> None:
    deadline = time.monotonic() + 120
    got = 0
    while time.monotonic() < deadline:
        got = sum(len(audit_entries(ms)) for ms in read_topics(settings, topics).values())
        if got >= n:
            return
        time.sleep(0.5)
    raise AssertionError(f"{got}/{n} audit records; worker log:\n"
                         + log.read_text("utf-8", "replace")[-3000:])


@pytest.fixture(scope="module")
def chain(start_chain_module: StartChain) -> dict[str, Any]:
    env = start_chain_module(master_key=KEY)
    settings, catalog, topology = env.settings, env.catalog, env.topology
    publisher = AgencyPublisher(settings, catalog, topology)
    rng = random.Random(5)
    valid: dict[tuple[str, str], int] = {}
    for pair in publisher.pairs:
        t = publisher.publish(pair, 15, rng=rng, invalid_rate=0.1, garbage=1)
        valid.update(t.valid)
    publisher.flush()
    plan = plan_topics(catalog, topology)
    _wait_audits(settings, list(plan.audit), _expected_decisions(catalog, valid),
                 env.worker.log_path)
    return {"settings": settings, "catalog": catalog, "topology": topology, "env": env.env,
            "tmp": env.tmp, "ns": env.namespace}


def test_replay_of_decisions_matches_the_audit(chain: dict[str, Any]) -> None:
    catalog: Catalog = chain["catalog"]
    res = run_replay_decisions(chain["settings"], catalog=catalog, topology=chain["topology"],
                               window=Window.parse("-1h", "now"),
                               datasets=sorted(catalog.datasets), master_key=KEY.encode())
    assert res.records > 0 and res.decisions >= res.records and res.views_compared > 0
    assert res.mismatches == []
    # a wrong master key makes the masked values differ: the replay must notice
    wrong = run_replay_decisions(chain["settings"], catalog=catalog, topology=chain["topology"],
                                 window=Window.parse("-1h", "now"),
                                 datasets=sorted(catalog.datasets), master_key=b"wrong")
    assert wrong.mismatches and all("delivered view differs" in m.what for m in wrong.mismatches)


def test_verify_and_report_on_the_live_log(chain: dict[str, Any]) -> None:
    settings: Settings = chain["settings"]
    res = run_verify(settings, catalogue_topics(settings, chain["ns"]), Window())
    assert res.breaks == [] and res.deliveries_audited > 0
    out = CliRunner().invoke(cli, ["audit", "report", "--bootstrap", settings.bootstrap_servers,
                                   "--namespace", chain["ns"], "--dataset", "household_change",
                                   "--format", "csv"])
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[0].startswith("ts,kind,dataset") and len(lines) > 1


def _forge(settings: Settings, topic: str) -> bytes:
    """Write a forgery the way an insider would: a genuine egress record's key and headers
    (its old signature included), one field changed, re-encoded with the real schema."""
    from confluent_kafka import Producer

    from shulian.chain.wire import decode_body, encode_wire, split_wire
    from shulian.io.kafka import producer_config
    from shulian.serde import SchemaCache

    genuine = next(m for ms in read_topics(settings, [topic]).values() for m in ms)
    schemas = SchemaCache(settings.registry_url)
    wire = split_wire(genuine.value or b"")
    assert isinstance(wire, tuple)
    parsed = schemas.parsed(wire[0])
    view = decode_body(parsed, wire[1])
    assert isinstance(view, dict)
    text = next(k for k, v in view.items() if isinstance(v, str) and not k.startswith("_"))
    view[text] = "FORGED"
    value = encode_wire(wire[0], parsed, view)
    producer = Producer(producer_config(settings))
    producer.produce(topic, value, genuine.key, headers=list(genuine.headers))
    assert producer.flush(30) == 0
    return value


def test_redeliver_re_derives_and_never_resends_a_forgery(chain: dict[str, Any]) -> None:
    settings: Settings = chain["settings"]
    topology: Topology = chain["topology"]
    entries = [e for ms in read_topics(settings, [topology.audit("household_change")]).values()
               for e in audit_entries(ms) if e.record["decision"] == "deliver"]
    consumer = sorted({str(e.record["consumer"]) for e in entries})[0]
    egress_topic = topology.egress(consumer, "household_change")
    genuine = {(m.key, m.value) for ms in read_topics(settings, [egress_topic]).values()
               for m in ms}
    forged = _forge(settings, egress_topic)
    res = run_redeliver(settings, topology=topology, consumer=consumer,
                        dataset="household_change", window=Window.parse("-1h", "now"),
                        master_key=KEY.encode())
    delivered = sum(1 for e in entries if e.record["consumer"] == consumer)
    assert res.refused == 0 and res.delivered == delivered
    copies = [m for ms in read_topics(settings, [egress_topic]).values() for m in ms
              if dict(m.headers).get("shulian.replay") == b"1"]
    # re-derived: byte for byte what the chain sent, and never the forgery
    assert len(copies) == delivered and {(m.key, m.value) for m in copies} <= genuine
    assert all(m.value != forged for m in copies)
    replays = [e for ms in read_topics(settings, [res.replay_audit_topic]).values()
               for e in audit_entries(ms)]
    assert len(replays) == delivered and {e.record["kind"] for e in replays} == {"replay"}
    verify = run_verify(settings, catalogue_topics(settings, chain["ns"]), Window())
    # the forgery is the one break, and the re-derived copies verify
    assert [b.topic for b in verify.breaks] == [egress_topic] * len(verify.breaks)
    assert verify.breaks and all(
        "forged" in b.what or "without a deliver" in b.what for b in verify.breaks)
    # a second run re-derives the same records again: nothing from the first run is copied
    again = run_redeliver(settings, topology=topology, consumer=consumer,
                          dataset="household_change", window=Window.parse("-1h", "now"),
                          master_key=KEY.encode())
    assert again.delivered == delivered


def _end_offsets(settings: Settings, topics: list[str]) -> dict[tuple[str, int], int]:
    return {tp: (ms[-1].offset + 1 if ms else 0)
            for tp, ms in read_topics(settings, topics).items()}


def test_drill_leaves_production_untouched(chain: dict[str, Any]) -> None:
    settings: Settings = chain["settings"]
    catalog: Catalog = chain["catalog"]
    plan = plan_topics(catalog, chain["topology"])
    production = [t for t, _ in plan.all()]
    before = _end_offsets(settings, production)
    raw_count = sum(n for (t, _), n in before.items() if t in plan.raw)
    res = run_drill(settings, catalog=catalog, source=chain["topology"],
                    namespace=f"d{chain['ns']}", window=Window.parse("-1h", "now"),
                    speed=1000.0, timeout_s=180, log_file=chain["tmp"] / "drill.log")
    assert sum(res.produced.values()) == raw_count
    assert res.canonical > 0 and sum(res.decisions.values()) > 0
    assert sum(res.deadletters.values()) > 0  # the invalid and garbage records
    assert _end_offsets(settings, production) == before
