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

import json
import random
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from shulian.catalog.models import Catalog, ElementType
from shulian.io.publish import AgencyPublisher, load_raw_schemas
from shulian.logic.generate import Generated, generators_for
from shulian.settings import REPO_ROOT
from tests.fixtures.chain import StartChain, chain_outcome, expected_decisions
from tests.reliability.test_bad_input import Wire, bad_inputs, produce, wait_for

pytestmark = pytest.mark.integration

PERSONAL = (ElementType.CITIZEN_ID, ElementType.CREDIT_CODE, ElementType.PERSON_NAME,
            ElementType.PHONE)


def generate_like_publisher(catalog: Catalog, *, records: int, invalid_rate: float,
                            seed: int) -> dict[tuple[str, str], list[Generated]]:
    """The records AgencyPublisher.publish draws, pair after pair, from ``Random(seed)``."""
    gens = generators_for(catalog, load_raw_schemas(catalog, REPO_ROOT / "schemas"))
    rng = random.Random(seed)
    return {pair: [gens[pair].generate(rng, invalid_rate=invalid_rate) for _ in range(records)]
            for pair in sorted(gens)}


def personal_values(catalog: Catalog, raws: Iterable[tuple[tuple[str, str], dict[str, Any]]]
                    ) -> set[str]:
    """Citizen IDs, credit codes, names and phone numbers in raw records (as sent, and in
    their canonical upper-case form)."""
    out: set[str] = set()
    for (agency, dataset), raw in raws:
        mapping = catalog.mappings[(agency, dataset)]  # type: ignore[index]
        ds = catalog.datasets[dataset]  # type: ignore[index]
        for f in ds.fields:
            fm = mapping.fields.get(f.name)
            if fm is None or fm.source is None:
                continue
            if catalog.elements[f.element].type not in PERSONAL:
                continue
            value = raw.get(fm.source)
            if isinstance(value, str | int) and len(str(value).strip()) >= 2:
                out.add(str(value).strip())
                out.add(str(value).strip().upper())
    return out


def log_lines(paths: Iterable[Path], texts: Iterable[str] = ()) -> list[str]:
    """Every line of the files and texts, plus a decoded copy of each JSON line."""
    out: list[str] = []
    chunks = [p.read_text(encoding="utf-8", errors="replace") for p in paths] + list(texts)
    for chunk in chunks:
        for line in chunk.splitlines():
            out.append(line)
            start = line.find("{")
            if start < 0:
                continue
            try:
                doc = json.loads(line[start:])
            except ValueError:
                continue
            out.append(json.dumps(doc, ensure_ascii=False))
    return out


def leaks(values: set[str], lines: list[str]) -> list[tuple[str, str]]:
    """(value, line) for every personal value found in a line (value masked in the report)."""
    found = []
    for line in lines:
        for v in values:
            if v in line:
                found.append((v[:2] + "*" * (len(v) - 2), line[:300]))
    return found


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
