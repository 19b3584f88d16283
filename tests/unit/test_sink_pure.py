"""Pure sink parts: JSON conversion, batch ids, backoff, units, dead-letter headers, configs."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import random

import pytest
from pydantic import ValidationError

from shulian.connectors.sinks.backoff import RetryPolicy
from shulian.connectors.sinks.config import PostgresSinkConfig, WebhookSinkConfig
from shulian.connectors.sinks.failures import SinkFailure, deadletter_headers
from shulian.connectors.sinks.jsonable import batch_body, batch_id, to_jsonable
from shulian.connectors.sinks.loop import split_units
from shulian.connectors.sinks.records import SinkRecord, record_key
from shulian.connectors.sinks.webhook import webhook_records
from shulian.errors import ConfigError


def rec(topic: str, partition: int, offset: int, **kw: object) -> SinkRecord:
    return SinkRecord(topic=topic, partition=partition, offset=offset, key=b"k", raw_value=b"v",
                      **kw)  # type: ignore[arg-type]


def test_to_jsonable_dates_decimals_bytes_nested() -> None:
    value = {"d": dt.date(2024, 2, 29),
             "t": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
             "n": decimal.Decimal("1.50"), "b": b"\x00\xff", "l": [dt.date(2000, 1, 1), None]}
    out = to_jsonable(value)
    assert out == {"d": "2024-02-29", "t": "2024-01-02T03:04:05+00:00", "n": "1.50",
                   "b": "AP8=", "l": ["2000-01-01", None]}
    json.dumps(out)


def test_to_jsonable_refuses_unknown_objects() -> None:
    with pytest.raises(TypeError):
        to_jsonable(object())


def test_batch_id_is_deterministic_and_body_carries_it() -> None:
    a = batch_id(connector="c", topic="egress.tax.x", partition=2, first=10, last=19)
    assert a == batch_id(connector="c", topic="egress.tax.x", partition=2, first=10, last=19)
    assert a != batch_id(connector="c", topic="egress.tax.x", partition=2, first=10, last=20)
    body = json.loads(batch_body(records=[{"d": dt.date(2020, 1, 1)}], batch=a))
    assert body == {"records": [{"d": "2020-01-01"}], "batch_id": a}


def test_backoff_grows_is_capped_and_jittered() -> None:
    p = RetryPolicy(initial_backoff_s=1.0, max_backoff_s=5.0, multiplier=2.0, jitter=0.5)
    rng = random.Random(7)
    delays = [p.delay(n, rng=rng) for n in range(1, 8)]
    assert 0.5 <= delays[0] <= 1.0
    assert all(2.5 <= d <= 5.0 for d in delays[3:])  # capped at 5, jitter removes at most half
    no_jitter = RetryPolicy(initial_backoff_s=1.0, max_backoff_s=5.0, jitter=0.0)
    assert [no_jitter.delay(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]


def test_exhausted_only_with_a_limit() -> None:
    assert not RetryPolicy().exhausted(10_000)
    p = RetryPolicy(max_attempts=3)
    assert not p.exhausted(2) and p.exhausted(3)


def test_split_units_groups_by_partition_in_order_with_poison() -> None:
    items: list[SinkRecord | tuple[SinkRecord, SinkFailure, str]] = [
        rec("t", 0, 5), rec("t", 1, 7), (rec("t", 0, 6), SinkFailure.DECODE_ERROR, "x"),
             rec("t", 0, 8), rec("u", 0, 1)]
    units = split_units(items)
    assert [(u.topic, u.partition) for u in units] == [("t", 0), ("t", 1), ("u", 0)]
    t0 = units[0]
    assert [r.offset for r in t0.records] == [5, 8] and len(t0.poison) == 1
    assert (t0.first, t0.last) == (5, 8)


def test_record_key_prefers_the_view_field() -> None:
    r = rec("t", 0, 1).decoded(schema_id=1, value={"_record_key": "K1"}, schema=None)
    assert record_key(r) == "K1"
    assert record_key(rec("t", 0, 1)) == "k"


def test_webhook_records_flatten_view_and_coordinates() -> None:
    r = rec("t", 2, 9).decoded(schema_id=1, value={"a": 1, "_record_key": "K"}, schema=None)
    tomb = SinkRecord(topic="t", partition=2, offset=10, key=b"K2", raw_value=None)
    assert webhook_records([r, tomb]) == [
        {"a": 1, "_record_key": "K", "_kafka_topic": "t", "_kafka_partition": 2,
         "_kafka_offset": 9},
        {"_record_key": "K2", "_deleted": True, "_kafka_topic": "t", "_kafka_partition": 2,
         "_kafka_offset": 10},
    ]


def test_deadletter_headers_keep_origin() -> None:
    r = SinkRecord(topic="egress.a.b", partition=1, offset=4, key=b"k", raw_value=b"v",
                   headers=[("shulian.entry", b"e1")], timestamp_ms=123)
    h = dict(deadletter_headers(r, connector="c", reason=SinkFailure.RETRIES_EXHAUSTED,
                                detail="5 attempts", first=3, last=4))
    assert h["shulian.reason"] == b"retries_exhausted"
    assert h["shulian.source.topic"] == b"egress.a.b"
    assert h["shulian.source.offset"] == b"4"
    assert h["shulian.sink.batch"] == b"3-4"
    assert h["orig.shulian.entry"] == b"e1"


def test_configs_defaults_and_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    c = PostgresSinkConfig(name="tax-pg", topics=("egress.tax.business_licence",),
                           dsn_env="TAX_PG_DSN")
    assert c.consumer_group == "shulian-sink-tax-pg"
    assert c.deadletter == "deadletter._sink.tax-pg"
    with pytest.raises(ConfigError, match="TAX_PG_DSN"):
        c.dsn()
    monkeypatch.setenv("TAX_PG_DSN", "postgresql://x")
    assert c.dsn().get_secret_value() == "postgresql://x"
    w = WebhookSinkConfig(name="w", topics=("t",), url="http://h/x", secret_env="S")
    assert w.retry.max_attempts == 5
    with pytest.raises(ValidationError):
        WebhookSinkConfig(name="w", topics=("t",), url="ftp://h", secret_env="S")
    with pytest.raises(ValidationError):
        PostgresSinkConfig(name="p", topics=(), dsn_env="X")
    with pytest.raises(ValidationError):
        PostgresSinkConfig(name="p", topics=("t",), dsn_env="X", password="inline")  # type: ignore[call-arg]
