"""An unreachable broker: every command that connects says so in one line naming --bootstrap
and SHULIAN_BOOTSTRAP_SERVERS, exit code 1, no librdkafka log lines (issue 19)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from shulian.embedded.net import free_port
from shulian.settings import REPO_ROOT

COMMANDS = [
    ["init"],
    ["worker"],
    ["sharing", "publish", str(REPO_ROOT / "catalog" / "sharing" / "list.v2.yaml")],
    ["audit", "verify"],
    ["audit", "report", "--consumer", "tax"],
    ["replay", "decisions", "--dataset", "business_licence", "--from", "-1h", "--to", "now"],
    ["replay", "deliver", "--consumer", "tax", "--dataset", "business_licence",
     "--from", "-1h", "--to", "now"],
    ["replay", "drill", "--namespace", "drillx", "--from", "-1h", "--to", "now"],
    ["connect", "run", str(REPO_ROOT / "connectors" / "examples" / "sink-civil-webhook.yaml")],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_one_clear_line_naming_the_option_and_the_variable(argv: list[str]) -> None:
    nowhere = f"127.0.0.1:{free_port()}"  # nothing listens there
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHULIAN_")}
    # a configuration that is good (the worker checks it before asking the broker anything)
    env |= {"SHULIAN_HMAC_MASTER_KEY": "k" * 32, "SHULIAN_METRICS_PORT": "0",
            "CIVIL_WEBHOOK_SECRET": "s" * 32, "SHULIAN_ALLOW_DEV_KEYS": "1"}
    proc = subprocess.run([sys.executable, "-m", "shulian.cli.main", *argv,
                           "--bootstrap", nowhere],
                          env=env, capture_output=True, text=True, timeout=60)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert lines == [f"error: no Kafka broker answered at {nowhere} within 4 s; start one "
                     "(shulian up) or point Shulian at yours with --bootstrap HOST:PORT or "
                     "SHULIAN_BOOTSTRAP_SERVERS"], proc.stderr[-2000:]
    assert "rdkafka" not in proc.stdout + proc.stderr
