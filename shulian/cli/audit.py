"""``shulian audit verify`` and ``shulian audit report``.

Topics come from the catalogue (every ``audit.<dataset>``, ``audit.replay.<dataset>``,
``audit.verify.<dataset>`` (joint verification answers: their chains are checked and they
show in the report with their answers), ``egress.<consumer>.<dataset>`` and
``canonical.<dataset>``) unless given explicitly with
``--audit-topic``/``--egress-topic``/``--canonical-topic``. Egress topics named by ``deliver``
audit records are always read too.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from shulian.audit.names import require_consumer, require_dataset
from shulian.audit.report import COLUMNS, Filter, to_csv, to_json
from shulian.audit.verifying import resolve_topics, run_verify
from shulian.cli.common import (
    bootstrap_option,
    catalog_option,
    friendly_errors,
    namespace_option,
    settings_from,
    window_of,
    window_options,
)
from shulian.logic.reasons import legend

__all__ = ["audit"]

_audit_topic_option = click.option(
    "--audit-topic", "audit_topics", multiple=True,
    help="Audit topic to read, repeatable [default the catalogue's audit.<dataset>, "
         "audit.replay.<dataset>, audit.verify.<dataset>]")


def _common_options(fn: Any) -> Any:
    """What verify and report both take: broker, window, catalogue, namespace, audit topics."""
    fn = _audit_topic_option(namespace_option(catalog_option(fn)))
    return bootstrap_option(window_options(required=False)(fn))


def _topic_options(fn: Any) -> Any:
    fn = click.option("--canonical-topic", "canonical_topics", multiple=True,
                      help="Canonical topic to check digests against, repeatable "
                      "[default the catalogue's]")(fn)
    fn = click.option("--egress-topic", "egress_topics", multiple=True,
                      help="Egress topic to check, repeatable [default the catalogue's]")(fn)
    return _common_options(fn)


@click.group("audit")
def audit() -> None:
    """Prove what the chain did: verify the audit log, report who received what."""


@audit.command("verify")
@_topic_options
@click.option("--no-digests", is_flag=True, default=False, envvar="SHULIAN_AUDIT_NO_DIGESTS",
              help="Skip comparing audited record digests with the canonical records "
              "[env SHULIAN_AUDIT_NO_DIGESTS]")
@click.pass_context
@friendly_errors
def verify(ctx: click.Context, bootstrap_servers: str | None, start: str | None,
           end: str | None, catalog_dir: Path | None, namespace: str | None,
           audit_topics: tuple[str, ...], egress_topics: tuple[str, ...],
           canonical_topics: tuple[str, ...], no_digests: bool) -> None:
    """Check the audit hash chains and that egress and audit agree both ways.

    Every partition's chain is checked from its start, whatever the window; completeness
    (every egress record has a deliver audit record and the reverse) is judged for the records
    inside the window. Exit code 0 only when everything holds, 1 when anything is broken,
    2 for an unknown topic (the nearest existing ones are named), 3 when nothing was read, 4
    when all holds but a partition ends in records no signed seal covers yet (an unsigned
    tail: a worker stopped between its records and its seal).
    """
    settings = settings_from(ctx, bootstrap_servers=bootstrap_servers, catalog_dir=catalog_dir)
    window = window_of(start, end)
    topics = resolve_topics(settings, namespace=namespace, audit=audit_topics,
                            egress=egress_topics, canonical=canonical_topics)
    result = run_verify(settings, topics, window, check_digests=not no_digests)
    out = Console(soft_wrap=False, width=200 if not sys.stdout.isatty() else None)
    table = Table(title=f"audit chains, window {window.describe()}")
    table.add_column("audit topic")
    table.add_column("partition", justify="right")
    table.add_column("records", justify="right")
    table.add_column("chain")
    broken = {(b.topic, b.partition) for b in result.breaks}
    for (topic, partition), n in sorted(result.audit_records.items()):
        table.add_row(topic, str(partition), str(n),
                      "BROKEN" if (topic, partition) in broken else "intact")
    out.print(table)
    out.print(f"egress records: {result.egress_records} ({result.egress_forged} forged, "
              f"{result.egress_unaudited} without a deliver audit record), deliver audit "
              f"records: {result.deliveries_audited}, canonical records read: "
              f"{result.canonical_records}")
    if result.read_nothing:
        out.print("NOTHING VERIFIED: no audit or egress record was read from "
                  f"{len(topics.audit)} audit topic(s); check --namespace and the topics")
        sys.exit(3)
    if result.checkpoint_source == "store":
        out.print(f"checkpoints: {result.checkpoints} checked, from the store outside Kafka")
    elif result.checkpoints is not None:
        out.print(f"checkpoints: {result.checkpoints} checked, from the {result.checkpoint_source}"
                  " only (set SHULIAN_AUDIT_CHECKPOINT_STORE: a topic writer can remove these)")
    else:
        out.print("checkpoints: none (SHULIAN_AUDIT_CHECKPOINT_STORE unset: a tail truncated "
                  "back to a seal or a replaced topic cannot be detected)")
    for (topic, partition), n in sorted(result.unsigned_tails.items()):
        out.print(f"WARNING: {topic}[{partition}]: unsigned tail, {n} record(s) after the last "
                  "signed seal: the worker may have stopped mid-batch (its restart seals them "
                  "if the chain wrote them, and disowns them by a resume seal if not); if it "
                  "is running, someone else appended them")
    if result.ok and result.unsigned_tails:
        out.print("NOT PROVEN: chains intact and complete, but unsigned tails remain")
        sys.exit(4)
    if result.ok:
        out.print("OK: every chain intact and sealed, egress and audit complete both ways")
        return
    bt = Table(title=f"{len(result.breaks)} break(s)")
    for col in ("topic", "partition", "offset", "what is wrong"):
        bt.add_column(col)
    for b in result.breaks:
        bt.add_row(b.topic, str(b.partition), str(b.offset), b.what)
    out.print(bt)
    sys.exit(1)


_TABLE_COLUMNS = ("ts", "consumer", "record_key", "decision", "reason", "entry_id",
                  "list_version", "fields_delivered", "fields_masked", "egress_topic",
                  "answers")
_HISTORY_COLUMNS = ("ts", "kind", "raw", "canonical", "consumer", "decision", "reason",
                    "entry_id", "list_version", "fields_masked", "egress_topic")


def _report_options(fn: Any) -> Any:
    """Only the options that apply to a report (no egress topics: it reads none)."""
    fn = click.option("--canonical-topic", "canonical_topics", multiple=True,
                      help="With --record-key: canonical topic to find the record's raw "
                      "origin in, repeatable [default the catalogue's]")(fn)
    return _common_options(fn)


def _answer_counts(counts: dict[str, int] | None) -> str:
    """A verification group's answers in the summary (e.g. ``match 3, no_match 1``)."""
    return "" if not counts else ", ".join(f"{a} {n}" for a, n in counts.items())


