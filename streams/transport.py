"""The chain's Faust transport: Faust's aiokafka transport with two changes, each measured.

1. The engine's fetch wait (:attr:`ChainTransport.fetch_max_wait_ms`).
2. A per-message fast path in the consumer's drain loop (:meth:`_Consumer._drain_messages`).
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from mode import Service

FETCH_MAX_WAIT_MS = 10
"""The fetch wait when none is given (Tansu's). Faust hard-codes ``fetch_max_wait_ms=1500`` for
its aiokafka consumer. Tansu answers a fetch only when that wait expires, even when data is
there (measured: 1500 -> ~380 ms per record, 100 -> ~10 ms), which made every hop of the chain
wait. At 1,000 rec/s offered, 50 -> 10 ms took the latency p99 from 398-543 to 273-297 ms (with
10 ms batch windows). Apache Kafka answers as soon as data is there, so there the wait only
bounds idle polling (``Settings.behaviour()``, docs/DEPLOY.md)."""


class _FetchThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # read by AIOKafkaConsumer.start()
        consumer._fetch_max_wait_ms = getattr(transport, "fetch_max_wait_ms", FETCH_MAX_WAIT_MS)
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    """Faust's consumer, with a cheaper hand-over of each fetched message to the streams.

    Faust's drain loop hands every message over as
    ``await self.wait_first(callback(message), self.suspend_flow.wait())``: four tasks
    (the callback, the suspend event and the service's stopped and crashed events), an
    ``asyncio.wait`` and three cancellations per message, so that a rebalance can interrupt a
    hand-over that is blocked on a full stream buffer. Profiled on the chain's worker, that
    line and its tasks took 16% of the main thread. Here the callback is awaited directly
    when it cannot block: flow is not suspended, flow control is active, and the partition's
    stream buffer is not under pressure (Faust calls :meth:`on_buffer_full` before a buffer
    can fill); otherwise Faust's race is kept. The loop is otherwise Faust's (0.15.3).
    """

    _pressured: set[TP]

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _FetchThread(self, loop=self.loop, beacon=self.beacon)

    def on_buffer_full(self, tp: TP) -> None:
        self._pressure().add(tp)
        super().on_buffer_full(tp)

    def on_buffer_drop(self, tp: TP) -> None:
        self._pressure().discard(tp)
        super().on_buffer_drop(tp)

    def _pressure(self) -> set[TP]:
        try:
            return self._pressured
        except AttributeError:
            self._pressured = set()
            return self._pressured

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - in a worker
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        set_flag, unset_flag = self.diag.set_flag, self.diag.unset_flag
        fetching = CONSUMER_FETCHING
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        suspended = self.suspend_flow.is_set
        flow_active = self.app.flow_control.is_active
        pressured = self._pressure()
        num_since_yield = 0
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(fetching)
                ait = getmany(timeout=1.0)
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > 100:
                            await asyncio.sleep(0)
                            num_since_yield = 0
                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            if gap > 1 and r_offset and acks_enabled_for(message.topic):
                                await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None and self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                            if not suspended() and flow_active() and tp not in pressured:
                                await callback(message)  # cannot block: see the class doc
                            else:
                                await self.wait_first(callback(message),
                                                      self.suspend_flow.wait())
                            set_read_offset(tp, offset)
                    unset_flag(fetching)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(fetching)


class ChainTransport(faust_aiokafka.Transport):
    """The aiokafka transport with the engine's fetch wait and the drain fast path."""

    Consumer = _Consumer
    fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS
