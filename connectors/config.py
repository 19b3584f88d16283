"""Connector configs: YAML files validated into one discriminated union on ``type``.

One connector per file. ``load_connector_files`` raises :class:`~shulian.errors.ConfigError`
listing every problem as (file, field, why). Secrets are never in a file: a field whose name
ends in ``_env`` names an environment variable; :func:`missing_env` lists the unset ones and
:func:`env_secret` reads one as a ``SecretStr``.

Adding a connector type: one line in :data:`shulian.connectors.table.CONNECTORS` (its config model,
with ``type: Literal[...]``, and its class); the union below is built from that table.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Union

import yaml
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from shulian.connectors.sinks.config import env_secret
from shulian.connectors.table import CONNECTORS
from shulian.errors import ConfigError, ConfigIssue
from shulian.validation import validation_issues

__all__ = [
    "ConnectorConfig",
    "LoadedConnector",
    "env_refs",
    "env_secret",
    "load_connector_files",
    "missing_env",
    "parse_connector",
]

# every config model of the connector table, discriminated on ``type``
ConnectorConfig: Any = Annotated[
    Union[tuple(t.config for t in CONNECTORS.values())],  # noqa: UP007 - built from the table
    Field(discriminator="type"),
]

_ADAPTER: TypeAdapter[Any] = TypeAdapter(ConnectorConfig)


class LoadedConnector(BaseModel):
    """A validated config and the file it came from."""

    model_config = {"frozen": True, "arbitrary_types_allowed": True}

    path: Path
    config: Any  # one member of ConnectorConfig

    @property
    def name(self) -> str:
        return str(self.config.name)

    @property
    def type(self) -> str:
        return str(self.config.type)


UNSET_ENV = "environment variable "
SKIP_ENV_HINT = ("the environment variables hold secrets (tokens, passwords, DSNs) and paths "
                 "set where the connectors run; to check the files alone, run `shulian connect "
                 "check --skip-env` (or set SHULIAN_CONNECT_SKIP_ENV=1)")


def _env_refs(obj: Any, prefix: str) -> Iterable[tuple[str, str]]:
    """(field path, env var name) for every ``*_env`` field in a config, nested ones too."""
    if isinstance(obj, BaseModel):
        for name in type(obj).model_fields:
            value = getattr(obj, name)
            path = f"{prefix}{name}"
            if name.endswith("_env") and isinstance(value, str):
                yield path, value
            else:
                yield from _env_refs(value, path + ".")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _env_refs(v, f"{prefix}{k}.")
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            yield from _env_refs(v, f"{prefix}{i}.")


def env_refs(config: BaseModel) -> list[tuple[str, str]]:
    """(field path, env var name) for every ``*_env`` field of a config, nested ones too."""
    return list(_env_refs(config, ""))


def missing_env(config: BaseModel, *, file: str,
                env: Mapping[str, str] | None = None) -> list[ConfigIssue]:
    """An issue for every environment variable the config names that is not set in ``env``
    (default ``os.environ``)."""
    environ = os.environ if env is None else env
    return [ConfigIssue(file, path, f"environment variable {var} is not set")
            for path, var in _env_refs(config, "") if not environ.get(var)]


def parse_connector(data: Any, *, file: str, base_dir: Path | None = None,
                    env: Mapping[str, str] | None = None, strict_env: bool = True) -> Any:
    """Validate one parsed YAML document; ConfigError naming file and field on failure.

    ``env`` (default ``os.environ``) expands ``${NAME}`` in path fields; an unset name is an
    issue unless ``strict_env`` is false."""
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(file, "<root>", "expected a mapping with a 'type' key")])
    try:
        return _ADAPTER.validate_python(data, context={"base_dir": base_dir, "env": env,
                                                       "strict_env": strict_env})
    except ValidationError as exc:
        tag = str(data.get("type"))
        kinds = {e["type"] for e in exc.errors()}
        if "union_tag_invalid" in kinds:
            raise ConfigError([ConfigIssue(file, "type", f"unknown connector type {tag!r}; "
                                           f"expected one of {_types()}")]) from None
        if "union_tag_not_found" in kinds:
            raise ConfigError([ConfigIssue(file, "type",
                                           f"missing; expected one of {_types()}")]) from None
        raise ConfigError(validation_issues(exc, file=file, drop_first=tag)) from None


def _types() -> list[str]:
    return sorted(CONNECTORS)


def load_connector_files(
    paths: Iterable[str | Path], *, check_env: bool = True, env: Mapping[str, str] | None = None
) -> list[LoadedConnector]:
    """Every file validated; all problems of all files reported together in one ConfigError.

    ``check_env``: also report environment variables named by ``*_env`` fields (and ``${NAME}``
    in path fields) that are unset in ``env`` (default ``os.environ``).
    Connector names must be unique across the files.
    """
    loaded: list[LoadedConnector] = []
    issues: list[ConfigIssue] = []
    seen: dict[str, str] = {}
    for p in paths:
        path = Path(p)
        file = str(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            issues.append(ConfigIssue(file, "<file>", f"cannot read: {exc.strerror or exc}"))
            continue
        except UnicodeDecodeError:
            issues.append(ConfigIssue(file, "<file>", "not UTF-8 text"))
            continue
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            issues.append(ConfigIssue(file, "<file>", f"invalid YAML{where}"))
            continue
        try:
            config = parse_connector(data, file=file, base_dir=path.resolve().parent, env=env,
                                     strict_env=check_env)
        except ConfigError as exc:
            issues.extend(exc.issues)
            continue
        if check_env:
            issues.extend(missing_env(config, file=file, env=env))
        if config.name in seen:
            issues.append(ConfigIssue(file, "name", f"connector name {config.name!r} is also "
                                      f"used in {seen[config.name]}"))
        seen[config.name] = file
        loaded.append(LoadedConnector(path=path, config=config))
    if issues:
        unset = check_env and any(i.why.startswith(UNSET_ENV) for i in issues)
        raise ConfigError(issues, hint=SKIP_ENV_HINT if unset else None)
    return loaded
