"""``shulian sharing``: propose, sign, verify, publish, show, diff and history of list versions.

A version takes effect only with the signatures of every entry's provider and consumer agency
and of the governance office, plus the governance office's version signature naming the version
it supersedes (docs/SECURITY.md). Private keys are read from files named on the command line,
never from arguments or logs.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from shulian.cli.common import (
    bootstrap_option,
    catalog_option,
    friendly_errors,
    namespace_option,
    settings_from,
)
from shulian.settings import Settings

_file = click.argument("list_file", type=click.Path(dir_okay=False, exists=True,
                                                     path_type=Path))


def _catalog(settings: Settings) -> Any:
    from shulian.catalog.load import load_catalog

    return load_catalog(settings.catalog_dir, schemas_dir=settings.schemas_dir)


def _read(path: Path, catalog: Any) -> Any:
    from shulian.catalog.load import load_sharing_list_text

    return load_sharing_list_text(path.read_text(encoding="utf-8"), source=str(path),
                                  catalog=catalog)


def _predecessor(catalog: Any, sl: Any, previous: Path | None) -> Any:
    """The version ``sl`` must supersede: ``--previous``, else the catalogue's version before
    it, else the catalogue's newest (a proposal for the next version)."""
    from shulian.catalog.approval import supersedes

    if previous is not None:
        return supersedes(_read(previous, catalog))
    before = catalog.sharing_lists.get(sl.version - 1)
    if before is not None:
        return supersedes(before)
    if sl.version == 1:
        return None
    return supersedes(catalog.current_list)


@click.group("sharing")
def sharing() -> None:
    """The sharing-responsibility list (共享责任清单): approve, sign, publish, read."""


@sharing.command("propose")
@catalog_option
@_file
@click.option("--previous", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="The version this one supersedes [default the catalogue's "
              "newest]")
@click.pass_context
@friendly_errors
def propose(ctx: click.Context, catalog_dir: Path | None, list_file: Path,
            previous: Path | None) -> None:
    """Make LIST_FILE the proposal for the next version (rewritten in place).

    Sets its number to the next one and names the version it supersedes; keeps the entry
    signatures that still hold (unchanged entries), drops the others and the version signature.
    """
    from shulian.catalog.approval import supersedes, verify_version
    from shulian.catalog.keys import Keyring
    from shulian.catalog.listfile import with_approval
    from shulian.catalog.models import EntryId, EntrySignatures, ListSignatures

    settings = settings_from(ctx, catalog_dir=catalog_dir)
    catalog = _catalog(settings)
    before = _read(previous, catalog) if previous else catalog.current_list
    sl = _read(list_file, catalog)
    sl = sl.model_copy(update={"version": before.version + 1, "supersedes": supersedes(before)})
    keep: dict[EntryId, EntrySignatures] = {}
    why = verify_version(sl, Keyring(catalog.keys), predecessor=sl.supersedes)
    for eid, sigs in (sl.signatures.entries if sl.signatures else {}).items():
        held = {r: getattr(sigs, r) for r in ("provider", "consumer", "governance")
                if getattr(sigs, r) is not None
                and not any(w.startswith(f"entry {eid}: {r} signature") for w in why)}
        if held:
            keep[eid] = EntrySignatures(**held)
    sl = sl.model_copy(update={"signatures": ListSignatures(entries=keep)})
    list_file.write_text(with_approval(list_file.read_text(encoding="utf-8"), sl),
                         encoding="utf-8")
    click.echo(f"{list_file}: proposal for version {sl.version}, superseding v{before.version}; "
               f"{len(keep)} of {len(sl.entries)} entries keep signatures")


@sharing.command("sign")
@catalog_option
@_file
@click.option("--key", "key_file", required=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Your private key file (PEM or base64 seed); its public half must be in "
              "catalog/keys.yaml")
@click.option("--entry", "entries", multiple=True,
              help="Sign only this entry, repeatable [default every entry your agency is "
              "provider or consumer of]")
