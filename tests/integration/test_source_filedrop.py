"""File drop on the real broker and registry: CSV and JSONL, dead letters with reasons,
done/failed folders, and a restart in the middle of a file without loss or duplicates."""

from __future__ import annotations

import csv
import io
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from shulian.chain.headers import text_of
from shulian.connectors.metrics import ConnectorMetrics
from shulian.connectors.sources.config import FileDropConfig
from shulian.connectors.sources.filedrop import FileDropSource
from shulian.embedded.net import wait_until
from shulian.io.kafka import TopicSpec, admin_client, consumer_config, ensure_topics
from shulian.settings import Settings, load_settings
from tests.fixtures.registry import RegistryProcess
from tests.fixtures.sources import household, read_topic, setup_dataset

pytestmark = pytest.mark.integration

FIELDS = list(household(0))


def settings_for(bootstrap: str, registry: RegistryProcess, agency: str) -> Settings:
    settings = load_settings(bootstrap_servers=bootstrap, registry_url=registry.url)
    setup_dataset(settings, agency)
    ensure_topics(admin_client(settings),
                  [TopicSpec(f"deadletter.{agency}.household_change", 1)])
    return settings


def csv_text(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: "" if v is None else v for k, v in r.items()})
    return buf.getvalue()


def source(config: FileDropConfig, settings: Settings) -> FileDropSource:
    src = FileDropSource(config, settings=settings,
                         metrics=ConnectorMetrics.create(CollectorRegistry()))
    src.setup()
    return src


def dead_letters(settings: Settings, topic: str, n: int) -> list[tuple[bytes, dict[str, Any]]]:
    c = Consumer(consumer_config(settings, group_id=f"t-{topic}"))
    c.assign([TopicPartition(topic, 0, 0)])
    out: list[tuple[bytes, dict[str, Any]]] = []
    deadline = time.monotonic() + 20
    try:
        while len(out) < n and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            headers: Any = m.headers() or []
            out.append((m.value() or b"", dict(headers)))
    finally:
        c.close()
    return out


