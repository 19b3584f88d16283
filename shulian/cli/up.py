"""``shulian up``: the whole embedded stack in one process tree."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import FrameType

import click
from pydantic import SecretStr

from shulian.cli.common import catalog_option, engine_option, friendly_errors, settings_from
from shulian.embedded.secure_stack import ADMIN, INIT_PRINCIPAL, StackSecurity
from shulian.embedded.stack import (
    STACK_LIST,
    ConnectorPlan,
    Endpoints,
    PortUse,
    busy_ports,
    connector_configs,
    stack_children,
    stack_master_key,
)
from shulian.embedded.supervisor import ChildDied, ChildSpec, StopRequested, Supervisor
from shulian.errors import ConfigError, ConfigIssue
from shulian.log import get_logger
from shulian.perimeter.devstack import apply_perimeter, prepare_security
from shulian.settings import Settings

log = get_logger(__name__)

DEFAULT_POSTGRES_PORT = 5433  # beside, not on, a PostgreSQL the machine may already run
UNAUTHENTICATED = ("note: Tansu enforces no authentication or ACLs: this stack is unauthenticated, "
                   "for a single developer machine only (--engine kafka runs the secured stack)")


def initialise(settings: Settings) -> None:
    """Topics (explicit partition counts) and schemas from schemas/, before any worker starts.

    The same step as ``shulian init``; idempotent, so a restart of ``up`` repeats it safely.
    """
    from shulian.catalog.load import load_catalog
    from shulian.chain.topology import Topology
    from shulian.io.setup import init_topology

    catalog = load_catalog(settings.catalog_dir, schemas_dir=settings.schemas_dir)
    report = init_topology(settings, catalog, Topology.from_settings(settings))
    click.echo(f"initialised: {report.topics} topics, {report.subjects} schema subjects")


def endpoints_table(endpoints: Endpoints, *, running: set[str],
                    extra: list[tuple[str, str]] | None = None) -> str:
    """One line per endpoint; those whose child is not part of this stack say so."""
    served_by = {"gateway": "connect", "metrics": "worker", "console": "console"}
    rows = []
    for k, v in [*endpoints.rows(), *(extra or [])]:
        child = served_by.get(k.split()[0])
        if child is not None and child not in running:
            v = f"{v} (not running: no {k.split()[0]} in this stack)"
        rows.append((k, v))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)


@dataclass(frozen=True)
class RunDirs:
    """Where a run keeps its logs, connector state and database (folders 0700, logs 0600);
    ``temporary``: made for this run (no --data-dir): its connector state (dropped files,
    outputs) and database are removed when the stack stops, its logs kept."""

    base: Path
    temporary: bool

    @property
    def logs(self) -> Path:
        return self.base / "logs"

    @property
    def state(self) -> Path:
        return self.base / "state"

    @property
    def postgres(self) -> Path:
        return self.base / "postgres"

    def make_private(self) -> None:
        """The run's folders, 0700: connector state holds dropped files with personal data."""
        for d in (self.base, self.logs, self.state):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
            d.chmod(0o700)

    def clean_up(self) -> str:
        """After a stop: a temporary run's state (dropped files, outputs) and database are
        removed, its logs kept; a data dir is kept whole. What happened, in words."""
        if not self.temporary:
            return f"data kept in {self.base} (mode 0700)"
        shutil.rmtree(self.state, ignore_errors=True)
        shutil.rmtree(self.postgres, ignore_errors=True)
        shutil.rmtree(self.base / "kafka", ignore_errors=True)  # a secured broker's data
        return (f"connector state and database of this run removed; logs kept in {self.logs} "
                "(mode 0700)")

    @classmethod
    def for_settings(cls, settings: Settings) -> RunDirs:
        if settings.data_dir is not None:
            return cls(settings.data_dir.resolve(), temporary=False)
        return cls(Path(tempfile.mkdtemp(prefix="shulian-up-")), temporary=True)


def postgres_child(dirs: RunDirs, port: int) -> tuple[ChildSpec, str]:
    """The stack's own PostgreSQL (initialised on first use) and its DSN."""
    from shulian.embedded.postgres import PgCluster, answers

    cluster = PgCluster.prepare(dirs.postgres, port=port)
    spec = ChildSpec("postgres", cluster.serve_argv(), ready=partial(answers, cluster.dsn),
                     ready_timeout_s=60.0, stop_timeout_s=30.0)
    return spec, cluster.dsn


