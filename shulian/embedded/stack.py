"""What ``shulian up`` runs: the endpoints of the embedded stack and its children, as data.

To add a child, append a :class:`ChildSpec` in :func:`stack_children`, guarded by the name of
the ``shulian`` command it runs (``if "worker" in commands``), so ``up`` keeps working on a tree
where that command does not exist yet. Children configure themselves from SHULIAN_* variables
(:func:`child_env`), so an argv rarely needs more than the command name.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from pydantic import SecretStr

from shulian.embedded.net import http_answers, port_free
from shulian.embedded.secure_stack import StackSecurity, secured_broker_answers
from shulian.embedded.supervisor import ChildSpec
from shulian.embedded.tansu import broker_answers_metadata
from shulian.errors import ConfigError, ConfigIssue
from shulian.settings import Settings

STACK_LIST = "up.list"  # in a connectors directory: the configs ``shulian up`` runs


@dataclass(frozen=True)
class Endpoints:
    bootstrap: str
    registry_url: str
    gateway_url: str
    metrics_url: str
    console_url: str = ""

    @classmethod
    def from_settings(cls, settings: Settings, *, host: str = "127.0.0.1") -> Endpoints:
        return cls(
            bootstrap=f"{host}:{settings.broker_port}",
            registry_url=f"http://{settings.registry_host}:{settings.registry_port}",
            gateway_url=f"http://{settings.gateway_host}:{settings.gateway_port}",
            metrics_url=f"http://{host}:{settings.metrics_port}/metrics",
            console_url=f"http://{settings.console_host}:{settings.console_port}",
        )

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("bootstrap servers", self.bootstrap),
            ("schema registry", self.registry_url),
            ("gateway", self.gateway_url),
            ("metrics", self.metrics_url),
            *([("console", self.console_url)] if self.console_url else []),
        ]


def shulian_argv(*args: str) -> tuple[str, ...]:
    """Run a ``shulian`` subcommand with the same interpreter as this process."""
    script = Path(sys.executable).parent / "shulian"
    if script.exists():
        return (str(script), *args)
    return (sys.executable, "-c", "from shulian.cli.main import main; main()", *args)


def child_env(settings: Settings, endpoints: Endpoints) -> dict[str, str]:
    """SHULIAN_* variables every child reads: where the broker and the registry are."""
    return {
        "SHULIAN_BOOTSTRAP_SERVERS": endpoints.bootstrap,
        "SHULIAN_REGISTRY_URL": endpoints.registry_url,
        "SHULIAN_REGISTRY_HOST": settings.registry_host,
        "SHULIAN_REGISTRY_PORT": str(settings.registry_port),
        "SHULIAN_CATALOG_DIR": str(settings.catalog_dir),
        "SHULIAN_SCHEMAS_DIR": str(settings.schemas_dir),
        "SHULIAN_LOG_FORMAT": "json",
        "SHULIAN_ALLOW_DEV_KEYS": "1" if settings.allow_dev_keys else "0",
        "SHULIAN_CLOCK": settings.clock,
        "SHULIAN_BROKER_ENGINE": settings.broker_engine,
    } | ({"SHULIAN_HMAC_MASTER_KEY": settings.hmac_master_key.get_secret_value()}
         if settings.hmac_master_key is not None else {}) | (
        {"SHULIAN_STACK_STATUS_FILE": str(settings.stack_status_file)}
        if settings.stack_status_file is not None else {})


def stack_master_key(settings: Settings, *, state_dir: Path | None) -> tuple[Settings, Path | None]:
    """The HMAC master key of a dev stack: the configured one, else one kept in
    ``state_dir/hmac-master.key`` (mode 0600, made on first use) so pseudonyms stay stable
    across restarts of a ``--data-dir`` stack, else (no state dir) a fresh one for this run.
    Returns the settings carrying the key and the key file, if any. A dev stack also accepts
    the catalogue's development signing keys (catalog/dev-keys)."""
    settings = settings.model_copy(update={"allow_dev_keys": True})
    if settings.hmac_master_key is not None:
        return settings, None
    key_file = state_dir / "hmac-master.key" if state_dir is not None else None
    if key_file is not None and key_file.exists():
        key = key_file.read_text("utf-8").strip()
    else:
        key = secrets.token_hex(32)
        if key_file is not None:
            key_file.parent.mkdir(parents=True, exist_ok=True)
            key_file.touch(mode=0o600)
            key_file.write_text(key + "\n", "utf-8")
    return settings.model_copy(update={"hmac_master_key": SecretStr(key)}), key_file


