"""``shulian deadletters``: what was rejected, when, why in words, which field.

Parses options, calls :mod:`shulian.audit.deadletters` and prints; never prints a dead
letter's original bytes (they may hold personal data).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from shulian.audit import deadletters as dl
from shulian.audit.progress import reading
from shulian.audit.report import to_csv
from shulian.audit.window import Window
from shulian.cli.common import (
    bootstrap_option,
    catalog_option,
    friendly_errors,
    namespace_option,
    settings_from,
)
from shulian.errors import ConfigError, ConfigIssue
from shulian.logic.reasons import legend
from shulian.logic.result import Reason

SHOW_ORIGINAL_REFUSED = (
    "--show-original is refused: a dead letter's original bytes may hold personal data, and "
    "only the agency that sent them may read them. That needs the agency's own broker "
    "identity (SASL credentials) and a broker enforcing per-agency ACLs; the embedded broker "
    "has neither, so the chain cannot tell the agency from anyone else. Ask the agency to "
    "read its own deadletter.<agency>.<dataset> topic with its credentials once the "
    "perimeter exists; --format json names each one's topic, partition and offset."
)

_TABLE = ("rejected_at", "agency", "dataset", "reason", "field", "why")


@click.command("deadletters")
@bootstrap_option
@click.option("--agency", default=None, help="Only this publishing agency (e.g. psb); "
              "'_canonical' is the chain's own enforce stage")
@click.option("--dataset", default=None, help="Only this dataset (e.g. household_change)")
@click.option("--reason", default=None, metavar="CODE",
              help="Only this reason code (e.g. element_check_failed)")
@click.option("--since", default=None, metavar="TIME",
              help="Rejected at or after TIME: ISO 8601 (zone optional, default "
              "Asia/Shanghai), 'now' or relative (-15m, -2h, -1d)")
@click.option("--until", default=None, metavar="TIME", help="Rejected at or before TIME")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              help="Output format; json and csv carry every column [default table]")
@click.option("--lang", type=click.Choice(["en", "zh"]), default="en",
              help="Language of the reasons in words [default en]")
@namespace_option
@catalog_option
@click.option("--show-original", is_flag=True, default=False,
              help="Print the original bytes. Refused: needs the agency's own identity "
              "(SASL credentials) on a broker with per-agency ACLs; the embedded stack has "
              "neither, so nobody may fetch them through this command.")
@click.pass_context
@friendly_errors
def deadletters(ctx: click.Context, bootstrap_servers: str | None, agency: str | None,
                dataset: str | None, reason: str | None, since: str | None,
                until: str | None, fmt: str, lang: str, namespace: str | None,
                catalog_dir: Path | None, show_original: bool) -> None:
    """What was rejected, when, why (in words) and which field, without personal data.

    Reads the dead-letter topics of the catalogue (deadletter.<agency>.<dataset>); prints one
    row per rejected record (times in Asia/Shanghai), a count per reason and field, and a
    legend of the reason codes. The records' contents are never printed.
    """
    if show_original:
        click.echo(f"error: {SHOW_ORIGINAL_REFUSED}", err=True)
        sys.exit(2)
    codes = {r.value for r in Reason}
    if reason is not None and reason not in codes:
        raise ConfigError([ConfigIssue("command line", "--reason",
                                       f"{reason!r} is not a reason code; known: "
                                       f"{', '.join(sorted(codes))}")])
    try:
        window = Window.parse(since, until)
    except ValueError as exc:
        raise ConfigError([ConfigIssue("command line", "--since/--until", str(exc))]) from None
    settings = settings_from(ctx, bootstrap_servers=bootstrap_servers, catalog_dir=catalog_dir,
                             probe_broker=False)
    from shulian.catalog.load import load_catalog
    from shulian.chain.topology import Topology
    from shulian.io.kafka import require_broker

    catalog = load_catalog(settings.catalog_dir, schemas_dir=settings.schemas_dir)
    flt = dl.DeadLetterFilter(agency=agency, dataset=dataset, reason=reason, window=window)
    # a misspelt agency or dataset is named before the broker is asked anything
    dl.deadletter_topics(catalog, Topology.from_settings(settings, namespace), agency=agency,
                         dataset=dataset)
    require_broker(settings)
    with reading("dead-letter topics") as progress:
        letters = dl.read_dead_letters(settings, catalog, flt, namespace=namespace,
                                       progress=progress)
    rows = dl.rows(letters, lang=lang)
    if fmt == "json":
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if fmt == "csv":
        click.echo(to_csv(rows, dl.COLUMNS), nl=False)
        return
    print_tables(rows, dl.summary(letters), lang=lang, window=window)


def print_tables(rows: list[dict[str, object]], summary: list[dict[str, object]], *,
                 lang: str, window: Window, console: Console | None = None) -> None:
    out = console if console is not None else Console(
        soft_wrap=False, width=200 if not sys.stdout.isatty() else None)
    table = Table(title=f"{len(rows)} dead letter(s), window {window.describe()}")
    for c in _TABLE:
        table.add_column(c)
    for r in rows:
        why = str(r["why"]) + (f": {r['check_words']}" if r["check_words"] else "")
        table.add_row(*(str(r[c]) for c in _TABLE[:-1]), why)
    out.print(table)
    st = Table(title="by reason and field")
    for c in ("agency", "dataset", "reason", "field", "records"):
        st.add_column(c, justify="right" if c == "records" else "left")
    for s in summary:
        st.add_row(*(str(s[c]) for c in ("agency", "dataset", "reason", "field", "records")))
    out.print(st)
    seen = [str(r["reason"]) for r in rows]
    for code, words in legend(seen):
        out.print(f"  {code}: {words.zh if lang == 'zh' else words.en}")
    if rows:
        out.print("original bytes stay on the dead-letter topics (json/csv name each one's "
                  "topic, partition and offset); they are not printed")
