"""A registry that hangs or refuses writes while a list version is being applied.

A registry of the test's own (``RegistryProcess``) serves a chain of its own. The genuine next
list version (signed by every party) is put on the control topic while the registry

- is stopped with SIGSTOP (it accepts connections and never answers): records keep being
  decided under the version in force, the new version is refused once (logged, a
  ``list_refused`` record on ``audit.sharing-list``), and after SIGCONT it is applied;
- is in READONLY mode (every registration answered 422): the worker stays up, the version is
  refused and the last good one stays in force; back in READWRITE, the version applies.
"""

from __future__ import annotations

import json
import os
import random
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml
from confluent_kafka import Producer

from shulian.embedded.net import wait_until
from shulian.io.kafka import producer_config
from shulian.io.publish import AgencyPublisher
from shulian.io.reader import read_topics
from shulian.logic.auditseal import is_seal
from tests.fixtures.chain import ChainEnv, StartChain
from tests.fixtures.registry import RegistryProcess
from tests.fixtures.signing import next_version

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PER_BATCH = 20
# short registry calls so that a failed preparation is seen quickly (the default is 5 s)
FAST_TIMEOUT = {"SHULIAN_REGISTRY_TIMEOUT_S": "1.5", "SHULIAN_REGISTRY_RETRIES": "1"}


@contextmanager
def own_registry(bootstrap: str, unique: str, tmp_path: Path) -> Iterator[RegistryProcess]:
    reg = RegistryProcess(bootstrap=bootstrap, topic=f"_schemas.h{unique}",
                          log_file=tmp_path / "registry.log").start()
    try:
        yield reg
    finally:
        if reg.proc is not None and reg.proc.poll() is None:
            os.kill(reg.proc.pid, signal.SIGCONT)
        reg.stop()


def decisions_by_version(env: ChainEnv, dataset: str) -> dict[int, int]:
    """Audit decisions on ``dataset`` counted by the list version that decided them."""
    out: dict[int, int] = {}
    for msgs in read_topics(env.settings, [env.topology.audit(dataset)]).values():
        for m in msgs:
            rec = json.loads(m.value or b"{}")
            if is_seal(rec):  # a batch's signed seal, not a decision
                continue
            v = rec["list_version"]
            out[v] = out.get(v, 0) + 1
    return out


def list_records(env: ChainEnv) -> list[dict[str, object]]:
    """The list versions applied or refused (the workers' checkpoint copies left out)."""
    records = [json.loads(m.value or b"{}")
               for msgs in read_topics(env.settings, [env.topology.lists_audit]).values()
               for m in msgs]
    return [r for r in records if r.get("kind") in ("list_applied", "list_refused")]


def publish_version(env: ChainEnv, pair: tuple[str, str]) -> int:
    sl = next_version(env.catalog, pair)
    producer = Producer(producer_config(env.settings))
    producer.produce(env.topology.control, yaml.safe_dump(
        sl.model_dump(mode="json", exclude_none=True), allow_unicode=True).encode())
    assert producer.flush(10) == 0
    return sl.version


class Batches:
    """Valid records for one (provider, dataset), and how many decisions each batch makes."""

    def __init__(self, env: ChainEnv) -> None:
        self.env = env
        self.publisher = AgencyPublisher(env.settings, env.catalog, env.topology)
        self.pair = self.publisher.pairs[0]
        self.per_record = sum(1 for e in env.catalog.current_list.entries
                              if (e.provider, e.dataset) == self.pair)
        self.rng = random.Random(5)

    def publish(self) -> None:
        self.publisher.publish(self.pair, PER_BATCH, rng=self.rng)
        self.publisher.flush()

    def decided(self, version: int, batches: int) -> bool:
        got = decisions_by_version(self.env, self.pair[1]).get(version, 0)
        return got >= batches * PER_BATCH * self.per_record


