"""``shulian``: the one entry point. Commands are wired here explicitly, one line each."""

from __future__ import annotations

import click

from shulian import __version__
from shulian.cli.acl import acl
from shulian.cli.audit import audit
from shulian.cli.bench import bench
from shulian.cli.broker import broker
from shulian.cli.catalog import catalog
from shulian.cli.connect import connect
from shulian.cli.console import console
from shulian.cli.deadletters import deadletters
from shulian.cli.demo import demo
from shulian.cli.registry import registry
from shulian.cli.replay import replay
from shulian.cli.sharing import sharing
from shulian.cli.up import up
from shulian.cli.worker import init, worker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="shulian")
def cli() -> None:
    """Shulian (数链): a streaming data chain for cross-agency government data sharing.

    Every option falls back to a SHULIAN_* environment variable.
    """


cli.add_command(broker)
cli.add_command(demo)
cli.add_command(catalog)
cli.add_command(registry)
cli.add_command(init)
cli.add_command(worker)
cli.add_command(sharing)
cli.add_command(audit)
cli.add_command(replay)
cli.add_command(up)
cli.add_command(connect)
cli.add_command(bench)
cli.add_command(console)
cli.add_command(deadletters)
cli.add_command(acl)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
