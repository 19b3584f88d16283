"""``shulian up`` as a user runs it: ready with endpoints, stops cleanly, reports a dead child."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from shulian.embedded.net import free_port, wait_until
from shulian.embedded.process import pids_with_env
from shulian.embedded.tansu import broker_answers_metadata

MARK = "SHULIAN_TEST_MARK"
SHULIAN = str(Path(sys.executable).parent / "shulian")
EXAMPLES = Path(__file__).resolve().parents[2] / "connectors" / "examples"


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode() for part in raw.split(b"\0") if part]


@contextmanager
def stack(
    tmp_path: Path, mark: str
) -> Iterator[tuple[subprocess.Popen[bytes], Path, dict[str, int]]]:
    ports = {"broker": free_port(), "registry": free_port(), "metrics": free_port()}
    out = tmp_path / "up.out"
    no_connectors = tmp_path / "no-connectors"  # these tests are about the core children
    no_connectors.mkdir()
    with out.open("wb") as fh:
        proc = subprocess.Popen(
            [SHULIAN, "up", "--broker-port", str(ports["broker"]),
             "--registry-port", str(ports["registry"]), "--metrics-port", str(ports["metrics"]),
             "--connectors", str(no_connectors)],
            stdout=fh, stderr=subprocess.STDOUT,
            env={**os.environ, MARK: mark, "SHULIAN_LOG_FORMAT": "json"},
        )
    try:
        ready = wait_until(lambda: proc.poll() is None and b"stack ready" in out.read_bytes(),
                           timeout_s=90, interval_s=0.1)
        assert ready, f"up not ready (exit {proc.poll()}):\n{out.read_text()[-4000:]}"
        yield proc, out, ports
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
        assert wait_until(lambda: not pids_with_env(MARK, mark), timeout_s=10), \
            f"left behind: {[cmdline(p) for p in pids_with_env(MARK, mark)]}"


def test_up_serves_its_endpoints_and_stops_on_sigterm_leaving_nothing(
    tmp_path: Path, unique: str
) -> None:
    with stack(tmp_path, unique) as (proc, out, ports):
        text = out.read_text()
        bootstrap = f"127.0.0.1:{ports['broker']}"
        registry = f"http://127.0.0.1:{ports['registry']}"
        assert bootstrap in text and registry in text
        assert broker_answers_metadata(bootstrap, timeout_s=5)
        subjects = httpx.get(f"{registry}/subjects", timeout=5).json()
        assert subjects, "up registered the schemas from schemas/"
        tree = [cmdline(p) for p in pids_with_env(MARK, unique)]
        assert any("tansu" in c[0] for c in tree if c)
        assert any("registry" in c for c in tree)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0
        assert "stack stopped" in out.read_text()


def test_a_child_dying_is_reported_and_brings_the_stack_down(tmp_path: Path, unique: str) -> None:
    with stack(tmp_path, unique) as (proc, out, _):
        registry = [p for p in pids_with_env(MARK, unique) if "registry" in cmdline(p)]
        assert len(registry) == 1
        os.kill(registry[0], signal.SIGKILL)
        code = proc.wait(timeout=120)
        text = out.read_text()
        assert code != 0
        assert "registry exited unexpectedly with code -9" in text
        assert '"event": "child.died"' in text


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
