"""The verification store on a real broker: the chain's projections on the compacted changelog,
a worker that rebuilds its store from it, killed with SIGKILL and started again, gives the same
answers (superseded and deleted records included)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

from confluent_kafka import Producer

from shulian.catalog.elements import citizen_id_check_char
from shulian.chain.topology import Topology
from shulian.io.kafka import TopicSpec, admin_client, ensure_topics, producer_config
from shulian.logic.policy import PolicyEngine
from shulian.settings import Settings
from tests.fixtures.verify import verify_catalog, verify_catalog_dir

ROOT = Path(__file__).resolve().parents[2]


def cid(first17: str) -> str:
    return first17 + citizen_id_check_char(first17)


def run_worker(catalog_dir: Path, topic: str, claims: list[list[str]], bootstrap: str
               ) -> tuple[subprocess.Popen[str], dict[str, object]]:
    env = {**os.environ, "SHULIAN_BOOTSTRAP_SERVERS": bootstrap}
    proc = subprocess.Popen([sys.executable, "-m", "tests.fixtures.verify_worker",
                             str(catalog_dir), topic, json.dumps(claims)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("ANSWERS "):
            return proc, json.loads(line.removeprefix("ANSWERS "))
    proc.kill()
    raise AssertionError(f"worker exited with {proc.wait(30)} before answering")


def test_store_rebuilt_after_kill9_gives_the_same_answers(
        kafka_settings: Settings, bootstrap: str, unique: str, tmp_path: Path) -> None:
    catalog = verify_catalog(tmp_path / "a")
    catalog_dir = verify_catalog_dir(tmp_path / "b")
    t = Topology(namespace=f"v{unique}")
    topic = t.verify_changelog("household_change")
    ensure_topics(admin_client(kafka_settings),
                  [TopicSpec(topic, 3, (("cleanup.policy", "compact"),))])
    engine = PolicyEngine(catalog=catalog, sharing_list=catalog.sharing_lists[3],
                          master_key=b"k" * 32)
    projection = engine.projection("household_change")
    assert projection is not None
    people = [(cid(f"4401061985{i:07d}"), f"张{i}") for i in range(200)]
    producer = Producer(producer_config(kafka_settings))
    for citizen_id, name in people:
        projected = projection.project({"citizen_id": citizen_id, "name": name,
                                        "birth_date": date(1985, 1, 1), "change_type": "01"})
        assert projected is not None
        producer.produce(topic, key=projected[0], value=projected[1])
    # supersede the first person's name, delete the second person's record (tombstone)
    moved = projection.project({"citizen_id": people[0][0], "name": "张新",
                                "birth_date": date(1985, 1, 1), "change_type": "02"})
    assert moved is not None
    producer.produce(topic, key=moved[0], value=moved[1])
    producer.produce(topic, key=people[1][0].encode(), value=None)
    assert producer.flush(30) == 0
    claims = [[people[0][0], "name", "equals", "张0"], [people[0][0], "name", "equals", "张新"],
              [people[1][0], "name", "equals", "张1"], [people[2][0], "name", "equals", "张2"],
              [people[3][0], "name", "equals", "李3"], [cid("44010119700101001"), "name",
                                                        "equals", "张"]]
    want = ["no_match", "match", "unknown", "match", "no_match", "unknown"]
    first, got = run_worker(catalog_dir, topic, claims, bootstrap)
    try:
        assert got == {"keys": 199, "answers": want}
    finally:
        first.kill()  # SIGKILL: no shutdown of any kind
        first.wait(30)
    assert first.returncode == -9
    second, again = run_worker(catalog_dir, topic, claims, bootstrap)
    try:
        assert again == got
    finally:
        second.kill()
        second.wait(30)
