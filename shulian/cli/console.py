"""``shulian console``: the web console (parse, call, print)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from shulian.cli.common import (
    bootstrap_option,
    catalog_option,
    friendly_errors,
    namespace_option,
    settings_from,
)


@click.command("console")
@bootstrap_option
@click.option("--host", default=None, envvar="SHULIAN_CONSOLE_HOST",
              help="Address to listen on [env SHULIAN_CONSOLE_HOST, default 127.0.0.1]")
@click.option("--port", type=int, default=None, envvar="SHULIAN_CONSOLE_PORT",
              help="Port [env SHULIAN_CONSOLE_PORT, default 8090]")
@click.option("--registry-url", default=None, envvar="SHULIAN_REGISTRY_URL",
              help="Schema registry, for its health [env SHULIAN_REGISTRY_URL]")
@catalog_option
@click.option("--connectors", "connectors_dir", type=click.Path(path_type=Path), default=None,
              envvar="SHULIAN_CONNECTORS_DIR",
              help="Connector configs whose gateway tokens let agencies log in "
                   "[env SHULIAN_CONNECTORS_DIR, default connectors/examples]")
@namespace_option
@click.pass_context
@friendly_errors
def console(ctx: click.Context, bootstrap_servers: str | None, host: str | None,
            port: int | None, registry_url: str | None, catalog_dir: Path | None,
            connectors_dir: Path | None, namespace: str | None) -> None:
    """Serve the web console until Ctrl-C or SIGTERM.

    Agencies log in with their gateway tokens (the gateway configs among the connectors), the
    data governance office with SHULIAN_CONSOLE_GOVERNANCE_TOKEN, auditors with
    SHULIAN_CONSOLE_AUDITOR_TOKEN (tokens are read from the environment only, never from the
    command line). The console reads the chain's topics itself; it writes nothing to Kafka.
    """
    from shulian.console.serve import build_console, serve

    settings = settings_from(ctx, bootstrap_servers=bootstrap_servers, console_host=host,
                             console_port=port, registry_url=registry_url,
                             catalog_dir=catalog_dir, connectors_dir=connectors_dir)
    app, tailer = build_console(settings, os.environ, namespace=namespace)
    click.echo(f"console on http://{settings.console_host}:{settings.console_port} "
               f"({len(app.tokens)} principals can log in)")
    serve(app, tailer)