@audit.command("report")
@_report_options
@click.option("--consumer", default=None, help="Report what this consumer agency received")
@click.option("--dataset", default=None, help="Report decisions for this dataset")
@click.option("--record-key", default=None,
              help="A record's history: raw origin, canonical offset, every decision")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              envvar="SHULIAN_AUDIT_FORMAT",
              help="Output format; csv and json carry every column, uncut "
              "[env SHULIAN_AUDIT_FORMAT, default table]")
@click.pass_context
@friendly_errors
def report(ctx: click.Context, bootstrap_servers: str | None, start: str | None,
           end: str | None, catalog_dir: Path | None, namespace: str | None,
           audit_topics: tuple[str, ...], canonical_topics: tuple[str, ...],
           consumer: str | None, dataset: str | None, record_key: str | None,
           fmt: str) -> None:
    """Who received what, what was withheld and why (one row per audited decision).

    Give at least one of --consumer, --dataset, --record-key. Times are in the window's zone
    (Asia/Shanghai); masks are named with their parameters ("first 3 / last 4 kept") from the
    catalogue's list versions; reasons are also given in words. With --record-key the
    canonical topics are read too, to show the raw topic/offset each canonical record came
    from. The catalogue's list versions describe the masks.
    """
    from shulian.audit.replaying import load_catalog
    from shulian.audit.reporting import run_report

    if consumer is None and dataset is None and record_key is None:
        raise click.UsageError("give --consumer, --dataset or --record-key")
    if canonical_topics and record_key is None:
        raise click.UsageError("--canonical-topic applies only with --record-key")
    settings = settings_from(ctx, bootstrap_servers=bootstrap_servers, catalog_dir=catalog_dir)
    flt = Filter(consumer=consumer, dataset=dataset, record_key=record_key,
                 window=window_of(start, end))
    topics = resolve_topics(settings, namespace=namespace, audit=audit_topics,
                            egress=(), canonical=canonical_topics)
    catalog = load_catalog(settings)
    require_consumer(catalog, consumer)
    require_dataset(catalog, dataset)
    result = run_report(settings, catalog, flt, audit_topics=topics.audit,
                        canonical_topics=topics.canonical if record_key is not None else ())
    rows = result.rows
    if fmt == "csv":
        click.echo(to_csv(rows, COLUMNS), nl=False)
        return
    if fmt == "json":
        click.echo(to_json(rows))
        return
    out = Console(soft_wrap=False, width=240 if not sys.stdout.isatty() else None)
    cols = _HISTORY_COLUMNS if record_key is not None else _TABLE_COLUMNS
    table = Table(title=f"{len(rows)} decision(s), window {flt.window.describe()}")
    for c in cols:
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(*(str(r[c]) for c in cols))
    out.print(table)
    st = Table(title="summary")
    for c in ("consumer", "dataset", "decision", "reason", "records", "answers"):
        st.add_column(c)
    for s in result.summary:
        st.add_row(*(str(s[c]) for c in ("consumer", "dataset", "decision", "reason",
                                           "records")), _answer_counts(s.get("answers")))
    out.print(st)
    for code, words in legend(str(r["reason"]) for r in rows):
        out.print(f"  {code}: {words.zh}; {words.en}", highlight=False)