@click.option("--detached", is_flag=True,
              help="Leave LIST_FILE as it is; print each signature as '<what> <key id> "
              "<signature>' to paste into the console's sharing page")
@click.pass_context
@friendly_errors
def sign(ctx: click.Context, catalog_dir: Path | None, list_file: Path, key_file: Path,
         entries: tuple[str, ...], detached: bool) -> None:
    """Sign LIST_FILE with your key (rewritten in place, or printed with --detached).

    An agency's key signs the entries where the agency is provider or consumer; the
    governance office's key signs every entry and the version itself.
    """
    from shulian.catalog.approval import seal, sign_entries
    from shulian.catalog.keys import GOVERNANCE, Keyring, load_private_key
    from shulian.catalog.listfile import with_approval

    settings = settings_from(ctx, catalog_dir=catalog_dir)
    catalog = _catalog(settings)
    try:
        key = load_private_key(key_file, catalog.keys)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    owner = catalog.keys[key.key_id].owner
    sl = _read(list_file, catalog)
    why = Keyring(catalog.keys).unusable(key.key_id, owner=None, at=sl.published,
                                         now=datetime.now(UTC))
    if why:
        raise click.ClickException(f"cannot sign version {sl.version}: {why}")
    sl, done = sign_entries(sl, key, owner, entries)
    if owner == GOVERNANCE:
        sl = seal(sl, key)
        done.append("version")
    if not done:
        raise click.ClickException(f"key {key.key_id} ({owner}) has nothing to sign in "
                                   f"version {sl.version}")
    if detached:
        from shulian.catalog.approval import held_signature

        for target in done:
            sig = held_signature(sl, target)
            assert sig is not None
            click.echo(f"{target} {sig.key} {sig.sig}")
        return
    list_file.write_text(with_approval(list_file.read_text(encoding="utf-8"), sl),
                         encoding="utf-8")
    click.echo(f"{list_file}: signed by {key.key_id} ({owner}): {', '.join(done)}")


@sharing.command("verify")
@catalog_option
@_file
@click.option("--previous", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="The version it supersedes [default from the catalogue]")
@click.pass_context
@friendly_errors
def verify(ctx: click.Context, catalog_dir: Path | None, list_file: Path,
           previous: Path | None) -> None:
    """Check LIST_FILE's signatures and predecessor as a worker would.

    Exit 0 when it would take effect, 1 (listing every reason) when a worker would refuse it.
    """
    from shulian.catalog.approval import verify_version
    from shulian.catalog.keys import Keyring

    settings = settings_from(ctx, catalog_dir=catalog_dir)
    catalog = _catalog(settings)
    sl = _read(list_file, catalog)
    why = verify_version(sl, Keyring(catalog.keys),
                         predecessor=_predecessor(catalog, sl, previous), now=datetime.now(UTC))
    if why:
        for w in why:
            click.echo(f"{list_file}: {w}", err=True)
        click.echo(f"REFUSED: version {sl.version} would not take effect ({len(why)} "
                   "problem(s))", err=True)
        sys.exit(1)
    click.echo(f"OK: version {sl.version} is approved and signed ({len(sl.entries)} entries, "
               "3 signatures each, version signed by the governance office)")


@sharing.command("publish")
@bootstrap_option
@catalog_option
@_file
@namespace_option
@click.pass_context
@friendly_errors
def publish(ctx: click.Context, bootstrap_servers: str | None, catalog_dir: Path | None,
            list_file: Path, namespace: str | None) -> None:
    """Publish LIST_FILE as a new list version on the control topic.

    Running workers apply it from their next batch on, if it is approved and signed and names
    the version in force; the audit names the version.
    """
    from shulian.chain.topology import Topology
    from shulian.io.control import publish_list

    settings = settings_from(ctx, bootstrap_servers=bootstrap_servers, catalog_dir=catalog_dir)
    catalog = _catalog(settings)
    sl = _read(list_file, catalog)
    why = publish_list(settings, catalog, list_file.read_text(encoding="utf-8"), sl,
                       topic=Topology.from_settings(settings, namespace).control,
                       now=datetime.now(UTC))
    if why:
        raise click.ClickException("not published, workers would refuse it: " + "; ".join(why))
    click.echo(f"published list version {sl.version} ({len(sl.entries)} entries)")