def test_csv_with_bad_rows_and_a_jsonl_file(
    bootstrap: str, registry: RegistryProcess, unique: str, tmp_path: Path
) -> None:
    agency = f"f{unique}"
    settings = settings_for(bootstrap, registry, agency)
    good = [household(i) for i in range(5)]
    text = csv_text(good)
    text += "L9,440106199001011234,李四\n"  # too few cells
    (tmp_path / "a.csv").write_text(text, encoding="utf-8")
    (tmp_path / "b.csv").write_text("LSH,NOT_A_FIELD\n1,2\n", encoding="utf-8")
    cfg = FileDropConfig(name=f"d-{unique}", agency=agency, dataset="household_change",
                         directory=tmp_path, settle_s=0, chunk_lines=3, key_fields=("LSH",))
    src = source(cfg, settings)
    stop = threading.Event()
    while src.step(stop):
        pass
    assert (tmp_path / "done" / "a.csv").exists() and not (tmp_path / "a.csv").exists()
    assert (tmp_path / "failed" / "b.csv").exists()
    reason = (tmp_path / "failed" / "b.csv.reason").read_text()
    assert "position(s) 2" in reason and "missing required column 'SFZH'" in reason
    assert not cfg.state_path.exists()

    jcfg = FileDropConfig.model_validate({**cfg.model_dump(), "pattern": "*.jsonl",
                                          "format": "jsonl", "name": f"j-{unique}"})
    lines = [json.dumps(household(i), ensure_ascii=False) for i in range(5, 8)]
    lines.insert(1, '{"LSH": "L1", "XM": 7}')  # missing fields
    lines.insert(2, "not json")
    (tmp_path / "c.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    jsrc = source(jcfg, settings)
    assert jsrc.step(stop)
    assert (tmp_path / "done" / "c.jsonl").exists()

    got = read_topic(settings, f"raw.{agency}.household_change", 8)
    assert sorted(v["LSH"] for _, v in got) == [f"L{i:06d}" for i in range(8)]
    assert {k for k, _ in got} == {f"L{i:06d}".encode() for i in range(8)}
    dl = dead_letters(settings, f"deadletter.{agency}.household_change", 3)
    by_line = {(h["shulian.source.file"], h["shulian.source.line"]): (v, h) for v, h in dl}
    v, h = by_line[(b"a.csv", b"7")]
    assert v == b"L9,440106199001011234,\xe6\x9d\x8e\xe5\x9b\x9b"  # original bytes
    assert (h["shulian.reason"], h["shulian.check"]) == (b"decode_error", b"columns")
    v, h = by_line[(b"c.jsonl", b"2")]
    assert h["shulian.reason"] == b"missing_field"
    v, h = by_line[(b"c.jsonl", b"3")]
    assert (v, h["shulian.check"]) == (b"not json", b"json")


def test_restart_mid_file_neither_resends_nor_skips(
    bootstrap: str, registry: RegistryProcess, unique: str, tmp_path: Path
) -> None:
    agency = f"r{unique}"
    settings = settings_for(bootstrap, registry, agency)
    rows = [household(i) for i in range(100)]
    (tmp_path / "big.csv").write_text(csv_text(rows), encoding="utf-8")
    cfg = FileDropConfig(name=f"r-{unique}", agency=agency, dataset="household_change",
                         directory=tmp_path, settle_s=0, chunk_lines=10, poll_interval_s=0.1)
    first = source(cfg, settings)
    stopped = threading.Event()
    stopped.set()  # stop after the first acknowledged chunk
    assert first.step(stopped)
    first.close()
    state = json.loads(cfg.state_path.read_text())
    assert state["lines_done"] == 10 and (tmp_path / "big.csv").exists()

    second = source(cfg, settings)  # a new process: only the state file carries over
    second.start()
    try:
        assert wait_until(lambda: (tmp_path / "done" / "big.csv").exists(), timeout_s=30)
    finally:
        second.stop()
    assert second.failure() is None
    got = read_topic(settings, f"raw.{agency}.household_change", 100)
    lsh = [v["LSH"] for _, v in got]
    assert sorted(lsh) == [f"L{i:06d}" for i in range(100)]  # each exactly once


def test_legacy_encoded_file_name_with_a_bad_row_is_dead_lettered(
    bootstrap: str, registry: RegistryProcess, unique: str, tmp_path: Path
) -> None:
    """A GBK file name (``报告.csv`` as bytes on Linux) with one bad row: the dead letter's
    ``shulian.source.file`` says the name's bytes as escapes, and the connector goes on."""
    agency = f"g{unique}"
    settings = settings_for(bootstrap, registry, agency)
    raw_name = "报告.csv".encode("gbk")
    text = csv_text([household(0)]) + "L9,440106199001011234,李四\n"
    with open(os.path.join(os.fsencode(tmp_path), raw_name), "wb") as fh:
        fh.write(text.encode("utf-8"))
    cfg = FileDropConfig(name=f"g-{unique}", agency=agency, dataset="household_change",
                         directory=tmp_path, settle_s=0)
    src = source(cfg, settings)
    assert src.step(threading.Event())
    assert sorted(os.listdir(os.fsencode(tmp_path / "done"))) == [raw_name,
                                                                  raw_name + b".outcome"]
    (_, h), = dead_letters(settings, f"deadletter.{agency}.household_change", 1)
    assert h["shulian.source.file"] == b"\\xb1\\xa8\\xb8\\xe6.csv"
    assert os.fsencode(text_of(h["shulian.source.file"])) == raw_name
    assert h["shulian.reason"] == b"decode_error"
    assert len(read_topic(settings, f"raw.{agency}.household_change", 1)) == 1


def test_links_fifos_dotfiles_and_files_still_being_written(
    bootstrap: str, registry: RegistryProcess, unique: str, tmp_path: Path
) -> None:
    agency = f"h{unique}"
    settings = settings_for(bootstrap, registry, agency)
    drop = tmp_path / "drop"
    drop.mkdir()
    secret = tmp_path / "secret.csv"  # outside the folder: must never be read
    secret.write_text(csv_text([household(99)]), encoding="utf-8")
    (drop / "link.csv").symlink_to(secret)
    os.mkfifo(drop / "pipe.csv")
    (drop / ".partial.csv").write_text(csv_text([household(98)]), encoding="utf-8")
    whole = csv_text([household(0), household(1)])
    (drop / "slow.csv").write_text(whole[:-20], encoding="utf-8")  # mid-line
    now = [1000.0]
    cfg = FileDropConfig(name=f"h-{unique}", agency=agency, dataset="household_change",
                         directory=drop, settle_s=5, incomplete_after_s=60)
    src = FileDropSource(cfg, settings=settings,
                         metrics=ConnectorMetrics.create(CollectorRegistry()),
                         clock=lambda: now[0])
    src.setup()
    stop = threading.Event()
    with capture_logs() as logs:
        assert not src.step(stop)  # first sight: nothing settled yet
        for _ in range(3):
            now[0] += 10
            assert not src.step(stop)  # settled, but the last line is incomplete
    failed = drop / "failed"
    assert (failed / "link.csv").is_symlink() and secret.exists()
    assert "symbolic link" in (failed / "link.csv.reason").read_text()
    assert "FIFO" in (failed / "pipe.csv.reason").read_text()
    events = [e["event"] for e in logs]
    assert events.count("filedrop.dotfile_ignored") == 1
    assert events.count("filedrop.waiting_for_last_line") == 1
    assert (drop / ".partial.csv").exists() and (drop / "slow.csv").exists()

    with (drop / "slow.csv").open("a", encoding="utf-8") as fh:  # the writer goes on
        fh.write(whole[-20:])
    os.utime(drop / "slow.csv", ns=(1, 2))  # size and mtime changed: settle again
    assert not src.step(stop)
    now[0] += 10
    assert src.step(stop)
    assert (drop / "done" / "slow.csv").exists()
    got = read_topic(settings, f"raw.{agency}.household_change", 2)
    assert sorted(v["LSH"] for _, v in got) == ["L000000", "L000001"]  # not L000099

    (drop / "stuck.csv").write_text(whole[:-20], encoding="utf-8")  # a writer that died
    assert not src.step(stop)
    now[0] += 61
    assert not src.step(stop)
    assert "last line is incomplete" in (failed / "stuck.csv.reason").read_text()


def test_done_file_says_what_became_of_each_row(
    bootstrap: str, registry: RegistryProcess, unique: str, tmp_path: Path
) -> None:
    agency = f"o{unique}"
    settings = settings_for(bootstrap, registry, agency)
    text = csv_text([household(i) for i in range(4)]) + "L9,440106199001011234,李四\n"
    (tmp_path / "a.csv").write_text(text, encoding="utf-8")
    cfg = FileDropConfig(name=f"o-{unique}", agency=agency, dataset="household_change",
                         directory=tmp_path, settle_s=0, chunk_lines=2, key_fields=("LSH",))
    src = source(cfg, settings)
    stop = threading.Event()
    stop.set()  # one chunk, then a "restart": the outcome so far is kept in the state file
    assert src.step(stop)
    assert cfg.state_path.stat().st_mode & 0o777 == 0o600
    assert source(cfg, settings).step(threading.Event())
    note = (tmp_path / "done" / "a.csv.outcome").read_text(encoding="utf-8")
    raw = f"raw.{agency}.household_change"
    dlq = f"deadletter.{agency}.household_change"
    assert f"records: 5: 4 written to {raw}, 1 dead-lettered by the file drop to {dlq}" in note
    assert "line 6: decode_error (columns)" in note
    assert f"go to {dlq} with shulian.source.topic={raw}" in note
    assert "李四" not in note and "440106" not in note  # no field values
    seen: dict[int, list[int]] = {}
    c = Consumer(consumer_config(settings, group_id=f"t-{unique}"))
    c.assign([TopicPartition(raw, p, 0) for p in range(2)])
    deadline = time.monotonic() + 20
    try:
        while sum(map(len, seen.values())) < 4 and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and not m.error():
                seen.setdefault(m.partition() or 0, []).append(m.offset() or 0)
    finally:
        c.close()
    assert sum(map(len, seen.values())) == 4
    for p, offsets in seen.items():
        assert f"partition {p} offsets {min(offsets)}-{max(offsets)}" in note
