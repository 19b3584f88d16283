"""The chain end to end on the real broker and registry, with a real worker process.

Agencies publish with confluent-kafka's AvroSerializer; the test reads the egress, dead-letter
and audit topics and checks every record against what the list allows; a list change
mid-stream takes effect and is audited.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from shulian.catalog.approval import supersedes
from shulian.catalog.keys import Keyring
from shulian.catalog.models import Catalog, ShareType, SharingList
from shulian.chain.topology import Topology, plan_topics
from shulian.io.kafka import consumer_config, producer_config
from shulian.io.publish import AgencyPublisher, PublishTally
from shulian.logic.audit import verify_chain
from shulian.logic.signed import check_signed
from shulian.settings import REPO_ROOT, Settings
from tests.fixtures.chain import StartChain
from tests.fixtures.signing import approve

pytestmark = [pytest.mark.integration, pytest.mark.both_engines]
HEX64 = 64


def read_all(settings: Settings, topics: list[str], *, expect: int | None = None,
             quiet_s: float = 3.0, timeout_s: float = 120.0) -> list[Any]:
    """Every message of the topics, read until ``expect`` arrived (or quiet after that)."""
    consumer = Consumer(consumer_config(settings, group_id="t-reader",
                                        **{"enable.partition.eof": False}))
    md = consumer.list_topics(timeout=10)
    consumer.assign([TopicPartition(t, p, 0) for t in topics for p in md.topics[t].partitions])
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    quiet_until = time.monotonic() + quiet_s
    while time.monotonic() < deadline:
        msgs = consumer.consume(1000, 0.3)
        for m in msgs:
            if m.error() is None:
                out.append(m)
            elif m.error().code() != KafkaError._PARTITION_EOF:
                raise AssertionError(m.error())
        if msgs:
            quiet_until = time.monotonic() + quiet_s
        if (expect is None or len(out) >= expect) and time.monotonic() > quiet_until:
            break
    consumer.close()
    return out


@pytest.fixture
def chain(start_chain: StartChain) -> dict[str, Any]:
    """init + one real worker process on a namespace of its own."""
    env = start_chain()
    return {"settings": env.settings, "catalog": env.catalog, "topology": env.topology,
            "proc": env.worker.proc, "log": env.worker.log_path, "env": env.env}


def _deserializer(settings: Settings) -> AvroDeserializer:
    return AvroDeserializer(SchemaRegistryClient({"url": settings.registry_url}))


def _allowed(catalog: Catalog, version: int) -> dict[str, Any]:
    return {e.id: e for e in catalog.sharing_lists[version].entries}


def test_chain_end_to_end(chain: dict[str, Any]) -> None:
    settings: Settings = chain["settings"]
    catalog: Catalog = chain["catalog"]
    topology: Topology = chain["topology"]
    publisher = AgencyPublisher(settings, catalog, topology)
    rng = random.Random(7)
    tally = PublishTally()
    for pair in publisher.pairs:
        t = publisher.publish(pair, 40, rng=rng, invalid_rate=0.1, garbage=5)
        tally.valid.update(t.valid)
        tally.invalid.update(t.invalid)
        tally.garbage.update(t.garbage)
    publisher.flush()
    plan = plan_topics(catalog, topology)

    # dead letters: every invalid record exactly once (by origin), original bytes kept
    dead = read_all(settings, list(plan.deadletter),
                    expect=sum(tally.invalid.values()) + sum(tally.garbage.values()))
    origins = Counter(
        tuple(dict(m.headers())[h] for h in ("shulian.source.topic", "shulian.source.partition",
                                             "shulian.source.offset"))
        for m in dead)
    assert len(origins) == sum(tally.invalid.values()) + sum(tally.garbage.values()), \
        _worker_log(chain)
    reasons = Counter(dict(m.headers())["shulian.reason"].decode() for m in dead)
    assert reasons["element_check_failed"] == sum(tally.invalid.values())
    assert reasons["empty_value"] >= 1 and reasons["bad_wire_format"] >= 1
    assert reasons["unknown_schema_id"] >= 1

    # audit: one decision per canonical record per entry of its (dataset, provider)
    sl = catalog.current_list
    expected_decisions = sum(
        n * sum(1 for e in sl.entries if (e.provider, e.dataset) == pair)
        for pair, n in tally.valid.items())
    audit = read_all(settings, list(plan.audit), expect=expected_decisions)
    records = [r for r in (json.loads(m.value()) for m in audit)
               if r.get("kind") != "seal"]  # each batch's signed seal decides nothing
    assert len({(r["source"]["topic"], r["source"]["partition"], r["source"]["offset"],
                 r["entry_id"]) for r in records}) == \
        expected_decisions, _worker_log(chain)
    by_partition: dict[tuple[str, int], list[tuple[int, bytes]]] = {}
    for m in audit:
        by_partition.setdefault((m.topic(), m.partition()), []).append((m.offset(), m.value()))
    for items in by_partition.values():
        assert verify_chain(sorted(items)) == []

    # egress: only consumers with a delivering entry, only allowed fields, masks applied
    entries = _allowed(catalog, sl.version)
    egress = read_all(settings, list(plan.egress),
                      expect=sum(1 for r in records if r["decision"] == "deliver"))
    deser = _deserializer(settings)
    assert egress, "nothing delivered"
    for m in egress:
        consumer, dataset = topology.parse_egress(m.topic()) or ("", "")
        view = deser(m.value(), SerializationContext(m.topic(), MessageField.VALUE))
        entry = entries[view["_entry_id"]]
        assert entry.consumer == consumer and entry.dataset == dataset
        assert entry.share_type is not ShareType.NONE
        data_fields = {k for k in view if not k.startswith("_")}
        assert data_fields <= set(entry.fields)
        for fname, mask in entry.masks.items():
            if mask.type == "drop":
                assert fname not in view
            elif mask.type == "hmac" and view.get(fname) is not None:
                assert len(view[fname]) == HEX64
    delivered = Counter(r["consumer"] for r in records if r["decision"] == "deliver")
    assert sum(delivered.values()) == len(egress)  # no crash here: exactly once
    withheld = [r for r in records if r["decision"] == "withhold"]
    assert any(r["reason"] == "share_type_none" for r in withheld)


def test_list_change_mid_stream_is_applied_and_audited(chain: dict[str, Any],
                                                       tmp_path: Path) -> None:
    settings: Settings = chain["settings"]
    catalog: Catalog = chain["catalog"]
    topology: Topology = chain["topology"]
    publisher = AgencyPublisher(settings, catalog, topology)
    rng = random.Random(11)
    pair = publisher.pairs[0]
    publisher.publish(pair, 10, rng=rng)
    publisher.flush()
    plan = plan_topics(catalog, topology)
    audit_topic = topology.audit(pair[1])
    n_entries = sum(1 for e in catalog.current_list.entries if (e.provider, e.dataset) == pair)
    first = read_all(settings, [audit_topic], expect=10 * n_entries)
    assert {json.loads(m.value()).get("list_version") for m in first} - {None} == {
        catalog.current_list.version}  # (seals carry no list version)

    # an insider with write access to the control topic: a copy of the list in force with
    # every entry of this pair opened up (none/conditional -> unconditional) as the next
    # version, unsigned; and a squatted version 1000. Both are refused (and audited).
    current = yaml.safe_load((REPO_ROOT / "catalog" / "sharing" /
                              f"list.v{catalog.current_list.version}.yaml").read_text("utf-8"))
    new_version = catalog.current_list.version + 1
    current["version"] = new_version
    current.pop("signatures")
    current["supersedes"] = supersedes(catalog.current_list).model_dump()
    forged = json.loads(json.dumps(current))
    for e in forged["entries"]:
        if (e["provider"], e["dataset"]) == pair:
            e["share_type"] = "unconditional"
    bad = Producer(producer_config(settings))
    bad.produce(topology.control, yaml.safe_dump(forged, allow_unicode=True).encode())
    bad.produce(topology.control, yaml.safe_dump({**forged, "version": 1000},
                                                 allow_unicode=True).encode())
    # a malformed version is refused too; the last good one stays in force
    bad.produce(topology.control, b"version: 999\nentries: [{id: broken}]\n")
    bad.flush(10)
    # the genuine next version (every entry for this pair: share type none), approved and
    # signed by every party, published through the CLI
    for e in current["entries"]:
        if (e["provider"], e["dataset"]) == pair:
            e["share_type"] = "none"
            e.pop("approval", None)
    genuine = approve(SharingList.model_validate(current), catalog)
    path = tmp_path / f"list.v{new_version}.yaml"
    path.write_text(yaml.safe_dump(genuine.model_dump(mode="json", exclude_none=True),
                                   allow_unicode=True), encoding="utf-8")
    subprocess.run([sys.executable, "-m", "shulian.cli.main", "sharing", "publish", str(path),
                    "--namespace", topology.namespace or ""], env=chain["env"], check=True)

    deadline = time.monotonic() + 60
    applied = False
    while time.monotonic() < deadline and not applied:
        applied = "sharing_list.applied" in chain["log"].read_text("utf-8", "replace")
        time.sleep(0.2)
    assert applied, _worker_log(chain)
    publisher.publish(pair, 10, rng=rng)
    publisher.flush()
    after = read_all(settings, [audit_topic], expect=20 * n_entries)
    newer = [json.loads(m.value()) for m in after if json.loads(m.value()).get("list_version") ==
             new_version]
    assert len(newer) == 10 * n_entries, _worker_log(chain)
    assert all(r["decision"] == "withhold" and r["reason"] == "share_type_none" for r in newer)
    assert "sharing_list.refused" in chain["log"].read_text("utf-8", "replace")
    # the worker's signed record of each refusal and of the version it applied
    records = [json.loads(m.value()) for m in read_all(settings, [topology.lists_audit],
                                                       expect=4)]
    keys = Keyring(catalog.keys)
    assert all(check_signed(r, keys, at=datetime.fromisoformat(r["ts"].replace("Z", "+00:00")))
               is None for r in records)
    refused = [r for r in records if r["kind"] == "list_refused"]
    assert any(r["version"] == new_version and "no version signature by the governance "
               "office" in r["reasons"] for r in refused), records
    assert any(r["version"] == 1000 for r in refused)
    assert [r["version"] for r in records if r["kind"] == "list_applied"] == [new_version]
    del plan


def _worker_log(chain: dict[str, Any]) -> str:
    text: str = chain["log"].read_text("utf-8", "replace")
    return "worker log tail:\n" + text[-4000:]
