"""``shulian replay decisions|deliver|drill``: reproduce decisions, re-deliver a window,
rehearse on a past stream. The work is done by the services :mod:`shulian.audit.replaying`,
:mod:`shulian.audit.redelivering` and :mod:`shulian.audit.drill`; this module parses and prints."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from shulian.audit.names import require_known
from shulian.audit.redelivering import run_redeliver
from shulian.audit.replaying import load_catalog, master_key_of, run_replay_decisions
from shulian.chain.topology import Topology
from shulian.cli.common import (
    NAMESPACE_ENV,
    bootstrap_option,
    catalog_option,
    friendly_errors,
    namespace_option,
    registry_option,
    renamed_env,
    settings_from,
    window_of,
    window_options,
)


@click.group("replay")
def replay() -> None:
    """Reproduce decisions, re-deliver a window, rehearse on past streams (drills)."""


def _window_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    return bootstrap_option(registry_option(window_options(required=True)(catalog_option(fn))))


@replay.command("decisions")
@_window_options
@click.option("--dataset", "datasets", multiple=True, help="Only this dataset (repeatable)")
@namespace_option
@click.pass_context
@friendly_errors
def decisions(ctx: click.Context, bootstrap_servers: str | None, registry_url: str | None,
              start: str, end: str, catalog_dir: Path | None, datasets: tuple[str, ...],
              namespace: str | None) -> None:
    """Re-evaluate the window's canonical records with the list version the audit names and
    the audit's ts as now; report every difference. Exit 1 on any mismatch, 2 for an unknown
    dataset, 3 when the window holds no canonical record (nothing was compared).

    Masked values are compared only when SHULIAN_HMAC_MASTER_KEY is set.
    """
    settings = settings_from(ctx, bootstrap_servers=bootstrap_servers, registry_url=registry_url,
                             catalog_dir=catalog_dir)
    catalog = load_catalog(settings)
    require_known("--dataset", "dataset", datasets, catalog.datasets)
    window = window_of(start, end)
    topology = Topology.from_settings(settings, namespace)
    res = run_replay_decisions(settings, catalog=catalog, topology=topology, window=window,
                               datasets=list(datasets) or sorted(catalog.datasets),
                               master_key=master_key_of(settings))
    out = Console(soft_wrap=False, width=200 if not sys.stdout.isatty() else None)
    out.print(f"window {window.describe()}: {res.records} canonical records, {res.emissions} "
              f"audited emissions, {res.decisions} decisions replayed, {res.views_compared} "
              f"delivered views compared (masked values "
              f"{'compared' if settings.hmac_master_key else 'not compared: no master key'})")
    if res.records == 0 and not res.mismatches:
        out.print("NOTHING REPLAYED: no canonical record in the window; nothing was compared")
        sys.exit(3)
    if not res.mismatches:
        out.print("OK: every replayed decision matches the audit")
        return
    t = Table(title=f"{len(res.mismatches)} mismatch(es)")
    for c in ("canonical", "record key", "entry", "what", "audited", "replayed"):
        t.add_column(c)
    for mm in res.mismatches:
        t.add_row(mm.canonical, mm.record_key, mm.entry_id, mm.what,
                  json.dumps(mm.audited, ensure_ascii=False) if mm.audited else "",
                  json.dumps(mm.replayed, ensure_ascii=False) if mm.replayed else "")
    out.print(t)
    sys.exit(1)



@replay.command("deliver")
@_window_options
@click.option("--consumer", required=True, help="Consumer agency to re-deliver to")
@click.option("--dataset", required=True, help="Dataset to re-deliver")
@click.option("--to-sink", "to_sink", type=click.Path(dir_okay=False, exists=True,
                                                      path_type=Path), default=None,
              help="Write straight into the sink this connector config describes, through the "
              "sink's own code (a PostgreSQL sink upserts on _record_key), instead of producing "
              "to egress.<consumer>.<dataset>")
@namespace_option
@click.pass_context
@friendly_errors
def deliver(ctx: click.Context, bootstrap_servers: str | None, registry_url: str | None,
            start: str, end: str, catalog_dir: Path | None, consumer: str, dataset: str,
            to_sink: Path | None, namespace: str | None) -> None:
    """Re-deliver what the consumer was delivered in the window (by the egress records' time),
    idempotently (same keys; a sink upserts on _record_key), audited as kind=replay in
    audit.replay.<dataset>. Each record is re-derived from its canonical record and its deliver
    audit record (the audited list version and time, the chain's master key and signing key),
    never copied from the egress topic: a forged egress record is never re-sent. Exit 1 when
    an audited delivery does not re-derive (its canonical record changed or is gone) or an
    egress record of the window has no deliver audit record.
    """
    settings = settings_from(ctx, bootstrap_servers=bootstrap_servers, registry_url=registry_url,
                             catalog_dir=catalog_dir)
    from shulian.connectors.sinks.direct import direct_sink

    res = run_redeliver(settings, topology=Topology.from_settings(settings, namespace),
                        consumer=consumer, dataset=dataset, window=window_of(start, end),
                        sink=None if to_sink is None else direct_sink(to_sink, settings))
    click.echo(f"re-delivered {res.delivered} record(s) to {res.target}; audited in "
               f"{res.replay_audit_topic}; {res.refused} of {res.candidates} audited "
               "deliveries refused (they do not re-derive from their canonical record); "
               f"{res.unaudited} egress record(s) without a deliver audit record ignored")
    if res.refused or res.unaudited:
        sys.exit(1)


# ---------------------------------------------------------------- drill


def _old_source_namespace(_ctx: click.Context, _param: click.Parameter,
                          value: str | None) -> str | None:
    if value is None and os.environ.get("SHULIAN_DRILL_NAMESPACE"):
        return os.environ.get(NAMESPACE_ENV) or None
    return value


@replay.command("drill")
@_window_options
@click.option("--speed", type=float, default=1.0, envvar="SHULIAN_DRILL_SPEED",
              help="Pace multiplier [env SHULIAN_DRILL_SPEED, default 1.0]")
# SHULIAN_NAMESPACE names the namespace a command works in: for a drill, the one it makes.
# The old SHULIAN_DRILL_NAMESPACE is read first, and with it SHULIAN_NAMESPACE keeps its old
# meaning here (the source), so a script written for the old names does what it did.
@click.option("--namespace", required=True, envvar=["SHULIAN_DRILL_NAMESPACE", NAMESPACE_ENV],
              callback=renamed_env(NAMESPACE_ENV, "SHULIAN_DRILL_NAMESPACE"),
              help="Isolated namespace for the drill's topics [env SHULIAN_NAMESPACE]")
@click.option("--source-namespace", envvar="SHULIAN_SOURCE_NAMESPACE", default=None,
              callback=_old_source_namespace,
              help="Namespace to replay from [env SHULIAN_SOURCE_NAMESPACE, default none: "
              "the production topics]")
@click.option("--worker-log", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File for the drill worker's log [default none: discarded]")
@click.option("--timeout", "timeout_s", type=float, default=600.0,
              help="Give up when the drill is not processed after this many seconds "
              "[default 600]")
@click.pass_context
@friendly_errors
def drill(ctx: click.Context, bootstrap_servers: str | None, registry_url: str | None,
          start: str, end: str, catalog_dir: Path | None, speed: float, namespace: str,
          source_namespace: str | None, worker_log: Path | None, timeout_s: float) -> None:
    """Rehearse on a past stream: replay the window's raw records into NAMESPACE at SPEED times
    the original pace, through a separate chain worker, without touching production topics
    or consumer groups. Prints a summary."""
    settings = settings_from(ctx, bootstrap_servers=bootstrap_servers, registry_url=registry_url,
                             catalog_dir=catalog_dir)
    if speed <= 0:
        raise click.BadParameter("must be > 0", param_hint="--speed")
    from shulian.audit.drill import run_drill

    res = run_drill(settings, catalog=load_catalog(settings),
                    source=Topology.from_settings(settings, source_namespace), namespace=namespace,
                    window=window_of(start, end), speed=speed, timeout_s=timeout_s,
                    log_file=worker_log)
    out = Console(soft_wrap=False, width=160 if not sys.stdout.isatty() else None)
    t = Table(title=f"drill {res.namespace}: {sum(res.produced.values())} raw records "
              f"({res.window_span_s:.1f} s of stream) in {res.elapsed_s:.1f} s")
    t.add_column("what")
    t.add_column("count", justify="right")
    for topic, n in sorted(res.produced.items()):
        t.add_row(f"replayed into {topic}", str(n))
    t.add_row("canonical records", str(res.canonical))
    for why, n in sorted(res.deadletters.items()):
        t.add_row(f"dead letters: {why}", str(n))
    for (consumer, decision), n in sorted(res.decisions.items()):
        t.add_row(f"{consumer}: {decision}", str(n))
    out.print(t)
