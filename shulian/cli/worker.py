"""``shulian worker`` and ``shulian init`` (``shulian sharing``: shulian/cli/sharing.py)."""

from __future__ import annotations

from pathlib import Path

import click

from shulian.cli.common import (
    bootstrap_option,
    catalog_option,
    friendly_errors,
    namespace_option,
    registry_option,
    settings_from,
)


@click.command("worker")
@bootstrap_option
@registry_option
@catalog_option
@namespace_option
@click.option("--worker-id", envvar="SHULIAN_WORKER_ID", default=None,
              help="Name recorded in audit records [env SHULIAN_WORKER_ID]")
@click.option("--metrics-port", type=int, envvar="SHULIAN_METRICS_PORT", default=None,
              help="Prometheus metrics port, 0 to disable [env SHULIAN_METRICS_PORT]")
@click.pass_context
@friendly_errors
def worker(ctx: click.Context, bootstrap_servers: str | None, registry_url: str | None,
           catalog_dir: Path | None, namespace: str | None, worker_id: str | None,
           metrics_port: int | None) -> None:
    """Run a chain worker: validate, harmonise, enforce the list, route, audit.

    Runs until Ctrl-C or SIGTERM. Scale by running more workers (one per partition at most);
    the topics must exist (`shulian init`).
    """
    from shulian.streams.worker import run_worker

    # the broker is probed by run_worker once the configuration is known to be good
    settings = settings_from(ctx, bootstrap_servers=bootstrap_servers, registry_url=registry_url,
                             catalog_dir=catalog_dir, worker_id=worker_id,
                             metrics_port=metrics_port, probe_broker=False)
    run_worker(settings, namespace=namespace)


@click.command("init")
@bootstrap_option
@registry_option
@catalog_option
@namespace_option
@click.pass_context
@friendly_errors
def init(ctx: click.Context, bootstrap_servers: str | None, registry_url: str | None,
         catalog_dir: Path | None, namespace: str | None) -> None:
    """Create the chain's topics (explicit partitions) and register its schemas. Idempotent."""
    from shulian.catalog.load import load_catalog
    from shulian.chain.topology import Topology
    from shulian.io.setup import init_topology

    settings = settings_from(ctx, bootstrap_servers=bootstrap_servers, registry_url=registry_url,
                             catalog_dir=catalog_dir)
    catalog = load_catalog(settings.catalog_dir, schemas_dir=settings.schemas_dir)
    report = init_topology(settings, catalog,
                           Topology.from_settings(settings, namespace))
    click.echo(f"ready: {report.topics} topics, {report.subjects} schema subjects")
