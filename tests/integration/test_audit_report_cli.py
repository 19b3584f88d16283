"""``shulian audit report`` on a real chain: times in the window's zone, masks with their
parameters, csv/json uncut, summary with reasons in words, and none of the personal data of
the records it reports on."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from shulian.audit.report import COLUMNS
from shulian.catalog.models import ElementType
from shulian.chain.topology import plan_topics
from shulian.cli.main import cli
from shulian.scenario import play, shares, topic_ends, wait_for_chain
from tests.fixtures.chain import StartChain
from tests.fixtures.pii import generate_like_publisher, leaks, log_lines, personal_values

pytestmark = pytest.mark.integration
SEED, PER_PAIR, GARBAGE = 13, 25, 1


def test_report_reads_like_the_list_and_leaks_nothing(start_chain: StartChain) -> None:
    env = start_chain()
    pairs = sorted(env.catalog.mappings)
    total = len(pairs) * (PER_PAIR + GARBAGE)
    assert set(shares(pairs, total, GARBAGE).values()) == {(PER_PAIR, GARBAGE)}
    plan = plan_topics(env.catalog, env.topology)
    after = topic_ends(env.settings, [*plan.audit, *plan.deadletter])
    tally = play(env.settings, env.catalog, env.topology, records=total, invalid_rate=0.1,
                 seed=SEED, garbage=GARBAGE)
    wait_for_chain(env.settings, env.catalog, env.topology, tally, after, timeout_s=120,
                   stopped=lambda: None if env.worker.running else "the worker died")

    runner = CliRunner()
    base = ["audit", "report", "--bootstrap", env.settings.bootstrap_servers,
            "--namespace", env.namespace, "--consumer", "tax", "--dataset", "business_licence"]
    as_json = runner.invoke(cli, [*base, "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    rows = json.loads(as_json.output)
    delivered = [r for r in rows if r["decision"] == "deliver"]
    assert delivered and all(r["ts"].endswith("+08:00") for r in rows)
    assert all("phone: first 3 / last 4 kept" in r["fields_masked"] for r in delivered)
    assert all("legal_rep_id: keyed hash" in r["fields_masked"] for r in delivered)
    as_csv = runner.invoke(cli, [*base, "--format", "csv"])
    parsed = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert list(parsed[0]) == list(COLUMNS) and len(parsed) == len(rows)
    assert [p["fields_masked"] for p in parsed] == [r["fields_masked"] for r in rows]
    table = runner.invoke(cli, base, env={"COLUMNS": "250"})
    assert table.exit_code == 0, table.output
    assert f"{len(rows)} decision(s)" in table.output and "+08:00" in table.output

    hrss = runner.invoke(cli, ["audit", "report", "--bootstrap", env.settings.bootstrap_servers,
                               "--namespace", env.namespace, "--consumer", "hrss"],
                         env={"COLUMNS": "250"})
    assert hrss.exit_code == 0, hrss.output
    assert "row_filter_false: 记录不满足条目的行过滤条件" in hrss.output  # legend in words

    generated = generate_like_publisher(env.catalog, records=PER_PAIR, invalid_rate=0.1,
                                        seed=SEED)
    # the report names records by key; business_licence's key is the enterprise's unified
    # social credit code (public on the licence, not personal data), so credit codes are not
    # searched for here; citizen IDs, names and phones are
    people = (ElementType.CITIZEN_ID, ElementType.PERSON_NAME, ElementType.PHONE)
    values = personal_values(env.catalog, [(p, g.raw) for p, gs in generated.items()
                                           for g in gs], types=people)
    assert len(values) > 30
    hits = leaks(values, log_lines([], [as_json.output, as_csv.output, table.output,
                                        hrss.output]))
    assert not hits, hits[:5]
