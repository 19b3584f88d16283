"""Build the console from settings and run it (``shulian console``, the ``up`` child)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from shulian.console.app import Console, create_app
from shulian.console.auth import SessionCodec
from shulian.console.data.store import Store
from shulian.console.data.tail import Tailer
from shulian.console.principals import token_book
from shulian.log import get_logger
from shulian.settings import Settings

__all__ = ["build_console", "serve"]

log = get_logger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def build_console(settings: Settings, environ: Mapping[str, str], *, namespace: str | None,
                  clock: Callable[[], datetime] = _utc_now,
                  interval_s: float = 1.0) -> tuple[Console, Tailer]:
    """The console and its (not yet started) reader; ConfigError names what is missing."""
    from shulian.catalog.load import load_catalog
    from shulian.chain.topology import Topology

    catalog = load_catalog(settings.catalog_dir, schemas_dir=settings.schemas_dir)
    topology = Topology.from_settings(settings, namespace)
    from shulian.catalog.approval import ListLedger
    from shulian.catalog.keys import Keyring

    store = Store(topology, ListLedger.starting_at(Keyring(catalog.keys),
                                                   catalog.sharing_lists.values()))
    tailer = Tailer(settings, catalog, topology, store, clock=clock, interval_s=interval_s)
    key = settings.console_session_key
    codec = SessionCodec(key.get_secret_value().encode() if key is not None
                         else secrets.token_bytes(32))
    console = Console(settings=settings, catalog=catalog, topology=topology, store=store,
                      tokens=token_book(settings, environ), codec=codec, clock=clock,
                      health=lambda: tailer.state.health, lag=lambda: tailer.state.lag)
    return console, tailer


def serve(console: Console, tailer: Tailer) -> None:
    """Read the topics in the background and serve until SIGINT/SIGTERM."""
    import uvicorn

    tailer.start()
    s = console.settings
    log.info("console.listening", url=f"http://{s.console_host}:{s.console_port}")
    try:
        uvicorn.run(create_app(console), host=s.console_host, port=s.console_port,
                    log_config=None, access_log=False)
    finally:
        tailer.stop()