def test_a_hung_registry_never_holds_up_records_and_the_version_applies_after(
    start_chain: StartChain, bootstrap: str, unique: str, tmp_path: Path,
) -> None:
    with own_registry(bootstrap, unique, tmp_path) as reg:
        env = start_chain(registry_url=reg.url, extra_env=FAST_TIMEOUT)
        old = env.catalog.current_list.version
        batches = Batches(env)
        batches.publish()  # batch A: schemas fetched and cached
        assert wait_until(lambda: batches.decided(old, 1), timeout_s=90, interval_s=0.5), \
            env.worker.log_text()[-3000:]

        assert reg.proc is not None
        os.kill(reg.proc.pid, signal.SIGSTOP)
        new = publish_version(env, batches.pair)
        refused = wait_until(lambda: "sharing_list.refused" in env.worker.log_text(),
                             timeout_s=60, interval_s=0.5)
        assert refused, env.worker.log_text()[-3000:]
        batches.publish()  # batch B, while the registry hangs and the new version waits
        assert wait_until(lambda: batches.decided(old, 2), timeout_s=90, interval_s=0.5), \
            env.worker.log_text()[-3000:]
        assert "sharing_list.applied" not in env.worker.log_text()
        records = list_records(env)
        assert [r["version"] for r in records if r["kind"] == "list_refused"] == [new]
        assert any("schema registry" in str(r["reasons"]) for r in records)
        assert env.worker.running

        os.kill(reg.proc.pid, signal.SIGCONT)
        assert wait_until(lambda: "sharing_list.applied" in env.worker.log_text(),
                          timeout_s=120, interval_s=0.5), env.worker.log_text()[-3000:]
        batches.publish()  # batch C, under the new version
        assert wait_until(lambda: batches.decided(new, 1), timeout_s=90, interval_s=0.5), \
            env.worker.log_text()[-3000:]
        assert decisions_by_version(env, batches.pair[1]) == {
            old: 2 * PER_BATCH * batches.per_record, new: PER_BATCH * batches.per_record}
        kinds = [(r["kind"], r["version"]) for r in list_records(env)]
        assert kinds == [("list_refused", new), ("list_applied", new)]
        assert env.worker.running and env.worker.starts == 1


def test_a_read_only_registry_refuses_the_version_and_never_crashes_the_worker(
    start_chain: StartChain, bootstrap: str, unique: str, tmp_path: Path,
) -> None:
    with own_registry(bootstrap, unique, tmp_path) as reg:
        env = start_chain(registry_url=reg.url, extra_env=FAST_TIMEOUT)
        old = env.catalog.current_list.version
        batches = Batches(env)
        batches.publish()
        assert wait_until(lambda: batches.decided(old, 1), timeout_s=90, interval_s=0.5)

        # on the embedded stack auth is off; with auth on this takes governance credentials
        assert httpx.put(f"{reg.url}/mode", json={"mode": "READONLY"}).status_code == 200
        new = publish_version(env, batches.pair)
        assert wait_until(lambda: "sharing_list.refused" in env.worker.log_text(),
                          timeout_s=60, interval_s=0.5), env.worker.log_text()[-3000:]
        batches.publish()
        assert wait_until(lambda: batches.decided(old, 2), timeout_s=90, interval_s=0.5)
        records = list_records(env)
        assert [(r["kind"], r["version"]) for r in records] == [("list_refused", new)]
        assert "read-only" in str(records[0]["reasons"]), records
        assert env.worker.running

        assert httpx.put(f"{reg.url}/mode", json={"mode": "READWRITE"}).status_code == 200
        assert wait_until(lambda: "sharing_list.applied" in env.worker.log_text(),
                          timeout_s=120, interval_s=0.5), env.worker.log_text()[-3000:]
        batches.publish()
        assert wait_until(lambda: batches.decided(new, 1), timeout_s=90, interval_s=0.5)
        assert env.worker.running and env.worker.starts == 1
