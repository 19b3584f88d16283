"""``shulian demo --bootstrap``: the demo's scenario played into a stack that is already
running (here a real worker on the session broker and registry, in a namespace of its own),
counting only what each run added and leaving the stack running for the audit tools."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from shulian.cli.main import cli
from tests.fixtures.chain import StartChain, chain_outcome

pytestmark = pytest.mark.integration


def _drop_log_dir(out: str) -> None:
    found = re.search(r"demo log in (/\S+shulian-demo-[^\s)]+)\)", out)
    if found:
        shutil.rmtree(Path(found.group(1)), ignore_errors=True)


def _decisions(out: str) -> int:
    found = re.search(r"audit: (\d+) decisions in \d+ hash-chained partitions, 0 breaks", out)
    assert found, out[-2000:]
    return int(found.group(1))


def test_demo_plays_into_a_running_stack_and_counts_only_its_own_records(
        start_chain: StartChain) -> None:
    env = start_chain()
    args = ["demo", "--bootstrap", env.settings.bootstrap_servers,
            "--registry", env.settings.registry_url, "--namespace", env.namespace,
            "--records", "48", "--garbage", "2", "--seed", "7", "--timeout", "120"]
    runner = CliRunner()
    first = runner.invoke(cli, args, env={"COLUMNS": "120"})
    assert first.exit_code == 0, first.output
    assert "published 48 records from 4 agency datasets" in first.output
    assert "playing into the running stack" in first.output
    _drop_log_dir(first.output)
    second = runner.invoke(cli, args, env={"COLUMNS": "120"})
    _drop_log_dir(second.output)
    assert second.exit_code == 0, second.output
    assert _decisions(second.output) == _decisions(first.output) > 0  # only this run's
    assert env.worker.running  # nothing was stopped
    out = chain_outcome(env)
    assert out.decisions == 2 * _decisions(first.output) and not out.chain_breaks
    dead = runner.invoke(cli, ["deadletters", "--bootstrap", env.settings.bootstrap_servers,
                               "--namespace", env.namespace, "--format", "csv"])
    assert dead.exit_code == 0, dead.output
    assert len(dead.output.splitlines()) - 1 == out.dead