def _history(settings: Settings, catalog: Any, namespace: str | None) -> Any:
    from shulian.catalog.describe import history
    from shulian.chain.topology import Topology
    from shulian.io.control import published_versions

    topic = Topology.from_settings(settings, namespace).control
    return history(catalog, published_versions(settings, catalog, topic), now=None)[0]


@sharing.command("show")
@bootstrap_option
@catalog_option
@namespace_option
@click.option("--version", "version", type=int, default=None,
              help="This version instead of the one in force")
@click.option("--file", "list_file", default=None,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Show a list file (e.g. a proposal) instead")
@click.pass_context
@friendly_errors
def show(ctx: click.Context, bootstrap_servers: str | None, catalog_dir: Path | None,
         namespace: str | None, version: int | None, list_file: Path | None) -> None:
    """The version in force, in words: who gets which fields of what, masked how, why, until
    when. The version in force is the newest accepted one (catalogue, then control topic)."""
    from shulian.catalog.describe import describe, in_force

    settings = settings_from(ctx, bootstrap_servers=bootstrap_servers, catalog_dir=catalog_dir)
    catalog = _catalog(settings)
    if list_file is not None:
        sl = _read(list_file, catalog)
    else:
        items = _history(settings, catalog, namespace)
        if version is None:
            sl = in_force(items)
        else:
            found = [i.sharing_list for i in items if i.version == version
                     and i.status == "accepted"]
            if not found:
                known = sorted({i.version for i in items if i.status == "accepted"})
                raise click.ClickException(f"no accepted version {version}; known: {known}")
            sl = found[-1]
    for line in describe(sl, catalog):
        click.echo(line)


@sharing.command("diff")
@catalog_option
@click.argument("old")
@click.argument("new")
@click.pass_context
@friendly_errors
def diff(ctx: click.Context, catalog_dir: Path | None, old: str, new: str) -> None:
    """What changed from OLD to NEW (each a list file or a catalogue version number)."""
    from shulian.catalog.describe import diff as list_diff

    settings = settings_from(ctx, catalog_dir=catalog_dir)
    catalog = _catalog(settings)

    def get(arg: str) -> Any:
        if arg.isdigit():
            if int(arg) not in catalog.sharing_lists:
                raise click.ClickException(f"no catalogue version {arg}; known: "
                                           f"{sorted(catalog.sharing_lists)}")
            return catalog.sharing_lists[int(arg)]
        return _read(Path(arg), catalog)

    a, b = get(old), get(new)
    lines = list_diff(a, b)
    click.echo(f"v{a.version} -> v{b.version}: {len(lines)} change(s)")
    for line in lines:
        click.echo(line)


@sharing.command("history")
@bootstrap_option
@catalog_option
@namespace_option
@click.pass_context
@friendly_errors
def history_cmd(ctx: click.Context, bootstrap_servers: str | None, catalog_dir: Path | None,
                namespace: str | None) -> None:
    """Every version: the catalogue's, then each one published on the control topic, with
    what a worker did with it (accepted, already accepted, refused and why)."""
    settings = settings_from(ctx, bootstrap_servers=bootstrap_servers, catalog_dir=catalog_dir)
    catalog = _catalog(settings)
    for item in _history(settings, catalog, namespace):
        v = "?" if item.version is None else f"v{item.version}"
        click.echo(f"{item.source}: {v} {item.status}")
        for why in item.reasons:
            click.echo(f"    {why}")
