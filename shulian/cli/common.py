"""Shared CLI plumbing: settings from options with SHULIAN_* fallbacks, logging, errors, and the
options several commands take, defined once (one name, one variable, one help text each).

Help style, every option of every command: ``<what> [env SHULIAN_X, default Y]`` (either part
left out when there is none); ``tests/unit/test_cli_help.py`` holds it."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from shulian.audit.window import Window
from shulian.errors import ConfigError, ConfigIssue, ShulianError
from shulian.log import configure_logging
from shulian.settings import Settings, load_settings

F = TypeVar("F", bound=Callable[..., Any])

engine_option = click.option(
    "--engine", type=click.Choice(["tansu", "kafka"]), default=None,
    envvar="SHULIAN_BROKER_ENGINE",
    help="Broker: tansu, the embedded one (no JVM), or kafka, Apache Kafka in KRaft mode with "
         "its jars resolved by Maven on first use (needs java and mvn) "
         "[env SHULIAN_BROKER_ENGINE, default tansu]")
"""``--engine``: which broker a command starts (its clients follow, Settings.behaviour)."""


def settings_from(ctx: click.Context, *, probe_broker: bool | None = None,
                  **overrides: Any) -> Settings:
    """Settings for this command: environment first, then the options the user gave.

    A command that takes ``--bootstrap`` (``bootstrap_servers`` among the overrides) talks to
    the broker: it is probed first (``probe_broker`` overrides that), so an unreachable one
    is a single clear error naming --bootstrap and SHULIAN_BOOTSTRAP_SERVERS in seconds."""
    settings = load_settings(**overrides)
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    if probe_broker if probe_broker is not None else "bootstrap_servers" in overrides:
        from shulian.io.kafka import require_broker

        require_broker(settings)
    return settings


def friendly_errors(fn: F) -> F:
    """Turn Shulian's own errors into a clear message and exit code 2 (config) or 1 (infra)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except ShulianError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def bootstrap_option(fn: F) -> F:
    return click.option(
        "--bootstrap",
        "bootstrap_servers",
        envvar="SHULIAN_BOOTSTRAP_SERVERS",
        default=None,
        help="Kafka bootstrap servers [env SHULIAN_BOOTSTRAP_SERVERS, default 127.0.0.1:9092]",
    )(fn)


def registry_option(fn: F) -> F:
    return click.option(
        "--registry-url",
        envvar="SHULIAN_REGISTRY_URL",
        default=None,
        help="Schema registry URL [env SHULIAN_REGISTRY_URL, default http://127.0.0.1:8081]",
    )(fn)


def renamed_env(new: str, old: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """An option callback for an ``envvar`` list holding both names: a value taken from the
    old name still works, with a deprecation line on stderr (logging is not set up while
    options parse, and stdout may be a CSV)."""

    def check(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if (param.name and ctx.get_parameter_source(param.name) is ParameterSource.ENVIRONMENT
                and os.environ.get(old)):
            click.echo(f"warning: {old} is deprecated; set {new} instead", err=True)
        return value

    return check


def catalog_option(fn: F) -> F:
    """``--catalog``: the catalogue folder."""
    return click.option(
        "--catalog", "catalog_dir", type=click.Path(file_okay=False, path_type=Path),
        envvar="SHULIAN_CATALOG_DIR", default=None,
        help="Catalogue folder [env SHULIAN_CATALOG_DIR, default ./catalog]")(fn)


def connectors_option(fn: F) -> F:
    """``--connectors``: the connector configs (a folder or a list file)."""
    return click.option(
        "--connectors", "connectors_dir", type=click.Path(path_type=Path),
        envvar="SHULIAN_CONNECTORS_DIR", default=None,
        help="Connector configs: a folder or list file [env SHULIAN_CONNECTORS_DIR, default "
             "connectors/examples/up.list]")(fn)


NAMESPACE_ENV = "SHULIAN_NAMESPACE"


def namespace_option(fn: F) -> F:
    """``--namespace``: the topic prefix of an isolated chain (a drill's), None = production."""
    return click.option(
        "--namespace", envvar=NAMESPACE_ENV, default=None,
        help="Topic prefix of an isolated chain, e.g. a drill's [env SHULIAN_NAMESPACE, "
             "default none: the production topics]")(fn)


def window_options(*, required: bool) -> Callable[[F], F]:
    """``--from``/``--to``: a time window (:class:`shulian.audit.window.Window`), from
    SHULIAN_AUDIT_FROM/SHULIAN_AUDIT_TO (SHULIAN_REPLAY_FROM/_TO still read, deprecated)."""
    bound = "" if required else ", default unbounded"

    def apply(fn: F) -> F:
        fn = click.option(
            "--to", "end", envvar=["SHULIAN_AUDIT_TO", "SHULIAN_REPLAY_TO"], required=required,
            default=None, metavar="TIME",
            callback=renamed_env("SHULIAN_AUDIT_TO", "SHULIAN_REPLAY_TO"),
            help="Window end: ISO 8601 (zone optional, default Asia/Shanghai), 'now' or "
                 f"relative (-15m) [env SHULIAN_AUDIT_TO{bound}]")(fn)
        return click.option(
            "--from", "start", envvar=["SHULIAN_AUDIT_FROM", "SHULIAN_REPLAY_FROM"],
            required=required, default=None, metavar="TIME",
            callback=renamed_env("SHULIAN_AUDIT_FROM", "SHULIAN_REPLAY_FROM"),
            help=f"Window start, same forms as --to [env SHULIAN_AUDIT_FROM{bound}]")(fn)

    return apply


def window_of(start: str | None, end: str | None) -> Window:
    """The window ``--from``/``--to`` give; a bad TIME is a ConfigError naming them."""
    try:
        return Window.parse(start, end)
    except ValueError as exc:
        raise ConfigError([ConfigIssue("command line", "--from/--to", str(exc))]) from None
