"""``shulian demo``: the whole embedded stack (or a running one), a small realistic scenario,
a measured table."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from shulian.cli.common import engine_option, friendly_errors, namespace_option, settings_from
from shulian.cli.up import initialise
from shulian.clock import DEMO_CLOCK, parse_clock
from shulian.embedded.net import free_port
from shulian.embedded.stack import Endpoints, stack_children, stack_master_key
from shulian.embedded.supervisor import ChildDied, Supervisor
from shulian.log import configure_logging
from shulian.settings import Settings

DEMO_CHILDREN = ("broker", "registry", "worker")


@click.command("demo")
@click.option("--records", type=click.IntRange(min=1), default=260,
              help="Records published in all, wire garbage included, split evenly over the "
              "agency datasets [default 260: the scenario of docs/AUDIT.md]")
@click.option("--garbage", type=click.IntRange(min=0), default=5,
              help="Wire-garbage records (not Avro at all) within each agency dataset's "
              "share [default 5]")
@click.option("--invalid-rate", type=click.FloatRange(0.0, 1.0), default=0.05,
              help="Share of records that fail an element check on purpose [default 0.05]")
@click.option("--seed", type=int, default=2026, help="Random seed [default 2026]")
@click.option("--timeout", "timeout_s", type=float, default=180.0,
              help="Seconds to wait for the chain to process everything [default 180]")
@click.option("--bootstrap", "bootstrap_servers", envvar="SHULIAN_DEMO_BOOTSTRAP",
              default=None, help="Play into the already running stack at these bootstrap "
              "servers (its worker must run) instead of starting one; nothing is stopped "
              "[env SHULIAN_DEMO_BOOTSTRAP]")
@click.option("--registry-url", "--registry", "registry_url", envvar="SHULIAN_REGISTRY_URL",
              default=None, help="With --bootstrap: the running stack's schema registry "
              "[env SHULIAN_REGISTRY_URL, default http://127.0.0.1:8081]")
@namespace_option
@engine_option
@click.pass_context
@friendly_errors
def demo(ctx: click.Context, records: int, garbage: int, invalid_rate: float, seed: int,
         timeout_s: float, bootstrap_servers: str | None, registry_url: str | None,
         namespace: str | None, engine: str | None) -> None:
    """Start the stack, play a scenario of several agencies, print what happened, exit.

    Agencies publish Avro with confluent-kafka's serializer in their own dialects (field
    names, code lists, date formats, units, region names), including invalid records and
    wire-level garbage. The tables are measured by reading the chain's topics, not predicted;
    agencies are named as in the catalogue and every reason code has a legend in words.

    With --bootstrap the same scenario is played into a stack that is already running
    (shulian up, or broker + registry + init + worker), counting only what this run added,
    and the stack keeps running, so `shulian audit` and `shulian deadletters` can be run on
    the result afterwards; --namespace (only with --bootstrap) names the prefix its worker uses.
    """
    if bootstrap_servers is not None:
        overrides: dict[str, Any] = {"bootstrap_servers": bootstrap_servers}
        if registry_url:
            overrides["registry_url"] = registry_url
        settings = settings_from(ctx, **overrides)
        log_dir = Path(tempfile.mkdtemp(prefix="shulian-demo-"))
        with _own_log(settings, log_dir):
            click.echo(f"playing into the running stack at {settings.bootstrap_servers} "
                       f"(demo log in {log_dir}) ...")
            code = _play(settings, records=records, garbage=garbage,
                         invalid_rate=invalid_rate, seed=seed, timeout_s=timeout_s,
                         namespace=namespace, stopped=lambda: None)
        ctx.exit(code)
    if namespace is not None:
        raise click.UsageError("--namespace applies only with --bootstrap")
    _own_stack(ctx, records=records, garbage=garbage, invalid_rate=invalid_rate, seed=seed,
               timeout_s=timeout_s, engine=engine)


def _own_stack(ctx: click.Context, *, records: int, garbage: int, invalid_rate: float,
               seed: int, timeout_s: float, engine: str | None) -> None:
    settings = settings_from(ctx, broker_port=free_port(), registry_port=free_port(),
                             gateway_port=free_port(), metrics_port=0, broker_engine=engine)
    settings, _ = stack_master_key(settings, state_dir=None)  # fresh per demo run
    if "SHULIAN_CLOCK" not in os.environ:  # decide inside the example list's validity
        settings = settings.model_copy(update={"clock": DEMO_CLOCK})
    click.echo(f"decision clock: {parse_clock(settings.clock).label} "
               "(the demo's; SHULIAN_CLOCK overrides it)")
    endpoints = Endpoints.from_settings(settings)
    settings = settings.model_copy(update={
        "bootstrap_servers": endpoints.bootstrap, "registry_url": endpoints.registry_url})
    root = ctx.find_root().command
    commands = set(root.commands) if isinstance(root, click.Group) else set()
    children = [c for c in stack_children(settings, endpoints, commands=commands)
                if c.name in DEMO_CHILDREN]
    log_dir = Path(tempfile.mkdtemp(prefix="shulian-demo-"))
    click.echo(f"starting broker, registry and chain worker (logs in {log_dir}) ...")
    sup = Supervisor(log_dir=log_dir)
    code = 1
    with _own_log(settings, log_dir):
        try:
            sup.start_all(c for c in children if not c.needs_init)
            initialise(settings)
            sup.start_all(c for c in children if c.needs_init)
            code = _play(settings, records=records, garbage=garbage,
                         invalid_rate=invalid_rate, seed=seed, timeout_s=timeout_s,
                         namespace=None,
                         stopped=lambda: None if sup.died is None else f"{sup.died} died")
        except ChildDied as exc:
            click.echo(f"error: {exc}", err=True)
        finally:
            sup.stop_all()
    ctx.exit(code)


@contextmanager
def _own_log(settings: Settings, log_dir: Path) -> Iterator[Path]:
    """The demo's own log lines go to ``<log_dir>/demo.log``, not between its tables."""
    path = log_dir / "demo.log"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)  # in a 0700 folder
    with os.fdopen(fd, "a", encoding="utf-8") as file:
        configure_logging(level=settings.log_level, fmt="json", force=True, stream=file)
        try:
            yield path
        finally:
            configure_logging(level=settings.log_level, fmt=settings.log_format, force=True,
                              stream=sys.stderr)


def _play(settings: Settings, *, records: int, garbage: int, invalid_rate: float, seed: int,
          timeout_s: float, namespace: str | None, stopped: Callable[[], str | None]) -> int:
    from rich.console import Console

    from shulian.catalog.load import load_catalog
    from shulian.chain.topology import Topology, plan_topics
    from shulian.cli.demo_view import render
    from shulian.scenario import ScenarioTimeout, play, topic_ends, wait_for_chain

    catalog = load_catalog(settings.catalog_dir, schemas_dir=settings.schemas_dir)
    topology = Topology.from_settings(settings, namespace)
    plan = plan_topics(catalog, topology)
    after = topic_ends(settings, [*plan.audit, *plan.deadletter])
    tally = play(settings, catalog, topology, records=records, invalid_rate=invalid_rate,
                 seed=seed, garbage=garbage)
    click.echo(f"published {tally.total} records from {len(tally.valid | tally.invalid)} "
               "agency datasets; waiting for the chain ...")
    try:
        got = wait_for_chain(settings, catalog, topology, tally, after, timeout_s=timeout_s,
                             stopped=stopped)
    except ScenarioTimeout as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    render(Console(), catalog, tally, got)
    return 0 if got.breaks == 0 else 1
