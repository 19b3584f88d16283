"""``shulian catalog``: check the catalogue, (re)generate the canonical Avro schemas."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from shulian.catalog import listing
from shulian.catalog.avro import schema_text
from shulian.catalog.listing import KINDS
from shulian.catalog.load import build_canonical_schemas, check_catalog, load_catalog
from shulian.cli.common import catalog_option, friendly_errors, settings_from


def _dirs(
    ctx: click.Context, catalog_dir: Path | None, schemas_dir: Path | None
) -> tuple[Path, Path]:
    settings = settings_from(ctx, catalog_dir=catalog_dir, schemas_dir=schemas_dir)
    return settings.catalog_dir, settings.schemas_dir


_schemas_option = click.option(
    "--schemas", "schemas_dir", type=click.Path(file_okay=False, path_type=Path),
    envvar="SHULIAN_SCHEMAS_DIR", default=None,
    help="Avro schemas folder [env SHULIAN_SCHEMAS_DIR, default ./schemas]",
)


@click.group()
def catalog() -> None:
    """The catalogue: data elements, datasets, agency mappings, sharing lists.

    check validates it, list shows it, schemas regenerates the canonical Avro schemas.
    """


@catalog.command()
@catalog_option
@_schemas_option
@click.pass_context
@friendly_errors
def check(ctx: click.Context, catalog_dir: Path | None, schemas_dir: Path | None) -> None:
    """Validate every catalogue file and cross-reference.

    Prints one line per error (file: field: why) and exits 2 on errors; prints a one-line
    summary and exits 0 when the catalogue is clean.
    """
    root, schemas = _dirs(ctx, catalog_dir, schemas_dir)
    issues = check_catalog(root, schemas_dir=schemas)
    if issues:
        for issue in issues:
            click.echo(str(issue), err=True)
        click.echo(f"{len(issues)} error(s) in the catalogue", err=True)
        sys.exit(2)
    cat = load_catalog(root, schemas_dir=schemas)
    entries = len(cat.current_list.entries)
    click.echo(
        f"catalogue OK: {len(cat.elements)} elements, {len(cat.agencies)} agencies, "
        f"{len(cat.datasets)} datasets, {len(cat.mappings)} mappings, "
        f"{len(cat.sharing_lists)} list version(s) (v{cat.current_list.version}: {entries} "
        f"entries), {len(cat.regions)} region codes"
    )
    click.echo(f"signatures OK: every list version approved by its providers, consumers and "
               f"the governance office, each naming the one before; {len(cat.keys)} keys")
    dev = sorted(k.id for k in cat.keys.values() if k.development)
    if dev:
        click.echo(f"warning: development keys (private halves in the repository, refused by "
                   f"a worker without SHULIAN_ALLOW_DEV_KEYS=1): {', '.join(dev)}", err=True)


@catalog.command()
@click.option("--write", is_flag=True, help="Write the generated files instead of comparing.")
@catalog_option
@_schemas_option
@click.pass_context
@friendly_errors
def schemas(
    ctx: click.Context, write: bool, catalog_dir: Path | None, schemas_dir: Path | None
) -> None:
    """Generate schemas/canonical/<dataset>.avsc from the catalogue's datasets.

    Without --write, compares the committed files with the generated ones and exits 1 when any
    differs; with --write, rewrites the files that differ.
    """
    root, schemas_root = _dirs(ctx, catalog_dir, schemas_dir)
    out = schemas_root / "canonical"
    stale: list[Path] = []
    for dataset, schema in sorted(build_canonical_schemas(root, schemas_dir=schemas_root).items()):
        path = out / f"{dataset}.avsc"
        text = schema_text(schema)
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            continue
        stale.append(path)
        if write:
            out.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            click.echo(f"wrote {path}")
        else:
            click.echo(f"out of date: {path}", err=True)
    if stale and not write:
        sys.exit(1)
    if not stale:
        click.echo("canonical schemas are up to date")


_LIST_COLUMNS = {
    "agencies": ("id", "name", "region", "publishes", "receives"),
    "datasets": ("id", "name", "version", "key", "fields", "providers"),
    "elements": ("id", "name", "type", "standard"),
    "consumers": ("entry", "consumer_name", "dataset", "provider", "share_type", "masks",
                  "valid_to"),
}


def _cell(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return "\n".join(f"{k}: {v}" for k, v in value.items())
    return str(value)


@catalog.command("list")
@click.argument("what", type=click.Choice(["all", *KINDS]), default="all")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              help="Output format; json carries every column [default table]")
@catalog_option
@_schemas_option
@click.pass_context
@friendly_errors
def list_(ctx: click.Context, what: str, fmt: str, catalog_dir: Path | None,
          schemas_dir: Path | None) -> None:
    """Agencies, datasets, data elements and consumers (the list in force) in tables.

    WHAT is one of all (default), agencies, datasets, elements, consumers. Consumers are the
    entries of the newest list version: who receives which dataset from whom, how (share
    type), with which masks (with their parameters) and until when.
    """
    root, schemas = _dirs(ctx, catalog_dir, schemas_dir)
    cat = load_catalog(root, schemas_dir=schemas)
    kinds = KINDS if what == "all" else (what,)
    found = {k: listing.rows(cat, k) for k in kinds}
    if fmt == "json":
        doc = found if what == "all" else found[what]
        click.echo(json.dumps(doc, ensure_ascii=False, indent=2))
        return
    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ  # a pipe: no folding
    out = Console(soft_wrap=False, width=160 if wide else None)
    for kind, rows in found.items():
        title = kind if kind != "consumers" else (
            f"consumers (sharing list v{cat.current_list.version})")
        table = Table(title=title)
        for col in _LIST_COLUMNS[kind]:
            table.add_column(col.replace("_name", ""), overflow="fold")
        for r in rows:
            table.add_row(*(_cell(r[c]) for c in _LIST_COLUMNS[kind]))
        out.print(table)
