"""Bad input through a running chain worker (real broker, registry and ``shulian worker``
process) and through the HTTP gateway.

Each bad raw message is produced with confluent-kafka straight to a raw topic (partition 0, its
offset taken from the delivery report); each must end in the dead-letter topic exactly once,
with its original key, value and headers and the expected closed-enum reason, and nowhere else.
Valid records sent after them are harmonised and decided; the worker is still running.
"""

from __future__ import annotations

import io
import json
import random
import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from confluent_kafka import KafkaException, Producer
from fastavro import parse_schema, schemaless_writer

from shulian.catalog.elements import citizen_id_check_char, credit_code_check_char
from shulian.chain.messages import InMessage
from shulian.chain.topology import plan_topics, subject_of
from shulian.io.kafka import producer_config
from shulian.io.publish import load_raw_schemas
from shulian.io.reader import read_topics
from shulian.logic.generate import generators_for
from shulian.serde import SchemaCache
from shulian.settings import Settings
from tests.fixtures.chain import ChainEnv, StartChain, chain_outcome, expected_decisions

pytestmark = pytest.mark.integration

PSB = ("psb", "household_change")
AMR = ("amr", "business_licence")
MB = 1024 * 1024


@dataclass
class Sent:
    """One message produced to a raw topic, and what must become of it."""

    name: str
    pair: tuple[str, str]
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    reason: str | None = None  # None: a valid record, harmonised and decided
    check: str | None = None
    offset: int = -1


