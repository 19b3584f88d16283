"""The shared CLI options (shulian/cli/common.py): one variable name each, old names still read
with a deprecation line."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from shulian.cli.common import window_options
from shulian.cli.replay import replay


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


def _drill_params(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> dict[str, object]:
    for name in ("SHULIAN_NAMESPACE", "SHULIAN_DRILL_NAMESPACE", "SHULIAN_SOURCE_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return replay.commands["drill"].make_context("drill", ["--from", "-1h", "--to", "now"]).params


def test_a_drill_works_in_shulian_namespace_and_reads_its_source_from_its_own_name(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    params = _drill_params(monkeypatch, {"SHULIAN_NAMESPACE": "d1",
                                         "SHULIAN_SOURCE_NAMESPACE": "s1"})
    assert (params["namespace"], params["source_namespace"]) == ("d1", "s1")
    assert "deprecated" not in capsys.readouterr().err


def test_the_old_drill_names_keep_their_meaning_with_a_deprecation_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # before: SHULIAN_DRILL_NAMESPACE the drill's namespace, SHULIAN_NAMESPACE its source
    params = _drill_params(monkeypatch, {"SHULIAN_DRILL_NAMESPACE": "d1",
                                         "SHULIAN_NAMESPACE": "s1"})
    assert (params["namespace"], params["source_namespace"]) == ("d1", "s1")
    assert "SHULIAN_DRILL_NAMESPACE is deprecated" in capsys.readouterr().err
