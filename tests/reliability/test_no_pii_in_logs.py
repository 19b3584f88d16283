"""No personal data in logs: citizen IDs, credit codes and names from the test data never
appear in any log line.

Here: a real worker fed generated agency records (30 % failing an element check on purpose -
the values a careless "invalid citizen id ..." log line would leak), wire garbage and the bad
raw messages of test_bad_input.py, with JSON logs. The demo's single run
(tests/integration/test_demo.py) is checked with the same helpers, over the demo's own output
and every child process's log file.

Each log line is searched as written and, when it is JSON, once more with its strings decoded
(JSON escapes non-ASCII as \\uXXXX, so a leaked name would not match the raw text).
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from shulian.io.publish import AgencyPublisher
from tests.fixtures.bad_input import Wire, bad_inputs, produce, wait_for
from tests.fixtures.chain import StartChain, chain_outcome, expected_decisions
from tests.fixtures.pii import generate_like_publisher, leaks, log_lines, personal_values

pytestmark = pytest.mark.integration


def test_the_search_sees_json_escaped_values() -> None:
    """The detector itself: a name escaped by JSON, an id inside a message, nothing else."""
    lines = log_lines([], ['{"event": "x", "who": "\\u5f20\\u4e09\\u4e30"}',
                           "plain 440106199001011234 text", '{"event": "fine"}'])
    assert [v for v, _ in leaks({"张三丰", "440106199001011234", "李四"}, lines)] == [
        "张三*", "44****************"]


def test_worker_logs_hold_no_personal_data(start_chain: StartChain) -> None:
    env = start_chain(extra_env={"SHULIAN_LOG_LEVEL": "DEBUG"})
    seed, n = 17, 40
    generated = generate_like_publisher(env.catalog, records=n, invalid_rate=0.3, seed=seed)
    publisher = AgencyPublisher(env.settings, env.catalog, env.topology)
    rng = random.Random(seed)
    for pair in publisher.pairs:
        publisher.publish(pair, n, rng=rng, invalid_rate=0.3, garbage=5)
    publisher.flush()
    w = Wire(env)
    bad = bad_inputs(w)
    produce(env.settings, env, bad)

    valid = {pair: sum(g.valid for g in gs) for pair, gs in generated.items()}
    invalid = sum(n - v for v in valid.values())
    assert invalid > 10  # the run does exercise the rejection paths
    want = expected_decisions(env.catalog, Counter(valid))
    dead = invalid + 5 * len(generated) + len(bad)
    wait_for("the chain to finish", lambda: (lambda o: o.decisions >= want and o.dead >= dead)(
        chain_outcome(env)), env)
    out = chain_outcome(env)
    assert (out.decisions, out.dead) == (want, dead), "the regenerated test data is not what "\
        "the publisher sent"

    values = personal_values(env.catalog, [(p, g.raw) for p, gs in generated.items()
                                           for g in gs] + w.made)
    assert len(values) > 100
    lines = log_lines([env.worker.log_path])
    assert sum("record.rejected" in line for line in lines) >= dead // 2  # rejections logged
    found = leaks(values, lines)
    assert not found, found[:5]
