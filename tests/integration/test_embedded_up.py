"""``shulian up`` as a user runs it: ready with endpoints, stops cleanly, stops on a dead broker
or registry, restarts any other child that dies."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from shulian.cli.up import UNAUTHENTICATED
from shulian.embedded.net import free_port, http_answers, wait_until
from shulian.embedded.process import pids_with_env
from shulian.embedded.tansu import broker_answers_metadata
from tests.fixtures.up import MARK, SHULIAN, cmdline, running_up

EXAMPLES = Path(__file__).resolve().parents[2] / "connectors" / "examples"


@contextmanager
def stack(
    tmp_path: Path, mark: str
) -> Iterator[tuple[subprocess.Popen[bytes], Path, dict[str, int]]]:
    ports = {"broker": free_port(), "registry": free_port(), "metrics": free_port()}
    out = tmp_path / "up.out"
    no_connectors = tmp_path / "no-connectors"  # these tests are about the core children
    no_connectors.mkdir()
    args = ["--broker-port", str(ports["broker"]), "--registry-port", str(ports["registry"]),
            "--metrics-port", str(ports["metrics"]), "--connectors", str(no_connectors)]
    env = {**os.environ, MARK: mark, "SHULIAN_LOG_FORMAT": "json"}
    with running_up(args, env=env, out=out, mark=mark, leftover_timeout_s=10) as proc:
        yield proc, out, ports


def test_up_serves_its_endpoints_and_stops_on_sigterm_leaving_nothing(
    tmp_path: Path, unique: str
) -> None:
    with stack(tmp_path, unique) as (proc, out, ports):
        text = out.read_text()
        bootstrap = f"127.0.0.1:{ports['broker']}"
        registry = f"http://127.0.0.1:{ports['registry']}"
        assert bootstrap in text and registry in text
        # Tansu enforces nothing: one line says so, and nothing claims credentials
        assert [line for line in text.splitlines() if "unauthenticated" in line] == \
            [UNAUTHENTICATED]
        assert "credentials" not in text and "perimeter:" not in text
        assert broker_answers_metadata(bootstrap, timeout_s=5)
        subjects = httpx.get(f"{registry}/subjects", timeout=5).json()
        assert subjects, "up registered the schemas from schemas/"
        tree = [cmdline(p) for p in pids_with_env(MARK, unique)]
        assert any("tansu" in c[0] for c in tree if c)
        assert any("registry" in c for c in tree)
        found = re.search(r"logs in (\S+)", text)
        assert found is not None
        logs = Path(found[1])
        assert logs.stat().st_mode & 0o777 == 0o700
        modes = {f.name: f.stat().st_mode & 0o777 for f in logs.iterdir()}
        assert {"broker.log", "registry.log", "worker.log"} <= set(modes)
        assert set(modes.values()) == {0o600}, modes
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0
        text = out.read_text()
        assert "stack stopped" in text
    assert "XDG_RUNTIME_DIR" not in text
    assert "connector state and database of this run removed; logs kept in" in text
    assert not (logs.parent / "state").exists()
    tansu_logs = re.search(r"logs in (/\S+shulian-broker-\S+)", (logs / "broker.log").read_text())
    assert tansu_logs is not None and not Path(tansu_logs[1]).exists()


def test_a_child_dying_is_reported_and_brings_the_stack_down(tmp_path: Path, unique: str) -> None:
    with stack(tmp_path, unique) as (proc, out, _):
        registry = [p for p in pids_with_env(MARK, unique) if "registry" in cmdline(p)]
        assert len(registry) == 1
        os.kill(registry[0], signal.SIGKILL)
        code = proc.wait(timeout=120)
        text = out.read_text()
        assert code != 0
        assert "registry exited unexpectedly with code -9" in text
        assert "the broker kept its data in memory: it is lost (use --data-dir" in text
        assert '"event": "child.died"' in text


def test_a_connect_child_killed_under_up_is_restarted(tmp_path: Path, unique: str) -> None:
    listed = tmp_path / "up.list"
    listed.write_text(f"{EXAMPLES / 'source-gateway.yaml'}\n")
    gateway = free_port()
    args = ["--broker-port", str(free_port()), "--registry-port", str(free_port()),
            "--metrics-port", str(free_port()), "--gateway-port", str(gateway),
            "--console-port", str(free_port()), "--connectors", str(listed),
            "--data-dir", str(tmp_path / "data")]
    env = {**{k: v for k, v in os.environ.items() if not k.endswith("_TOKEN")}, MARK: unique,
           "SHULIAN_LOG_FORMAT": "json"}
    out = tmp_path / "up.out"
    status = tmp_path / "data" / "status.json"

    def connect_pids() -> list[int]:
        return [p for p in pids_with_env(MARK, unique)
                if {"connect", "run"} <= set(cmdline(p))]

    with running_up(args, env=env, out=out, mark=unique, leftover_timeout_s=10) as proc:
        first = connect_pids()
        assert first, [cmdline(p) for p in pids_with_env(MARK, unique)]
        os.killpg(first[0], signal.SIGKILL)
        assert wait_until(lambda: '"restarts": 1' in status.read_text(), timeout_s=60), \
            out.read_text()[-3000:]
        assert wait_until(lambda: http_answers(f"http://127.0.0.1:{gateway}/healthz"),
                          timeout_s=60), out.read_text()[-3000:]
        assert proc.poll() is None
        assert set(connect_pids()).isdisjoint(first)
        text = out.read_text()
        assert "connect exited with code -9; restarting in 1 s" in text
        assert '"event": "child.restarted"' in text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0
        text = out.read_text()
        assert "restarts: broker 0, registry 0, worker 0, " in text and "connect 1" in text
        assert f"data kept in {tmp_path / 'data'} (mode 0700)" in text
        assert "XDG_RUNTIME_DIR" not in text
        assert "stack stopped" in text
    assert (tmp_path / "data").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "data" / "state").stat().st_mode & 0o777 == 0o700


def test_a_connector_whose_requirements_are_unmet_stops_up_before_anything_starts(
    tmp_path: Path, unique: str
) -> None:
    """The PSB table source needs PSB_SOURCE_DSN, which the stack cannot supply: refused."""
    listed = tmp_path / "up.list"
    listed.write_text(f"{EXAMPLES / 'source-gateway.yaml'}\n{EXAMPLES / 'source-psb-table.yaml'}\n")
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_TOKEN", "_DSN"))}
    proc = subprocess.run(
        [SHULIAN, "up", "--broker-port", str(free_port()), "--connectors", str(listed)],
        capture_output=True, text=True, timeout=60, env={**env, MARK: unique})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "source-psb-table.yaml: dsn_env: environment variable PSB_SOURCE_DSN is not set" \
        in proc.stderr
    assert "stack ready" not in proc.stdout and "TOKEN=" not in proc.stdout
    assert pids_with_env(MARK, unique) == []

    missing = tmp_path / "nowhere.list"
    proc = subprocess.run([SHULIAN, "up", "--connectors", str(missing)], capture_output=True,
                          text=True, timeout=60, env={**env, MARK: unique})
    assert proc.returncode == 2
    assert f"{missing}: --connectors: no such connector folder or list file" in proc.stderr
