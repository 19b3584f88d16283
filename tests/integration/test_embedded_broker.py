"""``shulian broker`` as a user runs it: a subprocess on free ports, memory and durable modes."""

from __future__ import annotations

import re
from pathlib import Path

from confluent_kafka import Producer

from shulian.embedded.net import free_port
from shulian.embedded.process import pids_with_env
from shulian.io.kafka import (
    TopicSpec,
    admin_client,
    ensure_topics,
    producer_config,
)
from shulian.settings import load_settings
from tests.fixtures.embedded_broker import MARK, broker_cli, consume_all


def produce(bootstrap: str, topic: str, n: int, *, start: int = 0) -> set[bytes]:
    """Produce ``n`` records with acks=all; the values the broker acknowledged."""
    producer = Producer(producer_config(load_settings(bootstrap_servers=bootstrap)))
    acked: set[bytes] = set()

    def on_delivery(err: object, msg: object) -> None:
        if err is None:
            acked.add(msg.value())  # type: ignore[attr-defined]

    for i in range(start, start + n):
        producer.produce(topic, key=str(i).encode(), value=f"v{i}".encode(),
                         on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(60) == 0
    return acked


def test_broker_cli_memory_roundtrip_and_clean_stop(tmp_path: Path, unique: str) -> None:
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    topic = f"t.cli.{unique}"
    with broker_cli(port, tmp_path / "broker.out", mark=unique) as proc:
        assert pids_with_env(MARK, unique), "the broker's processes carry the marker"
        ensure_topics(admin_client(load_settings(bootstrap_servers=bootstrap)),
                      [TopicSpec(topic, 2)])
        acked = produce(bootstrap, topic, 200)
        assert len(acked) == 200
        assert consume_all(bootstrap, topic, 2, acked) == acked
        assert proc.poll() is None
        found = re.search(r"logs in (\S+)", (tmp_path / "broker.out").read_text())
        assert found is not None
        logs = Path(found[1])
        assert logs.is_dir() and logs.stat().st_mode & 0o777 == 0o700
        assert (logs / "tansu.log").stat().st_mode & 0o777 == 0o600
    # a memory broker's temporary log folder goes with it (no /tmp/shulian-broker-* left)
    assert not logs.exists()


def test_broker_cli_durable_survives_restart(tmp_path: Path, unique: str) -> None:
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    data = tmp_path / "data"
    topic = f"t.durable.{unique}"
    with broker_cli(port, tmp_path / "first.out", data_dir=data, mark=unique):
        ensure_topics(admin_client(load_settings(bootstrap_servers=bootstrap)),
                      [TopicSpec(topic, 3)])
        acked = produce(bootstrap, topic, 5000)
    assert len(acked) == 5000
    assert (data / "ports.json").exists()
    with broker_cli(port, tmp_path / "second.out", data_dir=data, mark=unique):
        seen = consume_all(bootstrap, topic, 3, acked)
        assert acked <= seen, f"{len(acked - seen)} acknowledged records lost"
        # still writable after the restart
        more = produce(bootstrap, topic, 100, start=5000)
        assert len(more) == 100
