"""Every command of the one CLI answers --help."""

from __future__ import annotations

import click
from click.testing import CliRunner

from shulian.cli.main import cli


def _walk(group: click.Group, path: list[str]) -> list[list[str]]:
    out = [path]
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            out.extend(_walk(cmd, [*path, name]))
        else:
            out.append([*path, name])
    return out


def test_every_command_has_help() -> None:
    runner = CliRunner()
    paths = _walk(cli, [])
    assert {"broker", "up", "demo", "registry", "init", "worker"} <= {p[0] for p in paths if p}
    for path in paths:
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output


def _options() -> list[tuple[str, click.Option]]:
    out: list[tuple[str, click.Option]] = []
    for path in _walk(cli, []):
        cmd: click.Command = cli
        for name in path:
            assert isinstance(cmd, click.Group)
            cmd = cmd.commands[name]
        out.extend((" ".join(path), p) for p in cmd.params if isinstance(p, click.Option))
    return out


def test_every_option_says_env_and_default_one_way() -> None:
    """One help style (shulian/cli/common.py): ``<what> [env SHULIAN_X, default Y]``, never
    click's own ``[default: ...]`` next to it, nor ``(default: ...)``."""
    wrong = []
    for where, opt in _options():
        text = opt.help or ""
        envs = [opt.envvar] if isinstance(opt.envvar, str) else list(opt.envvar or [])
        if opt.show_default or "(default" in text or "default:" in text:
            wrong.append(f"{where} {opt.opts[0]}: default not as '[..., default Y]'")
        if envs and not any(f"[env {e}" in text for e in envs):
            wrong.append(f"{where} {opt.opts[0]}: reads {envs[0]} but its help does not say so")
    assert wrong == []


# the variable each shared option reads in every command (cli/common.py)
SHARED_ENV = {"--catalog": "SHULIAN_CATALOG_DIR", "--namespace": "SHULIAN_NAMESPACE",
              "--from": "SHULIAN_AUDIT_FROM", "--to": "SHULIAN_AUDIT_TO",
              "--registry-url": "SHULIAN_REGISTRY_URL", "--bootstrap": "SHULIAN_BOOTSTRAP_SERVERS",
              "--connectors": "SHULIAN_CONNECTORS_DIR", "--engine": "SHULIAN_BROKER_ENGINE"}
# demo --bootstrap means "play into this running stack instead of starting one": a variable of
# its own, so SHULIAN_BOOTSTRAP_SERVERS set for other commands does not change what demo does
OWN_ENV = {("demo", "--bootstrap")}


def test_an_option_reads_the_same_variable_in_every_command() -> None:
    wrong = []
    for where, opt in _options():
        name = opt.opts[0]
        envs = [opt.envvar] if isinstance(opt.envvar, str) else list(opt.envvar or [])
        if name in SHARED_ENV and (where, name) not in OWN_ENV and SHARED_ENV[name] not in envs:
            wrong.append(f"{where} {name}: reads {envs or 'no variable'}, not {SHARED_ENV[name]}")
    assert wrong == []
