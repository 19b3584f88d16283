"""``shulian broker`` as a user runs it: a subprocess on free ports, memory and durable modes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from shulian.embedded.net import free_port, wait_until
from shulian.embedded.process import pids_with_env
from shulian.io.kafka import (
    TopicSpec,
    admin_client,
    consumer_config,
    ensure_topics,
    producer_config,
)
from shulian.settings import load_settings

MARK = "SHULIAN_TEST_MARK"
SHULIAN = str(Path(sys.executable).parent / "shulian")


@contextmanager
def broker_cli(port: int, out: Path, *, data_dir: Path | None = None,
               mark: str) -> Iterator[subprocess.Popen[bytes]]:
    """``shulian broker`` running until ready; on exit: SIGTERM, wait, nothing left behind."""
    argv = [SHULIAN, "broker", "--port", str(port)]
    if data_dir is not None:
        argv += ["--data-dir", str(data_dir)]
    with out.open("ab") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT,
                                env={**os.environ, MARK: mark, "SHULIAN_LOG_FORMAT": "json"})
    try:
        ready = wait_until(lambda: proc.poll() is None and b"broker ready" in out.read_bytes(),
                           timeout_s=90, interval_s=0.1)
        assert ready, f"broker not ready (exit {proc.poll()}):\n{out.read_text()[-3000:]}"
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=90)
        assert code == 0, out.read_text()[-3000:]
        assert wait_until(lambda: not pids_with_env(MARK, mark), timeout_s=10), \
            f"left behind: {pids_with_env(MARK, mark)}"


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


def consume_all(bootstrap: str, topic: str, partitions: int, want: set[bytes]) -> set[bytes]:
    """Read from the beginning until every wanted value was seen (or 60 s passed)."""
    settings = load_settings(bootstrap_servers=bootstrap)
    consumer = Consumer(consumer_config(settings, group_id=f"g.{uuid.uuid4().hex[:8]}"))
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen: set[bytes] = set()
    deadline = time.monotonic() + 60
    try:
        while not want <= seen and time.monotonic() < deadline:
            for m in consumer.consume(1000, 0.5):
                value = m.value()
                if m.error() is None and value is not None:
                    seen.add(value)
    finally:
        consumer.close()
    return seen


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
