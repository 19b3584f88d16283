"""Bad configuration is refused at start-up with file, field and why, before connecting
anywhere: ``shulian catalog check``, ``shulian worker`` (subprocess) and ``shulian connect
check`` / ``connect run`` (subprocess).

The broker and registry addresses given to the subprocesses are a listening socket of the
test's own: a process that refuses "before connecting anywhere" leaves its accept queue empty.
A bad list version arriving on a running worker's control topic is covered by
tests/integration/test_chain_e2e.py::test_list_change_mid_stream_is_applied_and_audited
(``sharing_list.refused``, the last good version stays in force); the loader's individual
checks by tests/unit/test_catalog_load.py and tests/unit/test_connect_config.py.
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from shulian.cli.main import cli
from shulian.settings import REPO_ROOT


@dataclass(frozen=True)
class Case:
    id: str
    file: str  # relative to the tree
    old: str
    new: str
    expect: str  # "file: field: why" prefix as printed


CATALOGUE_CASES = [
    Case("unknown_field", "catalog/elements.yaml", "    max_length: 64\n",
         "    max_length: 64\n    colour: blue\n",
         "catalog/elements.yaml: elements.15.colour: unknown field"),
    Case("wrong_type", "catalog/datasets/household_change.yaml", "version: 1", "version: one",
         "catalog/datasets/household_change.yaml: version: must be a valid integer"),
    Case("dangling_reference", "catalog/sharing/list.v2.yaml", "    consumer: tax\n",
         "    consumer: irs\n",
         "catalog/sharing/list.v2.yaml: entries.0.consumer: unknown agency 'irs'"),
    Case("mask_misfit", "catalog/sharing/list.v2.yaml", "      legal_rep_id: {type: hmac}\n",
         "      legal_rep_id: {type: hmac}\n      enterprise_name: {type: truncate_date, "
         "to: year}\n",
         "catalog/sharing/list.v2.yaml: entries.0.masks.enterprise_name: mask 'truncate_date' "
         "does not fit element type 'text'"),
    Case("bad_cel", "catalog/sharing/list.v2.yaml", 'record.status == "1"',
         'record.status == ("1"',
         "catalog/sharing/list.v2.yaml: entries.1.row_filter: not a valid CEL expression"),
]


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A listening TCP socket that never accepts: connections would wait in its queue."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield s
    s.close()


def connected(s: socket.socket) -> bool:
    readable, _, _ = select.select([s], [], [], 0.2)
    return bool(readable)


def broken_tree(tmp_path: Path, case: Case) -> Path:
    shutil.copytree(REPO_ROOT / "catalog", tmp_path / "catalog")
    shutil.copytree(REPO_ROOT / "schemas", tmp_path / "schemas")
    path = tmp_path / case.file
    text = path.read_text(encoding="utf-8")
    assert case.old in text, f"{case.old!r} not in {case.file}"
    path.write_text(text.replace(case.old, case.new, 1), encoding="utf-8")
    return tmp_path


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shulian.cli.main", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("case", CATALOGUE_CASES, ids=[c.id for c in CATALOGUE_CASES])
def test_catalog_check_and_worker_refuse(case: Case, tmp_path: Path,
                                         listener: socket.socket) -> None:
    tree = broken_tree(tmp_path, case)
    # the clean copy is fine until the edit: the edit alone breaks it
    env = {**os.environ, "SHULIAN_CATALOG_DIR": str(tree / "catalog"),
           "SHULIAN_SCHEMAS_DIR": str(tree / "schemas")}
    res = CliRunner().invoke(cli, ["catalog", "check"], env=env)
    assert res.exit_code == 2, res.output
    lines = res.output.splitlines()
    assert any(line.startswith(case.expect) for line in lines), res.output

    port = listener.getsockname()[1]
    worker_env = {**env, "SHULIAN_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
                  "SHULIAN_REGISTRY_URL": f"http://127.0.0.1:{port}",
                  "SHULIAN_HMAC_MASTER_KEY": "k" * 32, "SHULIAN_METRICS_PORT": "0"}
    proc = run_cli(["worker", "--namespace", "badcfg"], worker_env, tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert case.expect in proc.stderr, proc.stderr
    assert not connected(listener), "the worker connected before refusing its configuration"


def test_the_unbroken_copy_passes(tmp_path: Path) -> None:
    """Control: the copied example catalogue is clean, so each case's edit is what breaks it."""
    shutil.copytree(REPO_ROOT / "catalog", tmp_path / "catalog")
    shutil.copytree(REPO_ROOT / "schemas", tmp_path / "schemas")
    res = CliRunner().invoke(cli, ["catalog", "check"], env={
        "SHULIAN_CATALOG_DIR": str(tmp_path / "catalog"),
        "SHULIAN_SCHEMAS_DIR": str(tmp_path / "schemas")})
    assert res.exit_code == 0, res.output


CONNECTOR_CASES = [
    ("unknown_field", "name: d\ntype: file_drop\nagency: psb\ndataset: household_change\n"
     "directory: in\ncolour: blue\n", "drop.yaml: colour: unknown field"),
    ("wrong_type", "name: d\ntype: file_drop\nagency: psb\ndataset: household_change\n"
     "directory: in\nchunk_lines: lots\n", "drop.yaml: chunk_lines: must be a valid integer"),
    ("dangling_env_reference", "name: s\ntype: postgres\ntopics: [egress.tax.business_licence]\n"
     "dsn_env: SHULIAN_TEST_SURELY_UNSET_DSN\ntable: t\n",
     "drop.yaml: dsn_env: environment variable SHULIAN_TEST_SURELY_UNSET_DSN is not set"),
    ("unknown_type", "name: d\ntype: ftp\n", "drop.yaml: type: unknown connector type 'ftp'"),
]


@pytest.mark.parametrize(("text", "expect"), [c[1:] for c in CONNECTOR_CASES],
                         ids=[c[0] for c in CONNECTOR_CASES])
def test_connect_check_and_run_refuse(text: str, expect: str, tmp_path: Path,
                                      listener: socket.socket) -> None:
    (tmp_path / "in").mkdir()
    path = tmp_path / "drop.yaml"
    path.write_text(text, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "SHULIAN_TEST_SURELY_UNSET_DSN"}
    res = CliRunner().invoke(cli, ["connect", "check", str(path)], env=env)
    assert res.exit_code == 2, res.output
    assert expect in res.output, res.output
    port = listener.getsockname()[1]
    proc = run_cli(["connect", "run", "--bootstrap", f"127.0.0.1:{port}", "--registry-url",
                    f"http://127.0.0.1:{port}", str(path)], env, tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert expect in proc.stderr
    assert not connected(listener), "connect run connected before refusing its configuration"
