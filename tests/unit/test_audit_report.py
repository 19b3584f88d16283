"""Report rows, summaries and output formats (pure)."""

from __future__ import annotations

import csv
import io
import json

from shulian.audit.check import AuditEntry
from shulian.audit.report import COLUMNS, Filter, report_rows, summary, to_csv, to_json
from shulian.audit.window import Window


def _entry(offset: int, consumer: str, key: str, ts: str, decision: str = "deliver") -> AuditEntry:
    return AuditEntry("audit.d", 0, offset, {
        "ts": ts, "kind": "decision", "dataset": "d", "provider": "p", "consumer": consumer,
        "record_key": key, "decision": decision,
        "reason": None if decision == "deliver" else "expired", "entry_id": "e",
        "list_version": 1, "fields_delivered": ["a", "b"], "fields_masked": [["b", "hmac"]],
        "egress_topic": f"egress.{consumer}.d" if decision == "deliver" else None,
        "source": {"topic": "canonical.d", "partition": 0, "offset": offset},
    })


ENTRIES = [
    _entry(0, "c1", "k1", "2026-03-01T00:00:02.000Z"),
    _entry(1, "c2", "k1", "2026-03-01T00:00:01.000Z", "withhold"),
    _entry(2, "c1", "k2", "2026-03-01T00:00:03.000Z"),
]


def test_filters_and_order() -> None:
    rows = report_rows(ENTRIES, Filter(record_key="k1"))
    assert [r["consumer"] for r in rows] == ["c2", "c1"]  # time order
    assert rows[1]["fields_masked"] == "b: hmac" and rows[1]["egress_topic"] == "egress.c1.d"
    assert [r["record_key"] for r in report_rows(ENTRIES, Filter(consumer="c1"))] == ["k1", "k2"]
    start = 1772323202000  # 2026-03-01T00:00:02Z
    assert len(report_rows(ENTRIES, Filter(window=Window(start, None)))) == 2
    assert report_rows(ENTRIES, Filter(dataset="other")) == []


def test_raw_origin_from_canonical_headers() -> None:
    headers = {("canonical.d", 0, 0): [("shulian.source.topic", b"raw.a.d"),
                                       ("shulian.source.partition", b"2"),
                                       ("shulian.source.offset", b"17")]}
    rows = report_rows(ENTRIES, Filter(record_key="k1"), canonical_headers=headers)
    assert rows[1]["raw"] == "raw.a.d[2]@17" and rows[1]["canonical"] == "canonical.d[0]@0"
    assert rows[0]["raw"] == ""


def test_summary_and_formats() -> None:
    rows = report_rows(ENTRIES, Filter())
    assert summary(rows) == [
        {"consumer": "c1", "dataset": "d", "decision": "deliver", "reason": "", "records": 2},
        {"consumer": "c2", "dataset": "d", "decision": "withhold", "reason": "expired",
         "records": 1},
    ]
    parsed = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert len(parsed) == 3 and list(parsed[0]) == list(COLUMNS)
    assert json.loads(to_json(rows))[0]["record_key"] == "k1"


def test_times_in_the_windows_zone_masks_with_parameters_reasons_in_words() -> None:
    words = {("e", 1): {"b": "first 3 / last 4 kept"}}
    rows = report_rows(ENTRIES, Filter(), mask_words=words)
    assert [r["ts"] for r in rows] == ["2026-03-01T08:00:01.000+08:00",
                                       "2026-03-01T08:00:02.000+08:00",
                                       "2026-03-01T08:00:03.000+08:00"]
    assert rows[1]["fields_masked"] == "b: first 3 / last 4 kept"
    assert rows[0]["why"] == "the list entry has expired" and rows[1]["why"] == ""
    other_version = {("e", 2): {"b": "first 3 / last 4 kept"}}
    assert report_rows(ENTRIES, Filter(), mask_words=other_version)[1]["fields_masked"] == (
        "b: hmac")  # another version's masks are not borrowed


def test_csv_and_json_carry_every_column_uncut() -> None:
    long_fields = [f"field_{i:02d}" for i in range(30)]
    entry = AuditEntry("audit.d", 0, 9, {**ENTRIES[0].record, "fields_delivered": long_fields})
    rows = report_rows([entry], Filter(), mask_words={("e", 1): {"b": "first 3 / last 4 kept"}})
    parsed = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert list(parsed[0]) == list(COLUMNS)
    assert parsed[0]["fields_delivered"] == ",".join(long_fields)
    assert parsed[0]["fields_masked"] == "b: first 3 / last 4 kept"
    assert set(json.loads(to_json(rows))[0]) == set(COLUMNS)


def test_report_offers_only_the_options_that_apply() -> None:
    from click.testing import CliRunner

    from shulian.cli.main import cli

    runner = CliRunner()
    help_text = runner.invoke(cli, ["audit", "report", "--help"]).output
    assert "--egress-topic" not in help_text and "--no-digests" not in help_text
    assert "--canonical-topic" in help_text and "--record-key" in help_text
    result = runner.invoke(cli, ["audit", "report", "--consumer", "tax",
                                 "--canonical-topic", "canonical.x"])
    assert result.exit_code == 2 and "only with --record-key" in result.output
