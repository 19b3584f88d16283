"""streams/transport.py replaces faust-streaming's ``Consumer._drain_messages`` with a copy that
differs in one line (a direct hand-over when it cannot block). A faust-streaming release that
changes that loop must be read again before the copy is trusted: this test names the loop's
source it was made from."""

from __future__ import annotations

import hashlib
import inspect

from faust.transport.consumer import Consumer

from streams.transport import ChainTransport

DRAIN_LOOP_SHA256 = "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417"
"""sha256 of ``inspect.getsource(Consumer._drain_messages)`` in faust-streaming 0.15.3."""


def test_faust_drain_loop_is_the_one_the_fast_path_copies() -> None:
    source = inspect.getsource(Consumer._drain_messages)
    assert hashlib.sha256(source.encode()).hexdigest() == DRAIN_LOOP_SHA256, (
        "faust-streaming's Consumer._drain_messages changed: compare it with "
        "streams/transport.py _Consumer._drain_messages and update both the copy and this hash")


def test_the_chain_transport_uses_the_fast_path() -> None:
    consumer = ChainTransport.Consumer
    assert consumer._drain_messages is not Consumer._drain_messages
    assert issubclass(consumer, Consumer)
