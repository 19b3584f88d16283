"""Shared CLI plumbing: settings from options with SHULIAN_* fallbacks, logging, errors."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from shulian.errors import ConfigError, ShulianError
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
