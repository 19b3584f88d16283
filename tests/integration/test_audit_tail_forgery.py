"""A record forged into the audit log while the worker is down, on the real broker with a real
worker: the restarted worker neither vouches for it nor lets it suppress a delivery, and
``audit verify`` names it.

The attacker has write access to the audit topic. After the worker's last seal it appends a
copy of the worker's last decision record claiming that raw records far ahead were decided
already (``origin``/``source`` offsets), linked and hashed exactly as the worker does and
encoded with the same canonical encoder, with the worker's tail tag copied (it cannot make
one). Before the fix the restarted worker resumed after it: its restart de-duplication then
skipped every later raw record of that partition (never delivered), and its next seal vouched
for the forgery."""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import pytest
from click.testing import CliRunner
from confluent_kafka import Producer

from shulian.audit.verifying import catalogue_topics, run_verify
from shulian.audit.window import Window
from shulian.cli.main import cli
from shulian.embedded.net import wait_until
from shulian.io.kafka import producer_config
from shulian.io.publish import AgencyPublisher
from shulian.io.reader import read_topics
from shulian.logic.audit import encode, hash_record
from tests.fixtures.chain import StartChain

pytestmark = [pytest.mark.integration]

PAIR = ("amr", "business_licence")


def _records(settings: Any, topic: str) -> dict[int, list[tuple[int, dict[str, Any]]]]:
    return {p: [(m.offset, json.loads(m.value or b"{}")) for m in msgs]
            for (_, p), msgs in read_topics(settings, [topic]).items()}


def _decisions(parts: dict[int, list[tuple[int, dict[str, Any]]]],
               but: tuple[int, int] = (-1, -1)) -> Counter[tuple[Any, ...]]:
    """(raw partition, raw offset, entry) of every decision record, ``but`` one (partition,
    offset) of the audit topic."""
    return Counter((r["origin"]["partition"], r["origin"]["offset"], r["entry_id"])
                   for p, recs in parts.items() for o, r in recs
                   if r.get("kind") == "decision" and (p, o) != but)


def test_a_record_forged_while_the_worker_is_down_is_disowned(start_chain: StartChain) -> None:
    env = start_chain()
    audit = env.topology.audit(PAIR[1])
    publisher = AgencyPublisher(env.settings, env.catalog, env.topology)
    publisher.publish(PAIR, 30, rng=random.Random(1))
    publisher.flush()

    forged_at = (-1, -1)

    def settled(n: int) -> bool:
        parts = _records(env.settings, audit)
        raw = {(p, o) for p, o, _ in _decisions(parts, forged_at)}
        return len(raw) >= n and all(recs[-1][1].get("kind") == "seal"
                                     for recs in parts.values() if recs)

    assert wait_until(lambda: settled(30), timeout_s=120), env.worker.log_text()[-3000:]
    env.worker.kill9()

    # the attack, on a partition that holds decisions
    parts = _records(env.settings, audit)
    p, recs = next((p, recs) for p, recs in sorted(parts.items())
                   if any(r.get("kind") == "decision" for _, r in recs))
    genuine = next(r for _, r in reversed(recs) if r.get("kind") == "decision")
    last = recs[-1][1]
    forged = {**genuine, "origin": {**genuine["origin"],
                                    "offset": genuine["origin"]["offset"] + 10_000},
              "source": {**genuine["source"], "offset": genuine["source"]["offset"] + 10_000},
              "part": [genuine["part"][1] - 1, genuine["part"][1]],
              "seq": last["seq"] + 1, "prev_hash": last["hash"]}
    forged.pop("hash")
    forged["hash"] = hash_record(forged)
    producer = Producer(producer_config(env.settings))
    producer.produce(audit, encode(forged), b"", partition=p)
    assert producer.flush(30) == 0
    forged_at = (p, recs[-1][0] + 1)

    env.worker.start()
    publisher.publish(PAIR, 60, rng=random.Random(2))
    publisher.flush()
    assert wait_until(lambda: settled(90), timeout_s=180), env.worker.log_text()[-3000:]

    parts = _records(env.settings, audit)
    decided = _decisions(parts, forged_at)
    assert all(n == 1 for n in decided.values())  # each (record, entry) decided once
    assert len({(q, o) for q, o, _ in decided}) == 90  # none suppressed by the forgery
    after = [r for o, r in parts[p] if o > forged_at[1] and r.get("kind") == "decision"
             and r["origin"]["partition"] == genuine["origin"]["partition"]]
    assert after, "no new record went where the forgery claimed decisions: nothing tested"
    resume_seal = next(r for o, r in parts[p] if o > forged_at[1])
    assert resume_seal["kind"] == "seal" and resume_seal["disowned"] == [forged_at[1]]
    assert "audit.tail_disowned" in env.worker.log_text()

    result = run_verify(env.settings, catalogue_topics(env.settings, env.namespace), Window(),
                        check_digests=False)
    assert [(b.topic, b.partition, b.offset) for b in result.breaks] == [(audit, *forged_at)]
    assert "disowned by the resume seal" in result.breaks[0].what
    assert not result.unsigned_tails
    res = CliRunner().invoke(cli, ["audit", "verify", "--bootstrap",
                                   env.settings.bootstrap_servers, "--namespace", env.namespace,
                                   "--catalog", str(env.settings.catalog_dir), "--no-digests"],
                             env={"COLUMNS": "250"})
    assert res.exit_code == 1, res.output
    assert str(forged_at[1]) in res.output and "disowned" in res.output and "OK:" not in res.output
