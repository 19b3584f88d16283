"""The supervisor with tiny real children (python -c ...): order, readiness, death, stop."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from shulian.embedded.process import pids_with_env
from shulian.embedded.supervisor import (
    EXIT_CHILD_DIED,
    ChildDied,
    ChildNotReady,
    ChildSpec,
    StopRequested,
    Supervisor,
)

PY = sys.executable
SLEEPER = "import time; time.sleep(600)"
IGNORES_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"


def child(name: str, code: str, **kw: object) -> ChildSpec:
    return ChildSpec(name=name, argv=(PY, "-c", code), **kw)  # type: ignore[arg-type]


def test_child_dying_brings_the_stack_down_with_its_name_and_code(tmp_path: Path) -> None:
    sup = Supervisor(log_dir=tmp_path, poll_s=0.02)
    gate = tmp_path / "go"
    sup.start_all([
        child("steady", SLEEPER, env={"MARK_T1": "a"}),
        child("dies", f"import os,sys,time\nwhile not os.path.exists({str(gate)!r}): "
                      "time.sleep(0.01)\nprint('bye'); sys.exit(3)"),
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