def console_tokens(settings: Settings) -> tuple[Settings, dict[str, str]]:
    """Dev tokens for the console's governance office and auditor where unset (shown once)."""
    made: dict[str, str] = {}
    update: dict[str, SecretStr] = {}
    for field in ("console_governance_token", "console_auditor_token"):
        if getattr(settings, field) is None:
            token = secrets.token_urlsafe(24)
            made[f"SHULIAN_{field.upper()}"] = token
            update[field] = SecretStr(token)
    return settings.model_copy(update=update), made
def stack_ports(settings: Settings, children: list[ChildSpec], *, postgres_port: int | None,
                gateway: bool) -> list[PortUse]:
    """The ports the children of this run will listen on (``gateway``: a gateway connector
    runs on the stack's gateway port; ``postgres_port``: the stack starts its own PostgreSQL
    there)."""
    names = {c.name for c in children}
    uses = [PortUse("broker", "127.0.0.1", settings.broker_port, "--broker-port",
                    "SHULIAN_BROKER_PORT")]
    if "registry" in names:
        uses.append(PortUse("schema registry", settings.registry_host, settings.registry_port,
                            "--registry-port", "SHULIAN_REGISTRY_PORT"))
    if "worker" in names:
        uses.append(PortUse("worker metrics", settings.metrics_host, settings.metrics_port,
                            "--metrics-port", "SHULIAN_METRICS_PORT"))
    if gateway and "connect" in names:
        uses.append(PortUse("gateway", settings.gateway_host, settings.gateway_port,
                            "--gateway-port", "SHULIAN_GATEWAY_PORT"))
    if "console" in names:
        uses.append(PortUse("console", settings.console_host, settings.console_port,
                            "--console-port", "SHULIAN_CONSOLE_PORT"))
    if postgres_port is not None:
        uses.append(PortUse("PostgreSQL", "127.0.0.1", postgres_port, "--postgres-port",
                            "SHULIAN_POSTGRES_PORT"))
    return uses


def print_credentials(security: StackSecurity) -> None:
    """The development secrets made by this run, once, on stdout (never logged)."""
    click.echo(f"Kafka and registry credentials in {security.credentials} (mode 0600; each "
               f"child is given its own; CA {security.ca_file}; the broker's super user "
               f"{ADMIN}: secret in {security.admin_secret_file})")
    if security.generated:
        click.echo("development secrets made by this run (shown once):")
        for name, secret in sorted(security.generated.items()):
            click.echo(f"  {name}={secret.get_secret_value()}")


def print_tokens(plan: ConnectorPlan) -> None:
    """The dev gateway tokens, once, on stdout (never logged; the gateway keeps only hashes)."""
    if not plan.generated_tokens:
        return
    click.echo("gateway tokens for this run (their variables were unset; shown once, "
               "the gateway keeps only their SHA-256):")
    for var, token in plan.generated_tokens.items():
        click.echo(f"  {var}={token}")


@click.command("up")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              envvar="SHULIAN_DATA_DIR",
              help="Keep broker data, connector state and the stack's database under DIR "
                   "(survives a restart) [env SHULIAN_DATA_DIR, default none: memory and a "
                   "temporary directory]")
@click.option("--broker-port", type=int, default=None, envvar="SHULIAN_BROKER_PORT",
              help="Broker port [env SHULIAN_BROKER_PORT, default 9092]")
@click.option("--registry-port", type=int, default=None, envvar="SHULIAN_REGISTRY_PORT",
              help="Schema registry port [env SHULIAN_REGISTRY_PORT, default 8081]")
@click.option("--gateway-port", type=int, default=None, envvar="SHULIAN_GATEWAY_PORT",
              help="Gateway port [env SHULIAN_GATEWAY_PORT, default 8088]")
@click.option("--metrics-port", type=int, default=None, envvar="SHULIAN_METRICS_PORT",
              help="Worker metrics port [env SHULIAN_METRICS_PORT, default 9464]")
