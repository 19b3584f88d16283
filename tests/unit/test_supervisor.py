"""The supervisor with tiny real children (python -c ...): order, readiness, death, restarts
with backoff, giving up, stop; and the restart policy as pure logic."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from shulian.embedded.net import wait_until
from shulian.embedded.process import pids_with_env
from shulian.embedded.supervisor import (
    EXIT_CHILD_DIED,
    ChildDied,
    ChildNotReady,
    ChildSpec,
    GiveUp,
    Restart,
    RestartPolicy,
    StopRequested,
    Supervisor,
)

PY = sys.executable
SLEEPER = "import time; time.sleep(600)"
IGNORES_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"


def child(name: str, code: str, **kw: object) -> ChildSpec:
    return ChildSpec(name=name, argv=(PY, "-c", code), **kw)  # type: ignore[arg-type]


def test_a_critical_child_dying_brings_the_stack_down_with_its_name_and_code(
    tmp_path: Path,
) -> None:
    sup = Supervisor(log_dir=tmp_path, poll_s=0.02)
    gate = tmp_path / "go"
    sup.start_all([
        child("steady", SLEEPER, env={"MARK_T1": "a"}),
        child("dies", f"import os,sys,time\nwhile not os.path.exists({str(gate)!r}): "
                      "time.sleep(0.01)\nprint('bye'); sys.exit(3)", critical=True),
    ])
    gate.touch()
    code = sup.watch()
    sup.stop_all()
    assert code == EXIT_CHILD_DIED != 0
    assert sup.died is not None and sup.died.name == "dies" and sup.died.code == 3
    assert "bye" in (tmp_path / "dies.log").read_text()
    assert pids_with_env("MARK_T1", "a") == []


def test_child_dying_while_starting_is_reported(tmp_path: Path) -> None:
    sup = Supervisor(log_dir=tmp_path, poll_s=0.02)
    with pytest.raises(ChildDied) as info:
        sup.start(child("bad", "import sys; sys.exit(3)", ready=lambda: False))
    assert info.value.code == 3 and info.value.name == "bad"
    sup.stop_all()


def test_children_start_in_order_after_readiness_and_stop_in_reverse(tmp_path: Path) -> None:
    order = tmp_path / "order"
    sup = Supervisor(log_dir=tmp_path, poll_s=0.02)
    record = ("import signal, sys, time\n"
              "def bye(*_):\n"
              f"    open({str(order)!r}, 'a').write('stop ' + sys.argv[1] + '\\n'); sys.exit(0)\n"
              "signal.signal(signal.SIGTERM, bye)\n"
              f"open({str(order)!r}, 'a').write('start ' + sys.argv[1] + '\\n')\n"
              "open(sys.argv[2], 'w')\n"
              "time.sleep(600)\n")
    ready = {name: tmp_path / f"{name}.ready" for name in ("first", "second")}
    sup.start_all([
        ChildSpec(name, (PY, "-c", record, name, str(ready[name])), ready=ready[name].exists)
        for name in ("first", "second")
    ])
    sup.request_stop()
    assert sup.watch() == 0
    sup.stop_all()
    assert order.read_text().split("\n")[:4] == ["start first", "start second",
                                                  "stop second", "stop first"]


def test_a_child_ignoring_sigterm_is_killed(tmp_path: Path) -> None:
    sup = Supervisor(log_dir=tmp_path, poll_s=0.02)
    sup.start(child("stubborn", IGNORES_TERM, env={"MARK_T2": "b"}, stop_timeout_s=0.5))
    sup.stop_all()
    assert pids_with_env("MARK_T2", "b") == []


def test_not_ready_in_time_and_stop_during_start(tmp_path: Path) -> None:
    sup = Supervisor(log_dir=tmp_path, poll_s=0.02)
    with pytest.raises(ChildNotReady):
        sup.start(child("slow", SLEEPER, ready=lambda: False, ready_timeout_s=0.2))
    threading.Timer(0.1, sup.request_stop).start()
    with pytest.raises(StopRequested):
        sup.start(child("waiting", SLEEPER, ready=lambda: False))
    sup.stop_all()
    assert all(c.proc.poll() is not None for c in sup.children)


def test_stack_children_follow_the_commands_that_exist(tmp_path: Path) -> None:
    from shulian.embedded.stack import Endpoints, stack_children
    from shulian.settings import load_settings

    settings = load_settings(broker_port=19092, registry_port=18081, data_dir=tmp_path / "d",
                             connectors_dir=tmp_path)
    endpoints = Endpoints.from_settings(settings)
    only_broker = stack_children(settings, endpoints, commands={"broker"})
    assert [c.name for c in only_broker] == ["broker"]
    assert list(only_broker[0].argv[-4:]) == ["--port", "19092", "--data-dir", str(tmp_path / "d")]

    (tmp_path / "file.yaml").write_text("x: 1\n")
    full = stack_children(settings, endpoints,
                          commands={"broker", "registry", "worker", "connect"})
    assert [c.name for c in full] == ["broker", "registry", "worker", "connect"]
    assert [c.needs_init for c in full] == [False, False, True, True]
    assert full[1].env["SHULIAN_BOOTSTRAP_SERVERS"] == "127.0.0.1:19092"
    assert list(full[1].argv[-4:]) == ["--bootstrap", "127.0.0.1:19092", "--port", "18081"]
    assert list(full[3].argv[-3:]) == ["connect", "run", str(tmp_path / "file.yaml")]


def test_backoff_doubles_from_the_first_delay_up_to_the_cap() -> None:
    policy = RestartPolicy(first_s=1.0, max_s=30.0, give_up_after=10, window_s=600.0)
    assert [policy.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    deaths: list[float] = []
    decisions = []
    for t in (0.0, 2.0, 5.0, 10.0):
        deaths.append(t)
        decisions.append(policy.after_death(deaths, t))
    assert decisions == [Restart(1.0), Restart(2.0), Restart(4.0), Restart(8.0)]


def test_five_deaths_within_a_minute_give_up_and_old_deaths_are_forgotten() -> None:
    policy = RestartPolicy()  # the stack's: 5 deaths within 60 s
    assert policy.after_death([0, 1, 3, 7], 7) == Restart(8.0)
    assert policy.after_death([0, 1, 3, 7, 15], 15) == GiveUp(5, 60.0)
    # the same five deaths spread over more than a minute: restarted, backoff from the window
    assert policy.after_death([0, 20, 40, 61, 90], 90) == Restart(4.0)
    # a child that ran for a long time starts again from the first delay
    assert policy.after_death([0, 1, 2, 500], 500) == Restart(1.0)


def test_a_child_that_dies_is_restarted_and_counted(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    notes: list[str] = []
    sup = Supervisor(log_dir=tmp_path, poll_s=0.02, notify=notes.append,
                     policy=RestartPolicy(first_s=0.05), status_file=tmp_path / "status.json")
    # exits with 4 on its first run, then stays up
    code = (f"import os, sys, time\np = {str(runs)!r}\nfirst = not os.path.exists(p)\n"
            "open(p, 'a').write('run\\n')\nif first: sys.exit(4)\ntime.sleep(600)")
    sup.start_all([child("steady", SLEEPER, critical=True), child("flaky", code)])
    watcher = threading.Thread(target=sup.watch)
    watcher.start()
    try:
        assert wait_until(lambda: runs.exists() and runs.read_text().count("run") == 2,
                          timeout_s=20, interval_s=0.02)
        assert wait_until(lambda: '"restarts": 1' in (tmp_path / "status.json").read_text(),
                          timeout_s=20, interval_s=0.02)
        # the console's health table shows the same, read while the stack runs
        from shulian.console.data.health import children_health

        def health() -> dict[str, tuple[bool, str]]:
            return {h.component: (h.ok, h.detail)
                    for h in children_health(tmp_path / "status.json")}

        expected = {"child steady": (True, "running, restarts 0"),
                    "child flaky": (True, "running, restarts 1")}
        assert wait_until(lambda: health() == expected, timeout_s=20, interval_s=0.02), health()
        assert [c.state for c in sup.children] == ["running", "running"]
    finally:
        sup.request_stop()
        watcher.join(10)
    assert sup.restart_counts() == {"steady": 0, "flaky": 1}
    assert sup.died is None
    assert notes and "flaky exited with code 4; restarting in 0.05 s" in notes[0]
    assert (tmp_path / "status.json").stat().st_mode & 0o777 == 0o600
    sup.stop_all()


def test_a_child_that_keeps_dying_is_given_up_and_the_rest_keeps_running(
    tmp_path: Path,
) -> None:
    notes: list[str] = []
    sup = Supervisor(log_dir=tmp_path, poll_s=0.02, notify=notes.append,
                     policy=RestartPolicy(first_s=0.01, give_up_after=3))
    sup.start_all([child("steady", SLEEPER), child("broken", "import sys; sys.exit(9)")])
    watcher = threading.Thread(target=sup.watch)
    watcher.start()
    try:
        assert wait_until(lambda: sup.children[1].given_up, timeout_s=20, interval_s=0.02)
    finally:
        sup.request_stop()
        watcher.join(10)
    assert sup.died is None
    assert sup.restart_counts() == {"steady": 0, "broken": 2}
    assert [c.state for c in sup.children] == ["running", "given up"]
    assert "broken died 3 times within 60 s (last exit code 9); given up on" in notes[-1]
    sup.stop_all()


def test_only_the_broker_and_the_registry_are_critical_and_the_stop_message_says_what_is_kept(
    tmp_path: Path,
) -> None:
    from shulian.cli.up import kept
    from shulian.embedded.stack import Endpoints, stack_children
    from shulian.settings import load_settings

    (tmp_path / "file.yaml").write_text("x: 1\n")
    settings = load_settings(connectors_dir=tmp_path, data_dir=tmp_path / "d")
    children = stack_children(settings, Endpoints.from_settings(settings),
                              commands={"broker", "registry", "worker", "connect", "console"})
    assert {c.name for c in children if c.critical} == {"broker", "registry"}
    assert kept(settings) == f"the broker's data is kept in {tmp_path / 'd'}"
    assert "lost (use --data-dir" in kept(load_settings())


def test_looking_for_postgres_binaries_raises_no_runtime_dir_warning(tmp_path: Path) -> None:
    """pgserver asks platformdirs for a runtime dir when imported (a warning when
    XDG_RUNTIME_DIR is unset): it is found without being imported, and warnings stay on."""
    import os
    import subprocess

    code = ("import sys, warnings\nwarnings.simplefilter('error')\n"
            "from shulian.embedded.postgres import _package_dirs, find_pg_bin\n"
            "find_pg_bin(); print(_package_dirs('pgserver'))\n"
            "assert 'pgserver' not in sys.modules and 'platformdirs' not in sys.modules\n"
            "warnings.warn('real warnings still show')\n")
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    proc = subprocess.run([PY, "-c", code], capture_output=True, text=True, env=env,
                          timeout=60)
    assert "XDG_RUNTIME_DIR" not in proc.stderr
    assert "UserWarning: real warnings still show" in proc.stderr
    assert "pgserver" in proc.stdout  # the wheel is installed: its folder is a candidate


def test_the_demo_log_is_created_0600(tmp_path: Path) -> None:
    from shulian.cli.demo import _own_log
    from shulian.settings import load_settings

    with _own_log(load_settings(), tmp_path) as path:
        pass
    assert path.stat().st_mode & 0o777 == 0o600
