"""The chain's Faust transport: Faust's aiokafka transport with two changes, each measured.

1. The engine's fetch wait (:attr:`ChainTransport.fetch_max_wait_ms`).
2. A per-message fast path in the consumer's drain loop (:meth:`_Consumer._drain_messages`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from mode import Service, ServiceT

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
    can fill); otherwise Faust's race is kept.

    :meth:`_drain_messages` is faust-streaming 0.15.3's ``Consumer._drain_messages`` verbatim
    but for the hunks between ``SHULIAN CHANGE`` markers; ``tests/unit/test_transport_pin.py``
    holds both the upstream source (by hash) and that the copy differs from it only there.
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

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # pragma: no cover
        # This is the background thread started by Fetcher, used to
        # constantly read messages using Consumer.getmany.
        # It takes Fetcher as argument, because we must be able to
        # stop it using `await Fetcher.stop()`.
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set

        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        flag_consumer_fetching = CONSUMER_FETCHING
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for

        yield_every = 100
        # SHULIAN CHANGE 1/1 begin: what the direct hand-over checks
        suspended = self.suspend_flow.is_set
        flow_active = self.app.flow_control.is_active
        pressured = self._pressure()
        # SHULIAN CHANGE 1/1 end
        num_since_yield = 0
        sleep = asyncio.sleep

        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(flag_consumer_fetching)
                ait = cast(AsyncIterator, getmany(timeout=1.0))  # type: ignore[type-arg]

                # Sleeping because sometimes getmany is called in a loop
                # never releasing to the event loop
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0

                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            # We have a gap in income messages
                            if gap > 1 and r_offset:
                                acks_enabled = acks_enabled_for(message.topic)
                                if acks_enabled:
                                    await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None:  # noqa: SIM102
                                if self._n_acked >= commit_every:
                                    self._n_acked = 0
                                    await self.commit()
                            # SHULIAN CHANGE 1/1 begin: hand over directly when it cannot block
                            if not suspended() and flow_active() and tp not in pressured:
                                await callback(message)
                            else:
                                await self.wait_first(
                                    callback(message), self.suspend_flow.wait()
                                )
                            # SHULIAN CHANGE 1/1 end
                            set_read_offset(tp, offset)
                        else:
                            self.log.dev(
                                "DROPPED MESSAGE ROFF %r: k=%r v=%r",
                                offset,
                                message.key,
                                message.value,
                            )
                    unset_flag(flag_consumer_fetching)

        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                # we're already stopping so ignore
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                # we're already stopping so ignore
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(flag_consumer_fetching)

class ChainTransport(faust_aiokafka.Transport):
    """The aiokafka transport with the engine's fetch wait and the drain fast path."""

    Consumer = _Consumer
    fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS
