"""``replay drill`` fails at once when its worker dies, with the worker's last error line,
instead of pacing the rest of the window (issue 19: a spinner for 4.5 minutes, then "drill
worker exited with 2")."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Producer

from shulian.audit.drill import DrillWorkerDied, run_drill
from shulian.audit.window import Window
from shulian.chain.topology import Topology
from shulian.io.reader import read_topics
from tests.fixtures.chain import StartChain

pytestmark = pytest.mark.integration


def test_a_dead_drill_worker_stops_the_drill_with_its_error(
        start_chain: StartChain, monkeypatch: pytest.MonkeyPatch) -> None:
    env = start_chain(start=False)
    raw = env.topology.raw("amr", "business_licence")
    now_ms = int(time.time() * 1000)
    p = Producer({"bootstrap.servers": env.settings.bootstrap_servers})
    # two records 30 minutes apart: at 1x the drill would wait 30 minutes for the second
    for ts in (now_ms - 31 * 60_000, now_ms - 60_000):
        p.produce(raw, b"not avro", b"k", partition=0, timestamp=ts)
    assert p.flush(30) == 0
    # no HMAC master key anywhere: the drill worker refuses to start (exit 2)
    monkeypatch.delenv("SHULIAN_HMAC_MASTER_KEY", raising=False)
    settings = env.settings.model_copy(update={"hmac_master_key": None})
    drill_ns = f"d{env.namespace}"
    with pytest.raises(DrillWorkerDied) as exc:
        run_drill(settings, catalog=env.catalog, source=env.topology, namespace=drill_ns,
                  window=Window.parse("-1h", "now"), speed=1.0, timeout_s=3600)
    message = str(exc.value)
    assert message.startswith("drill worker exited with 2: error: ")
    assert "SHULIAN_HMAC_MASTER_KEY" in message
    # it stopped while pacing: the second record was never replayed
    replayed = read_topics(settings, [Topology(namespace=drill_ns).raw("amr",
                                                                       "business_licence")])
    assert sum(len(ms) for ms in replayed.values()) == 1
