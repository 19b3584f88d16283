"""Files sink and Kafka bridge end to end on the real broker and registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shulian.catalog.keys import Keyring
from shulian.catalog.load import load_catalog
from shulian.connectors.sinks.config import FileSinkConfig, KafkaBridgeSinkConfig
from shulian.connectors.sinks.kafka_bridge import KafkaBridgeSink
from shulian.embedded.net import free_port, wait_until
from shulian.errors import SinkError
from shulian.io.kafka import TopicSpec, admin_client, ensure_topics
from shulian.logic.egress import verify_egress
from tests.fixtures.clock import EXAMPLE_NOW
from tests.fixtures.registry import RegistryProcess
from tests.fixtures.sinks import (
    make_topic,
    produce_views,
    read_all,
    running,
    sink_settings,
    view_record,
)

pytestmark = pytest.mark.integration


def jsonl_offsets(directory: Path) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for f in sorted(directory.glob("*.jsonl")):
        for line in f.read_text().splitlines():
            doc = json.loads(line)  # every visible line is complete: no half batch
            out.setdefault(doc["_kafka_partition"], []).append(doc["_kafka_offset"])
    return out


def test_files_sink_writes_rotated_complete_files(
    tmp_path: Path, bootstrap: str, registry: RegistryProcess, unique: str,
) -> None:
    settings = sink_settings(bootstrap, registry)
    topic = make_topic(settings, unique)
    produce_views(settings, registry.url, topic, [view_record(i) for i in range(60)])
    cfg = FileSinkConfig(name=f"files-{unique}", topics=(topic,), directory=str(tmp_path),
                         batch_size=8, rotate_bytes=2000)
    with running(cfg, settings) as loop:
        assert wait_until(lambda: sum(loop.committed.values()) == 60, timeout_s=30)
    by_partition = jsonl_offsets(tmp_path)
    assert sum(len(v) for v in by_partition.values()) == 60
    for offsets in by_partition.values():
        assert offsets == list(range(len(offsets)))  # in order, no gap, no duplicate
    assert len(list(tmp_path.glob("*.jsonl"))) > 2  # rotated by size
    assert not list(tmp_path.glob(".*"))  # no temp file left behind


def test_kafka_bridge_forwards_keys_headers_and_raw_bytes(
    bootstrap: str, registry: RegistryProcess, unique: str,
) -> None:
    settings = sink_settings(bootstrap, registry)
    topic = make_topic(settings, unique, partitions=1)
    target = f"agency.c{unique}.business_licence"
    ensure_topics(admin_client(settings), [TopicSpec(target, 1)])
    produce_views(settings, registry.url, topic, [view_record(i) for i in range(20)])
    cfg = KafkaBridgeSinkConfig(name=f"bridge-{unique}", topics=(topic,),
                                target_bootstrap_servers=bootstrap,
                                topic_template="agency.{consumer}.{dataset}")
    with running(cfg, settings) as loop:
        assert wait_until(lambda: loop.committed.get((topic, 0)) == 20, timeout_s=30)
    source = read_all(settings, topic, 20)
    forwarded = read_all(settings, target, 20)
    assert [(m.key(), m.value(), m.headers()) for m in forwarded] == [
        (m.key(), m.value(), m.headers()) for m in source]
    assert forwarded[0].headers()[:2] == [("shulian.entry", b"tax-licence"),
                                          ("shulian.list.version", b"1")]
    # the chain's signature travels with the record: the agency can verify it on its side
    assert [k for k, _ in forwarded[0].headers()[2:]] == [
        "shulian.digest", "shulian.sig.scheme", "shulian.sig.key", "shulian.sig.time",
        "shulian.sig", "shulian.sig.proof"]
    keys = Keyring(load_catalog(settings.catalog_dir, schemas_dir=settings.schemas_dir).keys)
    for m in forwarded:  # with the original egress topic's name, as docs/SECURITY.md says
        assert verify_egress(topic=topic, key=m.key(), value=m.value(), headers=m.headers(),
                             keys=keys, at=EXAMPLE_NOW, now=None) is None


def test_kafka_bridge_unreachable_target_is_a_clear_error_at_start(unique: str) -> None:
    cfg = KafkaBridgeSinkConfig(name=f"bridge-{unique}", topics=("t",),
                                target_bootstrap_servers=f"127.0.0.1:{free_port()}",
                                timeout_s=2)
    with pytest.raises(SinkError, match="unreachable"):
        KafkaBridgeSink(cfg).setup()
