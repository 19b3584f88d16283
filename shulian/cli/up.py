"""``shulian up``: the whole embedded stack in one process tree."""

from __future__ import annotations

import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType

import click

from shulian.cli.common import friendly_errors, settings_from
from shulian.embedded.stack import Endpoints, stack_children
from shulian.embedded.supervisor import ChildDied, StopRequested, Supervisor
from shulian.log import get_logger
from shulian.settings import Settings

log = get_logger(__name__)


def initialise(settings: Settings) -> None:
    """Topics (explicit partition counts) and schemas from schemas/, before any worker starts.

    The same step as ``shulian init``; idempotent, so a restart of ``up`` repeats it safely.
    """
    from shulian.catalog.load import load_catalog
    from shulian.chain.topology import Topology
    from shulian.io.setup import init_topology

    catalog = load_catalog(settings.catalog_dir, schemas_dir=settings.schemas_dir)
    report = init_topology(settings, catalog, Topology(partitions=settings.default_partitions))
    click.echo(f"initialised: {report.topics} topics, {report.subjects} schema subjects")


def endpoints_table(endpoints: Endpoints, *, running: set[str]) -> str:
    """One line per endpoint; those whose child is not part of this stack say so."""
    served_by = {"gateway": "gateway", "metrics": "worker"}
    rows = [(k, v if served_by.get(k, "") in running | {""} else f"{v} (not running: no "
             f"{served_by[k]} in this stack)") for k, v in endpoints.rows()]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)


@click.command("up")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              envvar="SHULIAN_DATA_DIR",
              help="Keep broker data on disk under DIR (survives a restart); default in memory "
                   "[env SHULIAN_DATA_DIR]")
@click.option("--broker-port", type=int, default=None, envvar="SHULIAN_BROKER_PORT",
              help="Broker port [env SHULIAN_BROKER_PORT, default 9092]")
@click.option("--registry-port", type=int, default=None, envvar="SHULIAN_REGISTRY_PORT",
              help="Schema registry port [env SHULIAN_REGISTRY_PORT, default 8081]")
@click.option("--gateway-port", type=int, default=None, envvar="SHULIAN_GATEWAY_PORT",
              help="Gateway port [env SHULIAN_GATEWAY_PORT, default 8088]")
@click.option("--metrics-port", type=int, default=None, envvar="SHULIAN_METRICS_PORT",
              help="Worker metrics port [env SHULIAN_METRICS_PORT, default 9464]")
@click.option("--catalog", "catalog_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, envvar="SHULIAN_CATALOG_DIR",
              help="Catalogue folder [env SHULIAN_CATALOG_DIR, default ./catalog]")
@click.pass_context
@friendly_errors
def up(ctx: click.Context, data_dir: Path | None, broker_port: int | None,
       registry_port: int | None, gateway_port: int | None, metrics_port: int | None,
       catalog_dir: Path | None) -> None:
    """Run the embedded stack until Ctrl-C or SIGTERM.

    Broker, schema registry, topics and schemas, chain worker and connectors, in that order,
    each started once the one before is ready. A child that dies stops the whole stack
    (exit code 1); Ctrl-C or SIGTERM stops every child in reverse order.
    """
    settings = settings_from(
        ctx, data_dir=data_dir, broker_port=broker_port, registry_port=registry_port,
        gateway_port=gateway_port, metrics_port=metrics_port, catalog_dir=catalog_dir,
    )
    endpoints = Endpoints.from_settings(settings)
    settings = settings.model_copy(update={
        "bootstrap_servers": endpoints.bootstrap, "registry_url": endpoints.registry_url})
    root = ctx.find_root().command
    commands = set(root.commands) if isinstance(root, click.Group) else set()
    children = stack_children(settings, endpoints, commands=commands)

    if settings.data_dir is not None:
        log_dir = settings.data_dir.resolve() / "logs"
    else:
        log_dir = Path(tempfile.mkdtemp(prefix="shulian-up-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    click.echo(f"logs in {log_dir}")
    sup = Supervisor(log_dir=log_dir)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        sup.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    code = 0
    try:
        sup.start_all(c for c in children if not c.needs_init)
        initialise(settings)
        sup.start_all(c for c in children if c.needs_init)
        running = {c.name for c in sup.children}
        click.echo("stack ready:\n" + endpoints_table(endpoints, running=running))
        click.echo("children: " + ", ".join(c.name for c in sup.children))
        code = sup.watch()
        if sup.died is not None:
            click.echo(f"error: {sup.died}; stopping the stack", err=True)
    except StopRequested:
        click.echo("stopped while starting", err=True)
    except ChildDied as exc:
        click.echo(f"error: {exc}; stopping the stack", err=True)
        code = 1
    finally:
        sup.stop_all()
        click.echo("stack stopped", err=True)
    sys.exit(code)
