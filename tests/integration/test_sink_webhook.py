"""Webhook sink end to end against a real HTTP receiver that verifies signatures."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from shulian.connectors.sinks.backoff import RetryPolicy
from shulian.connectors.sinks.config import WebhookSinkConfig
from shulian.connectors.sinks.signature import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify_signature,
)
from shulian.embedded.net import wait_until
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

SECRET = "webhook-test-secret"


@dataclass
class Receiver:
    """What a consumer agency's endpoint does: verify, deduplicate by idempotency key, store."""

    fail_first: int = 0
    always: int | None = None  # answer this status to every POST
    posts: int = 0
    rejected_signatures: int = 0
    batches: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    last_request: tuple[bytes, dict[str, str]] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, body: bytes, headers: dict[str, str]) -> int:
        with self.lock:
            self.posts += 1
            if not verify_signature(body=body, timestamp=headers.get(TIMESTAMP_HEADER),
                                    signature=headers.get(SIGNATURE_HEADER), secret=SECRET):
                self.rejected_signatures += 1
                return 401
            self.last_request = (body, headers)
            if self.always is not None:
                return self.always
            if self.fail_first > 0:
                self.fail_first -= 1
                return 503
            doc = json.loads(body)
            key = headers[IDEMPOTENCY_HEADER]
            assert doc["batch_id"] == key
            self.batches.setdefault(key, doc["records"])  # a repeated key is acknowledged only
            return 200

    def delivered_keys(self) -> list[str]:
        with self.lock:
            return [r["_record_key"] for b in self.batches.values() for r in b]


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.send_response(200)
            self.end_headers()

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = state.handle(body, {k: v for k, v in self.headers.items()})
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()
    t.join(10)


def config(unique: str, topic: str, url: str, **retry: Any) -> WebhookSinkConfig:
    return WebhookSinkConfig(name=f"wh-{unique}", topics=(topic,), url=url,
                             secret_env=f"WH_SECRET_{unique}", batch_size=7,
                             retry=RetryPolicy(initial_backoff_s=0.05, max_backoff_s=0.2,
                                               **retry))


def test_failing_then_recovering_receiver_gets_every_record_once(
    receiver: tuple[Receiver, str], bootstrap: str, registry: RegistryProcess, unique: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state, url = receiver
    state.fail_first = 4
    settings = sink_settings(bootstrap, registry)
    monkeypatch.setenv(f"WH_SECRET_{unique}", SECRET)
    topic = make_topic(settings, unique)
    produce_views(settings, registry.url, topic, [view_record(i) for i in range(30)])
    with running(config(unique, topic, url, max_attempts=20), settings) as loop:
        assert wait_until(lambda: len(state.delivered_keys()) == 30, timeout_s=30)
        assert wait_until(lambda: sum(loop.committed.values()) == 30, timeout_s=10)
    keys = state.delivered_keys()
    assert sorted(keys) == [f"K{i:05d}" for i in range(30)]  # once each, by idempotency key
    assert state.posts >= len(state.batches) + 4 and state.rejected_signatures == 0
    first = next(iter(state.batches.values()))[0]
    assert first["issued_on"].startswith("2024-") and first["_kafka_topic"] == topic
    # a tampered body with the genuine headers is refused by the receiver's check
    assert state.last_request is not None
    body, headers = state.last_request
    sent = {k: v for k, v in headers.items() if k.lower() not in ("content-length", "host")}
    tampered = body.replace(b'"K000', b'"X000', 1)
    assert tampered != body
    assert httpx.post(url, content=tampered, headers=sent).status_code == 401
    assert httpx.post(url, content=body, headers=sent).status_code == 200


@pytest.mark.parametrize(("status", "reason"), [(500, "retries_exhausted"), (400, "rejected")])
def test_receiver_that_keeps_failing_sends_batches_to_the_dead_letter_topic(
    receiver: tuple[Receiver, str], bootstrap: str, registry: RegistryProcess, unique: str,
    monkeypatch: pytest.MonkeyPatch, status: int, reason: str,
) -> None:
    state, url = receiver
    state.always = status
    settings = sink_settings(bootstrap, registry)
    monkeypatch.setenv(f"WH_SECRET_{unique}", SECRET)
    topic = make_topic(settings, unique, partitions=1)
    produce_views(settings, registry.url, topic, [view_record(i) for i in range(10)])
    cfg = config(unique, topic, url, max_attempts=3)
    with running(cfg, settings) as loop:
        # offsets move on: dead-lettered batches count as handled
        assert wait_until(lambda: loop.committed.get((topic, 0)) == 10, timeout_s=30)
    attempts = 3 if status == 500 else 1
    assert state.posts == attempts * len({b for b in range(0, 10, 7)})
    source = {m.key(): m.value() for m in read_all(settings, topic, 10)}
    dead = read_all(settings, cfg.deadletter, 10)
    assert len(dead) == 10
    for m in dead:
        h = {k: v for k, v in m.headers()}
        assert h["shulian.reason"] == reason.encode()
        assert h["shulian.source.topic"] == topic.encode()
        assert h["orig.shulian.entry"] == b"tax-licence"
        assert m.value() == source[m.key()]  # the original record, untouched
