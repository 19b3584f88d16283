"""The gateway's HTTP server: uvicorn (h11) with a deadline for each request's headers.

uvicorn times out an idle keep-alive connection, but not a client that sends its request
headers one byte at a time (any byte re-arms nothing: the keep-alive timer is cancelled by the
first byte), so 300 such sockets would hold 300 connections open for as long as they like.
:class:`GuardedH11Protocol` gives every request ``header_timeout_s`` from the moment the
connection opens (or the previous response completed) until its headers are complete, then
closes the connection with one log line. The body has its own deadline in the app
(``body_timeout_s``, answered 408). The gateway goes on answering other clients meanwhile: it is
one asyncio loop and a stalled socket costs it only a file descriptor until the deadline.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from shulian.log import get_logger

__all__ = ["GuardedH11Protocol", "server_config"]

log = get_logger(__name__)


class GuardedH11Protocol(H11Protocol):
    """H11Protocol closing a connection whose request headers take longer than
    ``header_timeout_s`` (a class attribute, set per server by :func:`server_config`)."""

    header_timeout_s: float = 10.0
    connector: str = "gateway"

    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before:  # a request's headers are complete
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and (self.cycle is None
                                                or self.cycle.response_complete):
            self._arm()  # the next request on this connection gets its own deadline

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            log.warning("gateway.header_timeout", connector=self.connector,
                     timeout_s=self.header_timeout_s)
            self.transport.close()


def server_config(app: Any, *, host: str, port: int, header_timeout_s: float,
                  connector: str, ssl: dict[str, Any] | None = None) -> uvicorn.Config:
    """uvicorn's config for the gateway: h11 with the header deadline, no access log, no
    uvicorn logging setup (structlog owns it); ``ssl``: uvicorn's TLS settings when the
    gateway serves HTTPS (``uvicorn_ssl``)."""
    protocol = type("GatewayH11Protocol", (GuardedH11Protocol,),
                    {"header_timeout_s": header_timeout_s, "connector": connector})
    return uvicorn.Config(app, host=host, port=port, http=protocol, log_config=None,
                          access_log=False, lifespan="off", timeout_graceful_shutdown=10,
                          timeout_keep_alive=5, **(ssl or {}))