def dev_token() -> str:
    """A gateway token the stack makes up for a connector whose token variable is unset."""
    return secrets.token_urlsafe(24)


def _registry_ready(url: str) -> bool:
    import httpx

    # 401: a registry that checks credentials (the secured stack) answers too
    return httpx.get(f"{url}/subjects", timeout=1.0).status_code in (200, 401)


def connector_configs(settings: Settings) -> list[Path]:
    """The connector configs the stack runs, from ``settings.connectors_dir``:

    - a list file: the configs it names, one per line, relative to the list file (``#``
      comments and blank lines ignored);
    - a directory holding ``up.list``: that list;
    - any other directory: every ``*.yaml``/``*.yml`` in it (an empty one: no connectors).

    A missing path means no connectors (``shulian up`` refuses one it was given explicitly); a
    config named by a list file that does not exist is a ConfigError naming the list and line.
    """
    target = settings.connectors_dir
    if target.is_dir() and (target / STACK_LIST).is_file():
        target = target / STACK_LIST
    if target.is_dir():
        return sorted(p for p in target.iterdir() if p.suffix in (".yaml", ".yml"))
    if not target.is_file():
        return []
    paths: list[Path] = []
    issues: list[ConfigIssue] = []
    for n, line in enumerate(target.read_text(encoding="utf-8").splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        path = (target.parent / entry).resolve()
        if not path.is_file():
            issues.append(ConfigIssue(str(target), f"line {n}", f"no such config file {entry}"))
        paths.append(path)
    if issues:
        raise ConfigError(issues)
    return paths


@dataclass(frozen=True)
class ConnectorPlan:
    """What the ``connect`` child of the stack needs, worked out before anything starts."""

    paths: tuple[Path, ...]
    env: Mapping[str, str]  # extra environment of the connect child (secrets included)
    generated_tokens: Mapping[str, str]  # env var -> dev token made up for this run
    stack_dsn_vars: tuple[str, ...]  # postgres sinks' dsn_env variables given the stack's DSN
    directories: tuple[Path, ...]  # to create before the connectors start
    gateway_url: str | None  # the connect child is ready when this answers

    @property
    def wants_stack_postgres(self) -> bool:
        return bool(self.stack_dsn_vars)


@dataclass(frozen=True)
class PortUse:
    """A port the stack will listen on, and how a user moves it."""

    what: str
    host: str
    port: int
    option: str  # e.g. "--broker-port"
    variable: str  # e.g. "SHULIAN_BROKER_PORT"


def busy_ports(uses: Sequence[PortUse], *, free: Callable[[str, int], bool] = port_free
               ) -> ConfigError | None:
    """Every port of ``uses`` that cannot be bound now, as one ConfigError naming each port,
    what wanted it and the option and variable that move it; None when all are free. Checked
    before anything starts (``shulian up``), so a busy port never leaves half a stack."""
    issues = [ConfigIssue("command line", u.option,
                          f"port {u.port} on {u.host} ({u.what}) is in use; choose another "
                          f"with {u.option} or {u.variable}")
              for u in uses if u.port != 0 and not free(u.host, u.port)]
    return ConfigError(issues) if issues else None


def stack_children(
    settings: Settings, endpoints: Endpoints, *, commands: Collection[str],
    connectors: ConnectorPlan | None = None, postgres: ChildSpec | None = None,
    security: StackSecurity | None = None,
) -> list[ChildSpec]:
    """The children of ``shulian up`` in start order; only those whose command exists.

    ``needs_init`` children start after topics and schemas are initialised. ``connectors``:
    the planned connector set (default: :func:`connector_configs`, environment as it is);
    ``postgres``: the stack's own database, started before the connectors; ``security``: the
    secured Kafka stack's files (each child then connects as its own principal, and an
    ``acl-sync`` child moves the ACLs with the list versions).
    """
    env = child_env(settings, endpoints)

    def own(child: str) -> dict[str, str]:
        return {**env, **(security.child_env(child) if security is not None else {})}

    broker_argv = ["broker", "--engine", settings.broker_engine,
                   "--port", str(settings.broker_port)]
    broker_ready: Callable[[], bool]
    if security is not None:
        broker_argv += security.broker_args()
        broker_ready = partial(secured_broker_answers, endpoints.bootstrap, security)
    else:
        broker_ready = partial(broker_answers_metadata, endpoints.bootstrap)
        if settings.data_dir is not None:
            broker_argv += ["--data-dir", str(settings.data_dir)]
    children = [
        ChildSpec(
            "broker", shulian_argv(*broker_argv), env=env,
            ready=broker_ready,
            ready_timeout_s=120.0,
            stop_timeout_s=30.0,  # a durable broker stops SeaweedFS too (5 s grace + kill)
            critical=True,  # every other child needs it: its death stops the stack
        ),
    ]
    if "registry" in commands:
        children.append(ChildSpec(
            "registry",
            shulian_argv("registry", "--bootstrap", endpoints.bootstrap,
                         "--port", str(settings.registry_port)),
            env=own("registry"), ready=partial(_registry_ready, endpoints.registry_url),
            ready_timeout_s=60.0, critical=True,
        ))
    if "worker" in commands:
        children.append(ChildSpec(
            "worker", shulian_argv("worker"),
            env={**own("worker"), "SHULIAN_WORKER_ID": settings.worker_id,
                 "SHULIAN_METRICS_PORT": str(settings.metrics_port)},
            needs_init=True, stop_timeout_s=20.0,
        ))
    if security is not None and "acl" in commands:
        children.append(ChildSpec(
            "acl-sync", shulian_argv("acl", "sync"),
            env={**own("acl-sync"), "SHULIAN_CONNECTORS_DIR": str(settings.connectors_dir)},
            needs_init=True, stop_timeout_s=20.0))
    if postgres is not None:
        children.append(postgres)
    if "console" in commands:
        children.append(console_child(settings, endpoints, own("console"), connectors))
    if "connect" not in commands:
        return children
    if connectors is None:
        configs: Sequence[Path] = connector_configs(settings)
        extra: Mapping[str, str] = {}
        ready = None
    else:
        configs, extra = connectors.paths, connectors.env
        url = connectors.gateway_url
        ready = None if url is None else partial(http_answers, url)
    if configs:
        children.append(ChildSpec(
            "connect", shulian_argv("connect", "run", *map(str, configs)),
            env={**own("connect"), **extra},
            ready=ready, needs_init=True, stop_timeout_s=20.0,
        ))
    return children


def console_child(settings: Settings, endpoints: Endpoints, env: Mapping[str, str],
                  connectors: ConnectorPlan | None) -> ChildSpec:
    """The web console: agencies log in with the gateway tokens the connectors get, the
    governance office and auditors with their own (all passed in the environment)."""
    tokens = {f"SHULIAN_CONSOLE_{k.upper()}_TOKEN": v.get_secret_value() for k, v in
              (("governance", settings.console_governance_token),
               ("auditor", settings.console_auditor_token)) if v is not None}
    return ChildSpec(
        "console", shulian_argv("console"),
        env={**env, **(connectors.env if connectors is not None else {}), **tokens,
             "SHULIAN_CONNECTORS_DIR": str(settings.connectors_dir),
             "SHULIAN_CONSOLE_HOST": settings.console_host,
             "SHULIAN_CONSOLE_PORT": str(settings.console_port),
             "SHULIAN_GATEWAY_HOST": settings.gateway_host,
             "SHULIAN_GATEWAY_PORT": str(settings.gateway_port),
             "SHULIAN_METRICS_PORT": str(settings.metrics_port)},
        ready=partial(http_answers, f"{endpoints.console_url}/healthz"), needs_init=True,
    )
