"""``shulian connect``: validate and run connector configs (sources and sinks)."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from shulian.cli.common import bootstrap_option, friendly_errors, registry_option, settings_from
from shulian.errors import ConfigError, ShulianError
from shulian.log import get_logger
from shulian.settings import Settings, load_settings

if TYPE_CHECKING:
    from shulian.connectors.config import LoadedConnector

log = get_logger(__name__)


@click.group()
def connect() -> None:
    """Connectors from YAML configs: HTTP gateway, file drop, table poll, sinks."""


def _check_refs(loaded: Sequence[LoadedConnector], settings: Settings) -> None:
    """Agencies, datasets and egress topics the configs name must be in the catalogue."""
    from shulian.catalog.load import load_catalog
    from shulian.connectors.catalog_refs import check_connector_refs

    catalog = load_catalog(settings.catalog_dir, schemas_dir=settings.schemas_dir)
    issues = check_connector_refs(loaded, catalog)
    if issues:
        raise ConfigError(issues)


@connect.command("check")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(dir_okay=False, path_type=Path))
@click.option("--skip-env", is_flag=True, envvar="SHULIAN_CONNECT_SKIP_ENV",
              help="Do not require the environment variables the configs name "
                   "[env SHULIAN_CONNECT_SKIP_ENV]")
@friendly_errors
def check(files: tuple[Path, ...], skip_env: bool) -> None:
    """Validate connector config FILES; errors name file, field and why (exit 2)."""
    from shulian.connectors.config import load_connector_files

    loaded = load_connector_files(files, check_env=not skip_env)
    _check_refs(loaded, load_settings())
    for c in loaded:
        click.echo(f"ok  {c.path}  {c.type}  {c.name}")


@connect.command("run")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(dir_okay=False, path_type=Path))
@bootstrap_option
@registry_option
@click.option("--metrics-port", type=int, envvar="SHULIAN_CONNECT_METRICS_PORT", default=None,
              help="Serve Prometheus metrics on this port (0: off) "
                   "[env SHULIAN_CONNECT_METRICS_PORT, default off]")
@click.pass_context
@friendly_errors
def run(ctx: click.Context, files: tuple[Path, ...], bootstrap_servers: str | None,
        registry_url: str | None, metrics_port: int | None) -> None:
    """Run connector config FILES in the foreground until SIGTERM or Ctrl-C.

    Every connector first checks its endpoints (a clear error and exit 1 when one is
    unreachable); on SIGTERM/SIGINT each stops taking work, flushes and persists its position.
    """
    from prometheus_client import REGISTRY, start_http_server

    from shulian.connectors.config import load_connector_files
    from shulian.connectors.metrics import ConnectorMetrics
    from shulian.connectors.table import build_connector, connector_type
    from shulian.io.kafka import require_broker

    settings = settings_from(ctx, bootstrap_servers=bootstrap_servers, registry_url=registry_url,
                             probe_broker=False)
    loaded = load_connector_files(files)
    _check_refs(loaded, settings)
    # the configs are good: now one clear line if nobody answers (as the first connector's
    # principal when each connector is its own, Settings.for_principal)
    first = loaded[0].config if loaded else None
    require_broker(settings if first is None else settings.for_principal(
        f"{connector_type(first).role}.{first.name}"))
    metrics = ConnectorMetrics.create(REGISTRY)
    connectors = [build_connector(c.config, settings=settings, metrics=metrics,
                                  file=str(c.path)) for c in loaded]
    for c in connectors:
        c.setup()
    if metrics_port:
        start_http_server(metrics_port, addr=settings.metrics_host, registry=REGISTRY)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("connect.signal", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    started = []
    failed: BaseException | None = None
    try:
        for c in connectors:
            c.start()
            started.append(c)
        log.info("connect.running", connectors=[c.name for c in connectors])
        while not stop.wait(0.5):
            for c in connectors:
                failed = c.failure()
                if failed is not None:
                    log.error("connect.connector_failed", connector=c.name, error=str(failed))
                    stop.set()
                    break
    finally:
        for c in reversed(started):
            c.stop()
        log.info("connect.stopped", connectors=[c.name for c in started])
    if failed is not None:
        if isinstance(failed, ShulianError):
            raise failed
        click.echo(f"error: connector failed: {failed}", err=True)
        sys.exit(1)
