"""The one producer wrapper (shulian.io.sender.Sender) with a real librdkafka client and no
broker listening: a full local queue is waited out, undelivered messages are collected and
``settle`` names them; nothing is dropped silently."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException, Message

from shulian.embedded.net import free_port
from shulian.io.sender import DeliveryFailed, Sender
from shulian.settings import Settings, load_settings

TIMEOUT_MS = 300  # each message fails this long after it was queued


@pytest.fixture
def nowhere() -> Settings:
    return load_settings(bootstrap_servers=f"127.0.0.1:{free_port()}")


def sender(settings: Settings, **conf: object) -> Sender:
    return Sender(settings, conf={"message.timeout.ms": TIMEOUT_MS, "log_level": 0,
                                  "enable.idempotence": False, **conf})


def test_a_full_queue_is_waited_out_and_every_failure_is_named(nowhere: Settings) -> None:
    s = sender(nowhere, **{"queue.buffering.max.messages": 1})
    s.send("t", b"first")
    s.send("t", b"second")  # BufferError until the first one's report was served
    assert [e.code() for e in s.failures] == [KafkaError._MSG_TIMED_OUT]
    with pytest.raises(DeliveryFailed, match=r"things not acknowledged: .*timed out") as caught:
        s.settle(10, what="things")
    assert len(caught.value.errors) == 2 and caught.value.left == 0
    assert s.failures == []  # settled: a next batch starts clean


def test_what_is_still_outstanding_at_the_timeout_is_a_failure(nowhere: Settings) -> None:
    s = sender(nowhere, **{"message.timeout.ms": 60_000})
    s.send("t", b"v")
    with pytest.raises(DeliveryFailed, match=r"1 unacknowledged after 0\.2 s") as caught:
        s.settle(0.2, what="things")
    assert caught.value.errors == [] and caught.value.left == 1


def test_a_message_with_its_own_callback_reports_there(nowhere: Settings) -> None:
    s = sender(nowhere)
    mine: list[KafkaError | None] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        mine.append(err)

    s.send("t", b"v", b"k", partition=0, headers=[("h", b"1")], on_delivery=on_delivery)
    assert s.flush(10) == 0
    assert [e.code() for e in mine if e is not None] == [KafkaError._MSG_TIMED_OUT]
    assert s.failures == []


def test_failures_only_calls_back_on_failure(nowhere: Settings) -> None:
    seen: list[KafkaError | None] = []
    s = Sender(nowhere, on_failure=lambda err, _m: seen.append(err), failures_only=True,
               conf={"message.timeout.ms": TIMEOUT_MS, "log_level": 0,
                     "enable.idempotence": False})
    s.send("t", b"v")
    assert s.flush(10) == 0
    assert [e.code() for e in seen if e is not None] == [KafkaError._MSG_TIMED_OUT]


def test_a_message_refused_outright_raises(nowhere: Settings) -> None:
    s = sender(nowhere, **{"message.max.bytes": 1000})
    with pytest.raises(KafkaException):
        s.send("t", b"x" * 5000)


def test_with_config_takes_a_whole_configuration(nowhere: Settings) -> None:
    s = Sender.with_config({"bootstrap.servers": nowhere.bootstrap_servers,
                            "message.timeout.ms": TIMEOUT_MS, "log_level": 0})
    s.send("t", b"v")
    with pytest.raises(DeliveryFailed):
        s.settle(10, what="bridged")