@click.option("--console-port", type=int, default=None, envvar="SHULIAN_CONSOLE_PORT",
              help="Web console port [env SHULIAN_CONSOLE_PORT, default 8090]")
@catalog_option
@click.option("--connectors", "connectors", type=click.Path(path_type=Path), default=None,
              envvar="SHULIAN_CONNECTORS_DIR",
              help=f"Connector configs to run: a list file, a folder with {STACK_LIST}, or a "
                   f"folder whose *.yaml all run; an empty folder runs none "
                   f"[env SHULIAN_CONNECTORS_DIR, default connectors/examples ({STACK_LIST})]")
@click.option("--postgres-dsn", default=None, envvar="SHULIAN_POSTGRES_DSN",
              help="Use this PostgreSQL for the PostgreSQL sinks whose dsn_env is unset instead "
                   "of starting one [env SHULIAN_POSTGRES_DSN]")
@click.option("--postgres-port", type=int, default=None, envvar="SHULIAN_POSTGRES_PORT",
              help="Port of the stack's own PostgreSQL on 127.0.0.1 "
                   f"[env SHULIAN_POSTGRES_PORT, default {DEFAULT_POSTGRES_PORT}]")
@engine_option
@click.pass_context
@friendly_errors
def up(ctx: click.Context, data_dir: Path | None, broker_port: int | None,
       registry_port: int | None, gateway_port: int | None, metrics_port: int | None,
       console_port: int | None, catalog_dir: Path | None, connectors: Path | None,
       postgres_dsn: str | None, postgres_port: int | None, engine: str | None) -> None:
    """Run the embedded stack until Ctrl-C or SIGTERM.

    Broker, schema registry, the stack's PostgreSQL (when a PostgreSQL sink needs one), topics
    and schemas, chain worker and connectors, in that order, each started once the one before
    is ready. Connector configs are checked first: the stack supplies ${SHULIAN_STATE_DIR} (its
    state folder), a dev token for every unset gateway token_env (printed once) and its
    database's DSN for every unset PostgreSQL-sink dsn_env; anything else missing stops `up`
    before it starts, naming the file and field. A child that dies is restarted after a
    backoff (1 s doubling to 30 s; given up on after 5 deaths within a minute, the rest keeps
    running); only the broker's or the registry's death stops the whole stack (exit code 1).
    Ctrl-C or SIGTERM stops every child in reverse order and prints the restarts.
    """
    if connectors is not None and not connectors.exists():
        raise ConfigError([ConfigIssue(str(connectors), "--connectors",
                                       "no such connector folder or list file")])
    settings = settings_from(
        ctx, data_dir=data_dir, broker_port=broker_port, registry_port=registry_port,
        gateway_port=gateway_port, metrics_port=metrics_port, console_port=console_port,
        catalog_dir=catalog_dir, connectors_dir=connectors, broker_engine=engine,
    )
    endpoints = Endpoints.from_settings(settings)
    settings = settings.model_copy(update={
        "bootstrap_servers": endpoints.bootstrap, "registry_url": endpoints.registry_url})
    root = ctx.find_root().command
    commands = set(root.commands) if isinstance(root, click.Group) else set()

    dirs = RunDirs.for_settings(settings)
    dirs.make_private()
    settings = settings.model_copy(update={"stack_status_file": dirs.base / "status.json"})
    settings, key_file = stack_master_key(
        settings, state_dir=None if dirs.temporary else dirs.state)
    pg_port = postgres_port or DEFAULT_POSTGRES_PORT
    stack_dsn = postgres_dsn or f"postgresql://postgres@127.0.0.1:{pg_port}/postgres"
    plan: ConnectorPlan | None = None
    if "connect" in commands:
        from shulian.connectors.plan import plan_connectors

        plan = plan_connectors(
            connector_configs(settings), environ=os.environ, state_dir=dirs.state,
            stack_dsn=stack_dsn, gateway_host=settings.gateway_host,
            gateway_port=settings.gateway_port)
        for d in plan.directories:
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
    console_made: dict[str, str] = {}
    if "console" in commands:
        settings, console_made = console_tokens(settings)
    wants_pg = plan is not None and plan.wants_stack_postgres and postgres_dsn is None
    busy = busy_ports(stack_ports(
        settings, stack_children(settings, endpoints, commands=commands, connectors=plan),
        postgres_port=pg_port if wants_pg else None,
        gateway=plan is not None and plan.gateway_url is not None))
    if busy is not None:  # before anything starts (or a database is initialised)
        if dirs.temporary:
            shutil.rmtree(dirs.base, ignore_errors=True)
        raise busy
    pg_spec: ChildSpec | None = None
    if wants_pg:
        pg_spec, stack_dsn = postgres_child(dirs, pg_port)
    security = None
    if settings.broker_engine == "kafka":
        security = prepare_security(settings, state_dir=dirs.state,
                                    broker_data=settings.data_dir or dirs.base)
    children = stack_children(settings, endpoints, commands=commands, connectors=plan,
                              postgres=pg_spec, security=security)

    if security is None:
        click.echo(UNAUTHENTICATED)
    else:
        print_credentials(security)
    click.echo(f"logs in {dirs.logs}")
    if plan is not None:
        print_tokens(plan)
    if console_made:
        click.echo("console tokens for this run (shown once; the console keeps their SHA-256):")
        click.echo("\n".join(f"  {var}={token}" for var, token in console_made.items()))
    if key_file is not None:
        click.echo(f"HMAC master key in {key_file} (for audit and replay tools: "
                   f"export SHULIAN_HMAC_MASTER_KEY=$(cat {key_file}))")
    elif settings.hmac_master_key is not None and "SHULIAN_HMAC_MASTER_KEY" not in os.environ:
        click.echo("HMAC master key for this run (pseudonyms change with it; shown once; keep "
                   "a stable one with --data-dir or SHULIAN_HMAC_MASTER_KEY):\n"
                   f"  SHULIAN_HMAC_MASTER_KEY={settings.hmac_master_key.get_secret_value()}")
    sup = Supervisor(log_dir=dirs.logs, notify=partial(click.echo, err=True),
                     status_file=settings.stack_status_file)
    click.echo(f"children's state and restarts in {sup.status_file}")

    def on_signal(signum: int, frame: FrameType | None) -> None:
        sup.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    code = 0
    try:
        sup.start_all(c for c in children if c.name == "broker")
        if security is not None:  # every principal and ACL before anyone connects
            click.echo(apply_perimeter(settings, security))
        sup.start_all(c for c in children if not c.needs_init and c.name != "broker")
        initialise(settings if security is None
                   else security.settings_as(settings, INIT_PRINCIPAL.name))
        sup.start_all(c for c in children if c.needs_init)
        running = {c.name for c in sup.children}
        extra: list[tuple[str, str]] = []
        if plan is not None and plan.stack_dsn_vars:
            extra.append(("postgres", f"{stack_dsn}  ({', '.join(plan.stack_dsn_vars)})"))
        if plan is not None and "connect" in running:
            extra.append(("connectors", ", ".join(p.name for p in plan.paths)))
            extra.append(("state", str(dirs.state)))
        click.echo("stack ready:\n" + endpoints_table(endpoints, running=running, extra=extra))
        click.echo("children: " + ", ".join(c.name for c in sup.children))
        code = sup.watch()
        if sup.died is not None:
            click.echo(f"error: {sup.died}; stopping the stack ({kept(settings)})", err=True)
    except StopRequested:
        click.echo("stopped while starting", err=True)
    except ChildDied as exc:
        click.echo(f"error: {exc}; stopping the stack ({kept(settings)})", err=True)
        code = 1
    finally:
        restarts = sup.restart_counts()
        sup.stop_all()
        click.echo(dirs.clean_up(), err=True)
        if restarts:
            counts = ", ".join(f"{name} {n}" for name, n in restarts.items())
            click.echo(f"restarts: {counts}", err=True)
        click.echo("stack stopped", err=True)
    sys.exit(code)


def kept(settings: Settings) -> str:
    """What happens to the broker's data when the stack stops, in words."""
    if settings.data_dir is not None:
        return f"the broker's data is kept in {settings.data_dir}"
    return "the broker kept its data in memory: it is lost (use --data-dir to keep it)"