class Wire:
    """Builds raw wire-format values for the chain's agencies from the example catalogue."""

    def __init__(self, env: ChainEnv) -> None:
        self.env = env
        raw = load_raw_schemas(env.catalog, env.settings.schemas_dir)
        self.parsed = {pair: parse_schema(schema) for pair, schema in raw.items()}
        self.gens = generators_for(env.catalog, raw)
        cache = SchemaCache(env.settings.registry_url)
        self.ids: dict[tuple[str, str], int] = {}
        for pair in self.parsed:
            sid = cache.latest_id(subject_of(f"raw.{pair[0]}.{pair[1]}"))
            assert sid is not None
            self.ids[pair] = sid
        self.rng = random.Random(5)
        self.made: list[tuple[tuple[str, str], dict[str, Any]]] = []  # every record built

    def record(self, pair: tuple[str, str], **changes: Any) -> dict[str, Any]:
        rec = dict(self.gens[pair].generate(self.rng).raw)
        rec.update(changes)
        self.made.append((pair, rec))
        return rec

    def body(self, pair: tuple[str, str], rec: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        schemaless_writer(buf, self.parsed[pair], rec)
        return buf.getvalue()

    def value(self, pair: tuple[str, str], rec: dict[str, Any] | None = None, *,
              schema_id: int | None = None, magic: int = 0) -> bytes:
        sid = self.ids[pair] if schema_id is None else schema_id
        return struct.pack(">bI", magic, sid) + self.body(pair, rec or self.record(pair))


def citizen_id_with_birth(birth: str) -> str:
    first17 = f"440106{birth}123"
    return first17 + citizen_id_check_char(first17)


def flip_last(code: str, charset: str) -> str:
    return code[:-1] + next(c for c in charset if c != code[-1])


def bad_inputs(w: Wire) -> list[Sent]:
    valid_psb = w.record(PSB)
    sfzh = str(valid_psb["SFZH"])
    valid_amr = w.record(AMR)
    credit = str(valid_amr["TYSHXYDM"])
    bad_credit_char = credit[:5] + "I" + credit[6:17]
    truncated = w.value(PSB)[:-3]
    # invalid UTF-8 inside an Avro string: encode "QQ", then swap the bytes for 0xff 0xfe
    utf8_ok = w.value(PSB, w.record(PSB, XM="QQ"))
    assert utf8_ok.count(b"\x04QQ") == 1
    bad_utf8 = utf8_ok.replace(b"\x04QQ", b"\x04\xff\xfe")
    other_subject = w.value(AMR, schema_id=w.ids[AMR])  # amr's schema on psb's topic
    # (confluent-kafka cuts a header *name* at a NUL character: names here have none)
    garbage_headers: list[tuple[str, bytes | None]] = [
        ("\u00ff\u200b\U0001f4a9 weird", b"\xff\xfe\x00"), ("empty", None),
        ("x" * 300, b"\x80" * 50), ("empty", b"")]
    return [
        Sent("empty value", PSB, b"k1", b"", reason="empty_value"),
        Sent("no value (tombstone)", PSB, b"k2", None, reason="empty_value"),
        Sent("no magic byte (JSON)", PSB, b"k3", b'{"LSH": "L1", "XM": "x"}',
             reason="bad_wire_format", check="magic_byte"),
        Sent("wrong magic byte", PSB, b"k4", w.value(PSB, magic=1),
             reason="bad_wire_format", check="magic_byte"),
        Sent("header cut short", PSB, b"k5", b"\x00\x00\x00", reason="bad_wire_format",
             check="length"),
        Sent("truncated body", PSB, b"k6", truncated, reason="decode_error"),
        Sent("trailing bytes", PSB, b"k7", w.value(PSB) + b"\x00\x01", reason="decode_error"),
        Sent("unknown schema id", PSB, b"k8", w.value(PSB, schema_id=987_654_321),
             reason="unknown_schema_id"),
        Sent("schema id of another subject", PSB, b"k9", other_subject,
             reason="schema_not_allowed"),
        Sent("invalid UTF-8 in a string field", PSB, b"k10", bad_utf8, reason="decode_error"),
        Sent("key not UTF-8", PSB, b"\xff\xfe\x00\xc3", b"\x07garbage",
             reason="bad_wire_format", check="magic_byte"),
        Sent("headers with garbage", PSB, b"k12", b"\x00\x00", garbage_headers,
             reason="bad_wire_format", check="length"),
        # element checks, one failing each
        Sent("citizen id check digit", PSB, b"e1",
             w.value(PSB, w.record(PSB, SFZH=flip_last(sfzh, "0123456789X"))),
             reason="element_check_failed", check="check_digit"),
        Sent("citizen id length", PSB, b"e2", w.value(PSB, w.record(PSB, SFZH="4401061990")),
             reason="element_check_failed", check="length"),
        Sent("citizen id charset", PSB, b"e3",
             w.value(PSB, w.record(PSB, SFZH="44010619900101123A")),
             reason="element_check_failed", check="charset"),
        Sent("citizen id birth date", PSB, b"e4",
             w.value(PSB, w.record(PSB, SFZH=citizen_id_with_birth("19901332"))),
             reason="element_check_failed", check="birth_date"),
        Sent("person name with digits", PSB, b"e5", w.value(PSB, w.record(PSB, XM="张3")),
             reason="element_check_failed", check="charset"),
        Sent("region code not in GB/T 2260", PSB, b"e6",
             w.value(PSB, w.record(PSB, QRDQ="999999")),
             reason="element_check_failed", check="code_table"),
        Sent("code outside the mapping's code list", PSB, b"e7",
             w.value(PSB, w.record(PSB, XB="外星")), reason="mapping_error", check="code_map"),
        Sent("date in another format", PSB, b"e8",
             w.value(PSB, w.record(PSB, CSRQ="1990-01-01")),
             reason="mapping_error", check="date_format"),
        Sent("required field blank", PSB, b"e9", w.value(PSB, w.record(PSB, SFZH="  ")),
             reason="missing_field"),
        Sent("credit code check char", AMR, b"e10",
             w.value(AMR, w.record(AMR, TYSHXYDM=flip_last(credit, "0123456789ABCDEFGH"))),
             reason="element_check_failed", check="check_digit"),
        Sent("credit code charset", AMR, b"e11",
             w.value(AMR, w.record(AMR, TYSHXYDM=bad_credit_char
                                   + credit_code_check_char(credit[:17]))),
             reason="element_check_failed", check="charset"),
        Sent("phone format", AMR, b"e12", w.value(AMR, w.record(AMR, LXDH="12345")),
             reason="element_check_failed", check="format"),
        Sent("address too long", AMR, b"e13", w.value(AMR, w.record(AMR, ZS="路" * 300)),
             reason="element_check_failed", check="length"),
        Sent("money not a number", AMR, b"e14", w.value(AMR, w.record(AMR, ZCZB="一百万")),
             reason="mapping_error", check="number"),
        Sent("region name unknown", AMR, b"e15", w.value(AMR, w.record(AMR, ZSQX="火星区")),
             reason="mapping_error", check="region_name"),
    ]


def valid_inputs(w: Wire) -> list[Sent]:
    return [
        Sent("valid after the garbage", PSB, b"v1", w.value(PSB)),
        Sent("valid with a non-UTF-8 key (raw keys are opaque)", PSB, b"\xff\xfe", w.value(PSB)),
        Sent("valid with garbage headers", PSB, b"v3", w.value(PSB),
             [("\u00ffodd", b"\xff\x00"), ("none", None)]),
        Sent("valid amr", AMR, b"v4", w.value(AMR)),
    ]


def produce(settings: Settings, env: ChainEnv, items: list[Sent], **conf: Any) -> None:
    """Produce to partition 0 of each raw topic; note each offset from its delivery report."""
    p = Producer(producer_config(settings, **conf))
    errors: list[str] = []
    for s in items:
        def done(err: Any, msg: Any, s: Sent = s) -> None:
            if err is not None:
                errors.append(f"{s.name}: {err}")
            else:
                s.offset = msg.offset()
        headers: list[tuple[str, str | bytes | None]] = list(s.headers)
        p.produce(env.topology.raw(*s.pair), s.value, s.key, partition=0,
                  headers=headers or None, on_delivery=done)
        p.flush(30)  # one by one: offsets in the order of the list
    assert not errors, errors


def wait_for(what: str, check: Callable[[], bool], env: ChainEnv, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        log = env.worker.log_text()
        assert env.worker.running, "worker died:\n" + log[-4000:]
        # a Faust agent that raised is dead inside a live process: nothing more will come
        assert "Crashed reason=" not in log, "an agent crashed:\n" + log[-4000:]
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}:\n" + env.worker.log_text()[-4000:])


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

    from connectors.metrics import ConnectorMetrics
    from connectors.sources.config import GatewayConfig
    from connectors.sources.gateway import GatewaySource
    from connectors.sources.gateway_auth import token_sha256
    from shulian.settings import load_settings
    from tests.integration.test_source_gateway import household, setup_dataset

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
