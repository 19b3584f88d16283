"""A partition's watermarks are read through a broker that is briefly away (a leader moving,
nodes restarting): retriable errors are waited out, anything else is broken infrastructure."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from shulian.errors import BrokerError
from shulian.io import kafka as io_kafka


class FlakyConsumer:
    def __init__(self, errors: list[int]) -> None:
        self.errors = errors
        self.calls = 0

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float) -> tuple[int, int]:
        self.calls += 1
        if self.errors:
            raise KafkaException(KafkaError(self.errors.pop(0)))
        return (3, 17)


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(io_kafka.time, "sleep", lambda s: None)


def test_a_moving_leader_is_waited_out() -> None:
    c = FlakyConsumer([KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE])
    assert io_kafka.watermarks(c, "t", 0) == (3, 17)
    assert c.calls == 3


def test_other_errors_are_broken_infrastructure() -> None:
    c = FlakyConsumer([KafkaError.TOPIC_AUTHORIZATION_FAILED])
    with pytest.raises(BrokerError, match="watermarks of t\\[0\\]"):
        io_kafka.watermarks(c, "t", 0)
    assert c.calls == 1


def test_patience_has_an_end() -> None:
    c = FlakyConsumer([KafkaError.NOT_LEADER_FOR_PARTITION] * 1000)
    with pytest.raises(BrokerError):
        io_kafka.watermarks(c, "t", 0, patience_s=0.0)
