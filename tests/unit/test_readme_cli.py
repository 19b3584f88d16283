"""README's CLI table lists every command and subcommand of the click tree, and nothing else;
README points at the benchmarks and says how long the suite takes."""

from __future__ import annotations

import re

import click

from shulian.cli.main import cli
from shulian.settings import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def _tree() -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for name, cmd in cli.commands.items():
        if isinstance(cmd, click.Group):
            out |= {(name, sub) for sub in cmd.commands}
        else:
            out.add((name,))
    return out


def _readme_table() -> set[tuple[str, ...]]:
    section = README.split("| command | what it does |", 1)[1].split("\n\n", 1)[0]
    out: set[tuple[str, ...]] = set()
    for cell in re.findall(r"^\| `shulian ([^`]+)`", section, flags=re.MULTILINE):
        words = [w for w in cell.split() if not w.startswith(("-", "[")) and w.upper() != w]
        name = words[0]
        group = cli.commands.get(name)
        if isinstance(group, click.Group):
            assert len(words) > 1, f"README names group {name} without its subcommands"
            out |= {(name, sub) for sub in words[1].split("\\|")}
        else:
            out.add((name,))
    return out


def test_cli_table_lists_every_command() -> None:
    table, tree = _readme_table(), _tree()
    assert not tree - table, f"commands missing from README's CLI table: {sorted(tree - table)}"
    assert not table - tree, f"README lists commands that do not exist: {sorted(table - tree)}"


def test_readme_points_at_benchmarks_and_says_how_long_the_tests_take() -> None:
    assert "still to come" not in README
    assert "docs/BENCHMARKS.md" in README and (REPO_ROOT / "docs" / "BENCHMARKS.md").is_file()
    assert "pytest tests/unit" in README
    assert re.search(r"full suite takes about \d+ minutes", README)
