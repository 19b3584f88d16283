"""``shulian acl``: the perimeter's Kafka ACLs, derived from the catalogue, the connector configs
and the list in force (docs/SECURITY.md). ``plan`` and ``matrix`` need no broker; ``apply``,
``check`` and ``sync`` run with administrator credentials (SHULIAN_PRINCIPAL + SHULIAN_SECRET_FILE
of a broker super user)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from shulian.cli.common import bootstrap_option, friendly_errors, settings_from
from shulian.errors import ConfigError, ConfigIssue


def _common(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--connectors", "connectors_dir", type=click.Path(path_type=Path),
                      envvar="SHULIAN_CONNECTORS_DIR", default=None,
                      help="Connector configs: a folder or list file [env "
                           "SHULIAN_CONNECTORS_DIR, default connectors/examples/up.list]")(fn)
    fn = click.option("--catalog", "catalog_dir", type=click.Path(file_okay=False,
                                                                  path_type=Path),
                      envvar="SHULIAN_CATALOG_DIR", default=None,
                      help="Catalogue folder [env SHULIAN_CATALOG_DIR, default ./catalog]")(fn)
    return fn


@click.group("acl")
def acl() -> None:
    """Kafka ACLs and SCRAM users of every agency and component, derived, never hand-written."""


@acl.command("plan")
@_common
@click.option("--list-version", type=int, default=None,
              help="List version in force [default: the newest in the catalogue]")
@click.option("--namespace", default=None, help="Plan for a drill namespace's topics")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Output format")
@click.pass_context
@friendly_errors
def plan(ctx: click.Context, catalog_dir: Path | None, connectors_dir: Path | None,
         list_version: int | None, namespace: str | None, fmt: str) -> None:
    """Print every ACL binding (principal, permission, operation, resource, pattern)."""
    from shulian.perimeter.service import load_plan, plan_json, plan_table

    settings = settings_from(ctx, catalog_dir=catalog_dir, connectors_dir=connectors_dir)
    p = load_plan(settings, list_version=list_version, namespace=namespace)
    if fmt == "json":
        click.echo(plan_json(p))
    else:
        click.echo(f"# list version {p.list_version}, {len(p.identities.principals)} principals,"
                   f" {len(p.acls)} bindings")
        click.echo(plan_table(p.acls))


@acl.command("matrix")
@_common
@click.pass_context
@friendly_errors
def matrix(ctx: click.Context, catalog_dir: Path | None, connectors_dir: Path | None) -> None:
    """Print who may read (R/r) and write (W/w) each topic family, as a markdown table."""
    from shulian.perimeter.service import load_matrix_markdown

    settings = settings_from(ctx, catalog_dir=catalog_dir, connectors_dir=connectors_dir)
    click.echo(load_matrix_markdown(settings))


def _secrets(settings: Any, names: list[str]) -> Any:
    from shulian.perimeter.identities import Principal, load_credentials

    if settings.credentials_dir is None:
        raise ConfigError([ConfigIssue("<environment>", "SHULIAN_CREDENTIALS_DIR",
                                       "needed: the folder holding every principal's secret")])
    principals = [p for p in (Principal.parse(n) for n in names) if p is not None]
    return load_credentials(settings.credentials_dir, principals)


@acl.command("apply")
@bootstrap_option
@_common
@click.option("--rotate", multiple=True, metavar="PRINCIPAL",
              help="Replace this principal's SCRAM credential with the secret on file")
@click.pass_context
@friendly_errors
def apply(ctx: click.Context, bootstrap_servers: str | None, catalog_dir: Path | None,
          connectors_dir: Path | None, rotate: tuple[str, ...]) -> None:
    """Reconcile the cluster to the plan under the list in force (the catalogue's newest, then
    the signed versions on the control topic): add missing ACLs and SCRAM users, remove
    Shulian's that the plan no longer has. Idempotent."""
    from shulian.io.kafka import admin_client
    from shulian.perimeter.kafka_admin import reconcile
    from shulian.perimeter.service import load_live_plan

    settings = settings_from(ctx, bootstrap_servers=bootstrap_servers, catalog_dir=catalog_dir,
                             connectors_dir=connectors_dir)
    p = load_live_plan(settings)
    done = reconcile(admin_client(settings), p, _secrets(settings, p.identities.names()),
                     rotate=rotate)
    click.echo(f"list version {p.list_version}: {len(done.acls.add)} ACL(s) added, "
               f"{len(done.acls.remove)} removed, {len(done.scram.create)} SCRAM user(s) set, "
               f"{len(done.scram.delete)} deleted")


