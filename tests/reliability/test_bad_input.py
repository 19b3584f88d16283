"""Bad input through a running chain worker (real broker, registry and ``shulian worker``
process) and through the HTTP gateway.

Each bad raw message is produced with confluent-kafka straight to a raw topic (partition 0, its
offset taken from the delivery report); each must end in the dead-letter topic exactly once,
with its original key, value and headers and the expected closed-enum reason, and nowhere else.
Valid records sent after them are harmonised and decided; the worker is still running.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import httpx
import pytest
from confluent_kafka import KafkaException

from shulian.chain.messages import InMessage
from shulian.chain.topology import plan_topics
from shulian.io.reader import read_topics
from tests.fixtures.bad_input import (
    AMR,
    PSB,
    Sent,
    Wire,
    bad_inputs,
    produce,
    wait_for,
)
from tests.fixtures.chain import ChainEnv, StartChain, chain_outcome, expected_decisions

pytestmark = [pytest.mark.integration, pytest.mark.both_engines]

MB = 1024 * 1024


def valid_inputs(w: Wire) -> list[Sent]:
    return [
        Sent("valid after the garbage", PSB, b"v1", w.value(PSB)),
        Sent("valid with a non-UTF-8 key (raw keys are opaque)", PSB, b"\xff\xfe", w.value(PSB)),
        Sent("valid with garbage headers", PSB, b"v3", w.value(PSB),
             [("\u00ffodd", b"\xff\x00"), ("none", None)]),
        Sent("valid amr", AMR, b"v4", w.value(AMR)),
    ]


def origin(m: InMessage) -> tuple[str, int]:
    h = dict(m.headers)
    return ((h.get("shulian.source.topic") or b"").decode(),
            int(h.get("shulian.source.offset") or -1))


def dead_letters(env: ChainEnv) -> list[InMessage]:
    plan = plan_topics(env.catalog, env.topology)
    return [m for ms in read_topics(env.settings, plan.deadletter).values() for m in ms]


def test_bad_raw_messages_are_dead_lettered_once_and_the_worker_keeps_running(
        start_chain: StartChain) -> None:
    env = start_chain()
    w = Wire(env)
    bad = bad_inputs(w)
    good = valid_inputs(w)
    produce(env.settings, env, bad + good)
    want = {(env.topology.raw(*s.pair), s.offset): s for s in bad}

    wait_for("every dead letter", lambda: want.keys() <= {origin(m) for m in dead_letters(env)},
             env)
    valid = Counter(s.pair for s in good)
    n_decisions = expected_decisions(env.catalog, valid)
    wait_for("every decision", lambda: chain_outcome(env).decisions >= n_decisions, env)

    dead = dead_letters(env)
    by_origin = Counter(origin(m) for m in dead)
    assert set(by_origin) == set(want), "dead letters other than the bad inputs"
    assert all(n == 1 for n in by_origin.values()), by_origin
    for m in dead:
        s = want[origin(m)]
        h = dict(m.headers)
        got = ((h.get("shulian.reason") or b"").decode(),
               (h.get("shulian.check") or b"").decode() or None)
        assert got[0] == s.reason and (s.check is None or got[1] == s.check), (s.name, got)
        assert m.value == (s.value or b""), s.name  # original bytes untouched
        assert m.key == s.key, s.name
        orig = [(k[len("orig."):], v) for k, v in m.headers if k.startswith("orig.")]
        assert orig == [(k, v or b"") for k, v in s.headers], s.name
        assert m.partition == 0
    # the valid ones went through: decided once each, nothing lost or doubled
    out = chain_outcome(env)
    assert out.decisions == n_decisions and out.duplicate_decisions == 0
    assert out.duplicate_dead == 0 and not out.chain_breaks
    assert out.egress == out.deliveries
    plan = plan_topics(env.catalog, env.topology)
    canonical = [m for ms in read_topics(env.settings, plan.canonical).values() for m in ms]
    assert sorted(origin(m) for m in canonical) == sorted(
        (env.topology.raw(*s.pair), s.offset) for s in good)
    assert env.worker.running


def test_a_10mb_value(start_chain: StartChain) -> None:
    """An agency's producer with default limits cannot send 10 MB (librdkafka refuses it
    locally, MSG_SIZE_TOO_LARGE); one configured to allow it gets it onto the broker (Tansu
    accepts it), and the worker must dead-letter it like any other bad record (an address of
    10 MB fails the element's length check, original bytes kept) and go on."""
    env = start_chain()
    w = Wire(env)
    huge = Sent("10 MB address", AMR, b"big", w.value(AMR, w.record(AMR, ZS="a" * (10 * MB))),
                reason="element_check_failed", check="length")
    assert len(huge.value or b"") > 10 * MB
    with pytest.raises(KafkaException) as exc:  # librdkafka's default limit, as agencies have it
        produce(env.settings, env, [huge], **{"message.max.bytes": 1_000_000})
    assert "MSG_SIZE_TOO_LARGE" in str(exc.value)
    produce(env.settings, env, [huge], **{"message.max.bytes": 12 * MB})
    after = Sent("valid after", AMR, b"v", w.value(AMR))
    produce(env.settings, env, [after])
    topic = env.topology.raw(*AMR)
    wait_for("the 10 MB dead letter", lambda: (topic, huge.offset) in
             {origin(m) for m in dead_letters(env)}, env, timeout_s=120)
    [dl] = [m for m in dead_letters(env) if origin(m) == (topic, huge.offset)]
    assert dict(dl.headers)["shulian.reason"] == b"element_check_failed"
    assert dl.value == huge.value
    n = expected_decisions(env.catalog, Counter({AMR: 1}))
    wait_for("the valid record after it", lambda: chain_outcome(env).decisions >= n, env)
    assert env.worker.running


# --- the gateway ---------------------------------------------------------------------------


def test_gateway_bad_bodies_get_a_clear_4xx_and_it_keeps_serving(
        bootstrap: str, registry: Any, unique: str) -> None:
    """Through a real server (uvicorn): wrong types, invalid UTF-8, JSON nested 10,000 deep,
    a 10 MB body; then a valid record is accepted. Auth is in test_security.py."""
    from prometheus_client import CollectorRegistry

    from shulian.connectors.metrics import ConnectorMetrics
    from shulian.connectors.sources.config import GatewayConfig
    from shulian.connectors.sources.gateway import GatewaySource
    from shulian.connectors.sources.gateway_auth import token_sha256
    from shulian.settings import load_settings
    from tests.fixtures.sources import household, setup_dataset

    settings = load_settings(bootstrap_servers=bootstrap, registry_url=registry.url)
    agency = f"g{unique}"
    setup_dataset(settings, agency)
    config = GatewayConfig.model_validate({
        "name": f"gw-{unique}", "port": 0, "max_body_bytes": MB, "max_records": 100,
        "agencies": {agency: {"token_sha256": token_sha256("tok"),
                              "datasets": ["household_change"]}}})
    source = GatewaySource(config, settings=settings,
                           metrics=ConnectorMetrics.create(CollectorRegistry()))
    source.setup()
    source.start()
    url = f"{source.url}/v1/agencies/{agency}/datasets/household_change/records"
    auth = {"Authorization": "Bearer tok", "Content-Type": "application/json"}
    wrong_types = [{**household(1), "XM": 12.5}, {**household(2), "LSH": ["a"]},
                   {**household(3), "DJSJ": {"x": 1}}, "not an object", 7]
    cases: dict[str, tuple[bytes, int, str | None]] = {
        "wrong types": (json.dumps(wrong_types).encode(), 422, None),
        "invalid UTF-8": (b'{"XM": "\xff\xfe"}', 400, "invalid_utf8"),
        "nested 10,000 deep": (b"[" * 10_000 + b"]" * 10_000, 400, "too_deep"),
        "nested objects 10,000 deep": (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, 400,
                                       "too_deep"),
        "10 MB body": (b'[{"XM": "' + b"a" * (10 * MB) + b'"}]', 413, "too_large"),
        "not JSON": (b"\x00\x01\x02", 400, "invalid_json"),
        "empty array": (b"[]", 422, "empty"),
        "5,000-digit integer": (b'[{"LSH": ' + b"9" * 5000 + b"}]", 400, "number_too_long"),
        "duplicate keys": (b'{"LSH": "a", "LSH": "b"}', 400, "duplicate_key"),
    }
    try:
        with httpx.Client(timeout=30) as client:
            for name, (body, status, error) in cases.items():
                r = client.post(url, content=body, headers=auth)
                assert r.status_code == status, (name, r.status_code, r.text[:300])
                if error is not None:
                    assert r.json()["error"] == error, (name, r.text[:300])
                if name == "wrong types":
                    res = r.json()["results"]
                    assert [x["status"] for x in res] == ["rejected"] * 5
                    assert "12.5" not in r.text
                assert client.get(f"{source.url}/healthz").status_code == 200
            ok = client.post(url, content=json.dumps([household(9)]), headers=auth)
            assert ok.status_code == 200, ok.text
            assert ok.json()["accepted"] == 1
    finally:
        source.stop()
    assert source.failure() is None
