"""Durable mode: restart the embedded broker (``shulian broker --data-dir``) mid-stream.

A broker of the test's own (never the session broker) on a data directory; a producer with
acks=all keeps sending while the broker is stopped (SIGTERM) and started again on the same
directory and port. Afterwards every acknowledged record is read back (by consuming, never by
trusting watermarks), and every record that was not acknowledged was reported to the producer
through its delivery callback: none vanished silently.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from shulian.embedded.net import free_port, wait_until
from shulian.io.kafka import TopicSpec, admin_client, ensure_topics, producer_config
from shulian.settings import load_settings
from tests.fixtures.embedded_broker import broker_cli, consume_all

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 3


@dataclass
class StreamProducer:
    """Produces ``v0, v1, ...`` (acks=all) from a thread until stopped; every delivery report
    lands in ``acked`` or ``failed``."""

    bootstrap: str
    topic: str
    message_timeout_ms: int = 5000
    sent: int = 0
    acked: set[bytes] = field(default_factory=set)
    failed: dict[bytes, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _producer: Producer | None = None

    def _on_delivery(self, err: Any, msg: Any) -> None:
        with self.lock:
            if err is None:
                self.acked.add(msg.value())
            else:
                self.failed[msg.value()] = str(err)

    def _run(self) -> None:
        assert self._producer is not None
        while not self._stop.is_set():
            value = f"v{self.sent}".encode()
            try:
                self._producer.produce(self.topic, key=value, value=value,
                                       on_delivery=self._on_delivery)
                self.sent += 1
            except BufferError:
                pass
            self._producer.poll(0.005)  # ~200 records/s, delivery reports served

    def start(self) -> None:
        settings = load_settings(bootstrap_servers=self.bootstrap)
        self._producer = Producer(producer_config(
            settings, **{"message.timeout.ms": self.message_timeout_ms}))
        self._thread = threading.Thread(target=self._run, name="stream-producer", daemon=True)
        self._thread.start()

    def stop(self) -> int:
        """Stop producing and wait for every outstanding delivery report; how many are left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        assert self._producer is not None
        return int(self._producer.flush(self.message_timeout_ms / 1000 + 30))

    def counts(self) -> tuple[int, int]:
        with self.lock:
            return len(self.acked), len(self.failed)


def test_durable_broker_restart_mid_stream_keeps_every_acknowledged_record(
    tmp_path: Path, unique: str,
) -> None:
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    data = tmp_path / "data"
    topic = f"t.durable.stream.{unique}"
    stream = StreamProducer(bootstrap, topic)
    try:
        with broker_cli(port, tmp_path / "first.out", data_dir=data, mark=unique):
            ensure_topics(admin_client(load_settings(bootstrap_servers=bootstrap)),
                          [TopicSpec(topic, PARTITIONS)])
            stream.start()
            assert wait_until(lambda: stream.counts()[0] >= 500, timeout_s=60)
            stopped_at = time.monotonic()
        # the broker is down now (SIGTERM, exit 0); the producer keeps sending
        acked_before = stream.counts()[0]
        with broker_cli(port, tmp_path / "second.out", data_dir=data, mark=unique):
            down_s = time.monotonic() - stopped_at
            assert wait_until(lambda: stream.counts()[0] >= acked_before + 500, timeout_s=90)
            left = stream.stop()
            acked, failed = set(stream.acked), dict(stream.failed)
            seen = consume_all(bootstrap, topic, PARTITIONS, acked)
    finally:
        stream._stop.set()
    assert left == 0, "delivery reports outstanding"
    sent = {f"v{i}".encode() for i in range(stream.sent)}
    assert acked | set(failed) == sent and not acked & set(failed)  # every record reported
    lost = acked - seen
    assert not lost, f"{len(lost)} acknowledged records lost"
    failed_but_stored = len(set(failed) & seen)
    print(f"\ndurable broker restart: broker down {down_s:.1f} s; {len(sent)} sent, "
          f"{len(acked)} acknowledged (all read back), {len(failed)} reported failed to the "
          f"producer ({failed_but_stored} of those were stored anyway); errors: "
          f"{sorted(set(failed.values()))[:3]}")
