"""``shulian deadletters``' service and its refusals, on dead-letter messages shaped as the
ingest stage writes them (reason headers, original bytes as the value, original key)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from shulian.audit import deadletters as dl
from shulian.audit.window import Window
from shulian.chain.messages import InMessage
from shulian.chain.topology import Topology
from shulian.cli.main import cli

CITIZEN_ID = "440106199001011234"
NAME = "张三丰"
PHONE = "13800138000"
# 2026-03-01T08:00:00+08:00 and an hour later
T0, T1 = 1_772_323_200_000, 1_772_326_800_000


def _letter(topic: str, offset: int, ts: int, reason: str, *, field: str | None = None,
            check: str | None = None, detail: str = "x") -> InMessage:
    headers: list[tuple[str, bytes | None]] = [
        ("shulian.reason", reason.encode()), ("shulian.detail", detail.encode()),
        ("shulian.source.topic", b"raw.psb.household_change"),
        ("shulian.source.partition", b"1"), ("shulian.source.offset", str(offset).encode())]
    if field:
        headers.append(("shulian.field", field.encode()))
    if check:
        headers.append(("shulian.check", check.encode()))
    headers.append(("orig.x-citizen", CITIZEN_ID.encode()))
    value = json.dumps({"SFZH": CITIZEN_ID, "XM": NAME, "LXDH": PHONE},
                       ensure_ascii=False).encode()
    return InMessage(topic=topic, partition=1, offset=offset, key=CITIZEN_ID.encode(),
                     value=value, timestamp_ms=ts, headers=headers)


MSGS = [
    _letter("deadletter.psb.household_change", 0, T0, "element_check_failed",
            field="citizen_id", check="check_digit",
            detail="GB 11643 check character does not match"),
    _letter("deadletter.psb.household_change", 1, T1, "bad_wire_format",
            detail="magic byte 7 is not 0"),
    _letter("deadletter.amr.business_licence", 2, T1, "missing_field", field="enterprise_type"),
]


def test_rows_say_why_in_words_which_field_when_and_never_the_content() -> None:
    letters = dl.select(MSGS, Topology(), dl.DeadLetterFilter())
    rows = dl.rows(letters)
    assert [r["reason"] for r in rows] == ["element_check_failed", "missing_field",
                                           "bad_wire_format"]
    first = rows[0]
    assert first["rejected_at"] == "2026-03-01T08:00:00.000+08:00"
    assert (first["agency"], first["dataset"], first["field"]) == (
        "psb", "household_change", "citizen_id")
    assert first["why"] == "a field failed its data-element check"
    assert first["check_words"] == "the check character does not match"
    assert first["source"] == "raw.psb.household_change[1]@0"
    assert first["deadletter"] == "deadletter.psb.household_change[1]@0"
    assert first["bytes"] == len(MSGS[0].value or b"")
    assert dl.rows(letters, lang="zh")[0]["why"] == "某字段未通过数据元校验"
    text = json.dumps(rows, ensure_ascii=False)
    for personal in (CITIZEN_ID, NAME, PHONE):
        assert personal not in text


def test_filter_by_agency_dataset_reason_and_window() -> None:
    topo = Topology()
    assert len(dl.select(MSGS, topo, dl.DeadLetterFilter(agency="psb"))) == 2
    assert len(dl.select(MSGS, topo, dl.DeadLetterFilter(dataset="business_licence"))) == 1
    assert [d.reason for d in dl.select(MSGS, topo, dl.DeadLetterFilter(
        reason="bad_wire_format"))] == ["bad_wire_format"]
    assert len(dl.select(MSGS, topo, dl.DeadLetterFilter(
        window=Window(start_ms=T0 + 1)))) == 2
    assert dl.summary(dl.select(MSGS, topo, dl.DeadLetterFilter(agency="psb"))) == [
        {"agency": "psb", "dataset": "household_change", "reason": "bad_wire_format",
         "field": "", "records": 1},
        {"agency": "psb", "dataset": "household_change", "reason": "element_check_failed",
         "field": "citizen_id", "records": 1}]


def test_namespaced_topics_and_topic_selection() -> None:
    from shulian.catalog.load import load_catalog
    from shulian.settings import REPO_ROOT

    catalog = load_catalog(REPO_ROOT / "catalog", schemas_dir=REPO_ROOT / "schemas")
    topo = Topology(namespace="ns1")
    topics = dl.deadletter_topics(catalog, topo, agency="psb", dataset=None)
    assert topics == ["ns1.deadletter.psb.household_change"]
    assert "ns1.deadletter._canonical.birth_certificate" in dl.deadletter_topics(
        catalog, topo, agency=None, dataset="birth_certificate")
    assert dl.parse(_letter("ns1.deadletter.psb.household_change", 0, T0, "decode_error"),
                    topo).agency == "psb"


def test_show_original_is_refused_and_prints_no_bytes() -> None:
    result = CliRunner().invoke(cli, ["deadletters", "--agency", "psb", "--show-original",
                                      "--bootstrap", "127.0.0.1:1"])
    assert result.exit_code == 2
    assert "refused" in result.output and "per-agency ACLs" in result.output
    help_text = CliRunner().invoke(cli, ["deadletters", "--help"]).output
    assert "Refused" in help_text and "embedded stack" in help_text


def test_unknown_agency_dataset_or_reason_is_a_clear_error() -> None:
    runner = CliRunner()
    for args, what in ((["--reason", "nope"], "not a reason code"),
                       (["--agency", "nope"], "no agency publishes as 'nope'"),
                       (["--dataset", "nope"], "no dataset 'nope'"),
                       (["--since", "yesterday"], "is not a time")):
        result = runner.invoke(cli, ["deadletters", "--bootstrap", "127.0.0.1:1", *args])
        assert result.exit_code == 2, (args, result.output)
        assert what in result.output, (args, result.output)
