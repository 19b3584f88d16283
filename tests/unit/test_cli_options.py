"""The shared CLI options (shulian/cli/common.py): one variable name each, old names still read
with a deprecation line."""

from __future__ import annotations

import click
from click.testing import CliRunner

from shulian.cli.common import window_options


@click.command()
@window_options(required=False)
def _show(start: str | None, end: str | None) -> None:
    click.echo(f"{start}|{end}")


def test_window_reads_the_audit_names() -> None:
    env = {"SHULIAN_AUDIT_FROM": "-1h", "SHULIAN_AUDIT_TO": "now"}
    out = CliRunner().invoke(_show, [], env=env)
    assert out.exit_code == 0 and out.stdout == "-1h|now\n" and "deprecated" not in out.output


def test_the_old_replay_names_still_work_with_a_deprecation_line() -> None:
    out = CliRunner().invoke(_show, [], env={"SHULIAN_REPLAY_FROM": "-2h"})
    assert out.exit_code == 0 and out.stdout.startswith("-2h|None")
    assert "SHULIAN_REPLAY_FROM is deprecated; set SHULIAN_AUDIT_FROM" in out.stderr


def test_an_option_given_wins_over_both_names() -> None:
    out = CliRunner().invoke(_show, ["--from", "-5m"],
                             env={"SHULIAN_AUDIT_FROM": "-1h", "SHULIAN_REPLAY_FROM": "-2h"})
    assert out.stdout.startswith("-5m|") and "deprecated" not in out.stderr
