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

from connectors.metrics import ConnectorMetrics
from connectors.sources.config import FileDropConfig
from connectors.sources.filedrop import FileDropSource
from shulian.chain.headers import text_of
from shulian.embedded.net import wait_until
from shulian.io.kafka import TopicSpec, admin_client, consumer_config, ensure_topics
from shulian.settings import Settings, load_settings
from tests.fixtures.registry import RegistryProcess
from tests.integration.test_source_gateway import household, read_topic, setup_dataset

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
    assert os.listdir(os.fsencode(tmp_path / "done")) == [raw_name]
    (_, h), = dead_letters(settings, f"deadletter.{agency}.household_change", 1)
    assert h["shulian.source.file"] == b"\\xb1\\xa8\\xb8\\xe6.csv"
    assert os.fsencode(text_of(h["shulian.source.file"])) == raw_name
    assert h["shulian.reason"] == b"decode_error"
    assert len(read_topic(settings, f"raw.{agency}.household_change", 1)) == 1
