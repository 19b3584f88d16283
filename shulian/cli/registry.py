"""``shulian registry``: the schema registry service (Confluent REST API, state in Kafka)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any

import click

from shulian.cli.common import bootstrap_option, friendly_errors, settings_from


@click.command("registry")
@bootstrap_option
@click.option(
    "--host",
    default=None,
    envvar="SHULIAN_REGISTRY_HOST",
    help="Address to listen on [env SHULIAN_REGISTRY_HOST, default 127.0.0.1]",
)
@click.option(
    "--port",
    type=int,
    default=None,
    envvar="SHULIAN_REGISTRY_PORT",
    help="Port to listen on [env SHULIAN_REGISTRY_PORT, default 8081]",
)
@click.option(
    "--topic",
    default=None,
    envvar="SHULIAN_SCHEMAS_TOPIC",
    help="Kafka topic holding the registry's state [env SHULIAN_SCHEMAS_TOPIC, default _schemas]",
)
@click.pass_context
@friendly_errors
def registry(
    ctx: click.Context,
    bootstrap_servers: str | None,
    host: str | None,
    port: int | None,
    topic: str | None,
) -> None:
    """Run the schema registry until Ctrl-C or SIGTERM.

    It reads its topic to the end before it listens, so it answers exactly as every other
    registry on the same topic, and as it did before a restart.
    """
    import uvicorn

    from shulian.log import get_logger
    from shulian.perimeter.tls import uvicorn_ssl
    from shulian.registry.app import create_app
    from shulian.registry.auth import load_registry_credentials, protect
    from shulian.registry.service import RegistryService
    from shulian.registry.store import KafkaStore

    settings = settings_from(
        ctx,
        probe_broker=False,  # the registry waits for its broker (a restart of up's broker)
        bootstrap_servers=bootstrap_servers,
        registry_host=host,
        registry_port=port,
        schemas_topic=topic,
    )
    log = get_logger("shulian.registry")
    store = KafkaStore(settings)
    store.start()
    try:
        app = protect(create_app(RegistryService(store)),
                      load_registry_credentials(settings.credentials_dir))
        config = uvicorn.Config(
            app,
            host=settings.registry_host,
            port=settings.registry_port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            # an idle TLS keep-alive client never answers the close: do not wait for it forever
            timeout_graceful_shutdown=5,
            **uvicorn_ssl(settings),
        )
        server = _server_class()(config)

        def stop(*_: Any) -> None:
            server.should_exit = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        log.info(
            "registry.listening",
            host=settings.registry_host,
            port=settings.registry_port,
            topic=settings.schemas_topic,
            bootstrap=settings.bootstrap_servers,
        )
        server.run()
    finally:
        store.stop()
        log.info("registry.stopped")


def _server_class() -> Any:
    """uvicorn's Server, minus its own signal capture: it re-raises SIGTERM after shutting down,
    which would kill the process before the store is closed and the exit code is 0."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return Server
