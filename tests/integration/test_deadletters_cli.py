"""``shulian deadletters`` on a real chain: agencies publish records that fail element checks
and wire garbage; the command names every rejected record's agency, dataset, reason in words
and field, and prints none of the personal data the records held."""

from __future__ import annotations

import json
import random
import time

import pytest
from click.testing import CliRunner

from shulian.cli.main import cli
from shulian.io.publish import AgencyPublisher
from tests.fixtures.chain import StartChain, chain_outcome
from tests.fixtures.pii import generate_like_publisher, leaks, log_lines, personal_values

pytestmark = pytest.mark.integration
SEED, N, INVALID, GARBAGE = 11, 20, 0.3, 5


def test_deadletters_name_every_rejection_in_words_without_personal_data(
        start_chain: StartChain) -> None:
    env = start_chain()
    generated = generate_like_publisher(env.catalog, records=N, invalid_rate=INVALID, seed=SEED)
    publisher = AgencyPublisher(env.settings, env.catalog, env.topology)
    rng = random.Random(SEED)
    for pair in publisher.pairs:
        publisher.publish(pair, N, rng=rng, invalid_rate=INVALID, garbage=GARBAGE)
    publisher.flush()
    invalid = {pair: sum(not g.valid for g in gs) for pair, gs in generated.items()}
    want = sum(invalid.values()) + GARBAGE * len(generated)
    deadline = time.monotonic() + 120
    while chain_outcome(env).dead < want:
        assert env.worker.running, env.worker.log_text()[-2000:]
        assert time.monotonic() < deadline, "the chain did not dead-letter everything"
        time.sleep(1.0)

    runner = CliRunner()
    base = ["deadletters", "--bootstrap", env.settings.bootstrap_servers,
            "--namespace", env.namespace]
    result = runner.invoke(cli, [*base, "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert len(rows) == want
    for (agency, dataset), n in invalid.items():
        mine = [r for r in rows if (r["agency"], r["dataset"]) == (agency, dataset)]
        assert len(mine) == n + GARBAGE, (agency, dataset)
        checked = [r for r in mine if r["reason"] == "element_check_failed"]
        assert all(r["field"] and r["why"] and r["check_words"] for r in checked)
    reasons = {r["reason"] for r in rows}
    assert {"element_check_failed", "empty_value", "bad_wire_format",
            "unknown_schema_id"} <= reasons
    assert all(r["rejected_at"].endswith("+08:00") for r in rows)

    table = runner.invoke(cli, [*base, "--agency", "psb", "--reason", "element_check_failed"],
                          env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    n_psb = sum(1 for r in rows if r["agency"] == "psb"
                and r["reason"] == "element_check_failed")
    assert f"{n_psb} dead letter(s)" in table.output
    assert "a field failed its data-element check" in table.output
    csv_out = runner.invoke(cli, [*base, "--format", "csv"]).output
    assert len(csv_out.splitlines()) == want + 1

    values = personal_values(env.catalog, [(p, g.raw) for p, gs in generated.items()
                                           for g in gs])
    assert len(values) > 30
    hits = leaks(values, log_lines([], [result.output, table.output, csv_out]))
    assert not hits, hits[:5]