@acl.command("check")
@bootstrap_option
@_common
@click.pass_context
@friendly_errors
def check(ctx: click.Context, bootstrap_servers: str | None, catalog_dir: Path | None,
          connectors_dir: Path | None) -> None:
    """Exit 1 when the cluster's ACLs or SCRAM users differ from the plan (prints the drift)."""
    from shulian.io.kafka import admin_client
    from shulian.perimeter.kafka_admin import check as check_drift
    from shulian.perimeter.service import load_live_plan, plan_table

    settings = settings_from(ctx, bootstrap_servers=bootstrap_servers, catalog_dir=catalog_dir,
                             connectors_dir=connectors_dir)
    p = load_live_plan(settings)
    drift = check_drift(admin_client(settings), p)
    if drift.empty:
        click.echo(f"no drift: the cluster matches the plan (list version {p.list_version})")
        return
    for title, acls in (("missing", drift.acls.add), ("unexpected", drift.acls.remove)):
        if acls:
            click.echo(f"{title} ACLs:\n{plan_table(acls)}")
    for title, users in (("missing", drift.scram.create), ("unexpected", drift.scram.delete)):
        if users:
            click.echo(f"{title} SCRAM users: {', '.join(users)}")
    sys.exit(1)


@acl.command("sync")
@bootstrap_option
@_common
@click.pass_context
@friendly_errors
def sync(ctx: click.Context, bootstrap_servers: str | None, catalog_dir: Path | None,
         connectors_dir: Path | None) -> None:
    """Follow the control topic and reconcile whenever the list in force changes (until
    Ctrl-C or SIGTERM)."""
    import signal

    from shulian.perimeter.service import load_inputs
    from shulian.perimeter.sync import follow

    settings = settings_from(ctx, bootstrap_servers=bootstrap_servers, catalog_dir=catalog_dir,
                             connectors_dir=connectors_dir)
    catalog, access, identities = load_inputs(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    follow(settings, catalog, access, _secrets(settings, identities.names()), stop=stop)


@acl.command("credentials")
@_common
@click.option("--owner", type=int, default=None, metavar="UID",
              help="Give the folder and the secrets to this user (run as root: the Shulian "
                   "image's user, 10001)")
@click.pass_context
@friendly_errors
def credentials(ctx: click.Context, catalog_dir: Path | None,
                connectors_dir: Path | None, owner: int | None) -> None:
    """Create a random secret (mode 0600) in SHULIAN_CREDENTIALS_DIR for every principal that
    has none (development and first set-up; prints names, never secrets)."""
    from shulian.perimeter.identities import generate_credentials
    from shulian.perimeter.service import load_inputs

    settings = settings_from(ctx, catalog_dir=catalog_dir, connectors_dir=connectors_dir)
    if settings.credentials_dir is None:
        raise ConfigError([ConfigIssue("<environment>", "SHULIAN_CREDENTIALS_DIR", "not set")])
    _, _, identities = load_inputs(settings)
    made = generate_credentials(settings.credentials_dir, identities.principals)
    if owner is not None:
        import os

        for path in (settings.credentials_dir, *settings.credentials_dir.iterdir()):
            os.chown(path, owner, -1)
    click.echo(f"{len(made)} new secret(s) in {settings.credentials_dir}"
               + (f": {', '.join(made)}" if made else ""))


@acl.command("pki")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Folder for ca.pem and node-keystore.pem")
@click.option("--host", "hosts", multiple=True, required=True,
              help="A name or IP the brokers are reached at (repeat: every node's host name "
                   "and the external one)")
@click.option("--days", type=click.IntRange(1, 3650), default=365, show_default=True,
              help="Validity of the CA and node certificates")
@click.option("--keystore-owner", type=int, default=None, metavar="UID",
              help="Give the keystore to this user (run as root: the brokers' user, 1000 in "
                   "the apache/kafka image)")
@friendly_errors
def pki(out_dir: Path, hosts: tuple[str, ...], days: int, keystore_owner: int | None) -> None:
    """Make the brokers' TLS material once (development and first set-up): a CA (ca.pem, the
    file every client trusts) and the nodes' keystore (key and chain, mode 0600), whose
    certificate the nodes present to each other and to clients. Keeps existing material; the
    CA's key is not kept. Production uses the operator's own CA (docs/SECURITY.md)."""
    import datetime as dt

    from shulian.embedded.kafka_config import NODE_CN
    from shulian.perimeter.tls import make_broker_pki

    keystore = out_dir / "node-keystore.pem"
    if keystore.exists():
        click.echo(f"kept the existing TLS material in {out_dir}")
        return
    files = make_broker_pki(out_dir, now=dt.datetime.now(dt.UTC), node_cn=NODE_CN,
                            hosts=hosts, days=days)
    out_dir.chmod(0o755)  # the CA is for everyone; the keystore stays 0600
    files.ca_cert.chmod(0o644)
    if keystore_owner is not None:
        import os

        os.chown(files.keystore, keystore_owner, -1)
    click.echo(f"CA {files.ca_cert}, node keystore {files.keystore} (CN={NODE_CN}, "
               f"hosts {', '.join(hosts)})")
