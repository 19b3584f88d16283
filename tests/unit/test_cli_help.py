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
