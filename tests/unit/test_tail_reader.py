"""The one tail reader's end rule and error handling (shulian.io.tail.drain), on a consumer that
returns scripted confluent-kafka messages and a clock that advances one poll per fetch."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, Message

from shulian.errors import BrokerError
from shulian.io.tail import EndRule, ReadTimedOut, drain, in_message

POLL_S = 0.25  # exact in binary: the fake clock adds up without rounding


def rec(p: int, offset: int) -> Message:
    return Message(topic="t", partition=p, offset=offset, key=b"k", value=f"v{offset}".encode(),
                   timestamp=(1, 1000 + offset), headers=[("h", b"1")])


def eof(p: int) -> Message:
    return Message(topic="t", partition=p, error=KafkaError(KafkaError._PARTITION_EOF))


def failed(code: int, *, retriable: bool = False) -> Message:
    return Message(topic="t", partition=0, error=KafkaError(code, retriable=retriable))


class Scripted:
    """``consume`` returns the next scripted batch (then nothing) and advances the clock by one
    poll; ``fetches`` counts the calls."""

    def __init__(self, batches: list[list[Message]], clock: list[float]) -> None:
        self.batches = batches
        self.clock = clock
        self.fetches = 0

    def consume(self, n: int, timeout: float) -> list[Message]:
        self.fetches += 1
        self.clock[0] += timeout
        return self.batches.pop(0) if self.batches else []


@pytest.fixture
def clock() -> list[float]:
    return [100.0]


def run(batches: list[list[Message]], clock: list[float], end: EndRule, partitions: int = 2,
        **kw: object) -> tuple[list[int], Scripted]:
    consumer = Scripted(batches, clock)
    got: list[int] = []
    drain(consumer, partitions, end, lambda m: got.append(m.offset() or 0), poll_s=POLL_S,
          monotonic=lambda: clock[0], **kw)  # type: ignore[arg-type]
    return got, consumer


def test_in_message_keeps_every_field() -> None:
    m = in_message(rec(3, 7))
    assert (m.topic, m.partition, m.offset, m.key, m.value, m.timestamp_ms, list(m.headers)) == (
        "t", 3, 7, b"k", b"v7", 1007, [("h", b"1")])


def test_trusted_watermarks_end_at_every_partitions_eof(clock: list[float]) -> None:
    got, c = run([[rec(0, 0), rec(1, 0)], [eof(0)], [rec(1, 1), eof(1)]], clock,
                 EndRule(quiet_s=10.0, idle_s=10.0, at_eof=True))
    assert got == [0, 0, 1] and c.fetches == 3


def test_untrusted_end_waits_for_quiet_after_every_eof(clock: list[float]) -> None:
    # the last record in the second fetch, both ends by the third, 0.5 s quiet at the fourth
    got, c = run([[rec(0, 0)], [eof(0), rec(1, 0)], [eof(1)]], clock,
                 EndRule(quiet_s=0.5, idle_s=10.0))
    assert got == [0, 0] and c.fetches == 4


def test_new_data_after_eof_means_not_at_end(clock: list[float]) -> None:
    got, c = run([[eof(0)], [rec(0, 5), eof(1)], [], [eof(0)]], clock,
                 EndRule(quiet_s=10.0, idle_s=10.0, at_eof=True))
    assert got == [5] and c.fetches == 4


def test_a_broker_that_never_reports_the_end_is_idle_after_idle_s(clock: list[float]) -> None:
    got, c = run([[rec(0, 0)]], clock, EndRule(quiet_s=0.25, idle_s=1.0))
    assert got == [0] and c.fetches == 1 + 4


def test_a_retriable_error_is_waited_out(clock: list[float]) -> None:
    got, _ = run([[failed(KafkaError.NOT_LEADER_FOR_PARTITION, retriable=True)],
                  [rec(0, 0), eof(0), eof(1)]], clock, EndRule(at_eof=True))
    assert got == [0]


def test_any_other_error_is_broken_infrastructure(clock: list[float]) -> None:
    with pytest.raises(BrokerError, match=r"reading t\[0\]"):
        run([[failed(KafkaError.TOPIC_AUTHORIZATION_FAILED)]], clock, EndRule())


def test_a_follower_logs_errors_and_carries_on(clock: list[float]) -> None:
    got, _ = run([[failed(KafkaError.TOPIC_AUTHORIZATION_FAILED), rec(0, 3)]], clock,
                 EndRule(quiet_s=0.0, idle_s=0.0), partitions=1, error_event="x.read_error")
    assert got == [3]


def test_a_read_past_its_timeout_fails(clock: list[float]) -> None:
    endless = [[rec(0, i)] for i in range(100)]
    with pytest.raises(BrokerError, match="did not finish in 2 s"):
        run(endless, clock, EndRule(timeout_s=2.0))


def test_progress_counts_each_fetch(clock: list[float]) -> None:
    seen: list[int] = []
    run([[rec(0, 0), rec(0, 1)], [rec(1, 0), eof(0), eof(1)]], clock, EndRule(at_eof=True),
        progress=seen.append)
    assert seen == [2, 1]


def test_reading_is_not_done_while_short_of_what_is_expected(clock: list[float]) -> None:
    got: list[int] = []
    c = Scripted([[rec(0, 0), eof(0), eof(1)], [], [], [rec(1, 0), eof(1)]], clock)
    drain(c, 2, EndRule(quiet_s=0.25, idle_s=float("inf")), lambda m: got.append(0),
          poll_s=POLL_S, enough=lambda: len(got) >= 2, monotonic=lambda: clock[0])
    assert len(got) == 2 and c.fetches == 5


def test_short_at_the_timeout_is_a_read_timed_out(clock: list[float]) -> None:
    with pytest.raises(ReadTimedOut):
        run([[eof(0), eof(1)]], clock, EndRule(idle_s=float("inf"), timeout_s=1.0),
            enough=lambda: False)


def test_a_whole_topic_read_is_not_idle_while_the_broker_reports_retriable_errors(
        clock: list[float]) -> None:
    moving = failed(KafkaError.NOT_LEADER_FOR_PARTITION, retriable=True)
    script = [[rec(0, 0)], [moving], [moving], [moving], [moving], [rec(0, 1)]]
    got, c = run(list(script), clock, EndRule(quiet_s=0.25, idle_s=0.5,
                                               errors_keep_reading=True))
    assert got == [0, 1] and c.fetches == 6 + 2
    # a tail read ends on its quiet time as before
    got, c = run(list(script), clock, EndRule(quiet_s=0.25, idle_s=0.5))
    assert got == [0] and c.fetches == 3
