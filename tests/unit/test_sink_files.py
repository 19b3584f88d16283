"""Files sink on the real filesystem: atomic appends, rotation, redelivery skipped, CSV headers."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any

from shulian.connectors.sinks.config import FileFormat, FileSinkConfig
from shulian.connectors.sinks.files import FilesSink
from shulian.connectors.sinks.records import SinkRecord

TOPIC = "egress.tax.business_licence"


def recs(first: int, n: int, *, partition: int = 0, extra: bool = False) -> list[SinkRecord]:
    out = []
    for off in range(first, first + n):
        value: dict[str, Any] = {"credit_code": f"C{off}", "issued_on": dt.date(2024, 1, 1),
                                 "_record_key": f"K{off}"}
        if extra:
            value["legal_rep"] = "x"
        out.append(SinkRecord(topic=TOPIC, partition=partition, offset=off, key=b"k",
                              raw_value=b"v").decoded(schema_id=1, value=value, schema=None))
    return out


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sink(tmp: Path, *, fmt: FileFormat = FileFormat.JSONL, rotate_bytes: int = 1 << 20,
         clock: Clock | None = None) -> FilesSink:
    s = FilesSink(FileSinkConfig(name="f", topics=(TOPIC,), directory=str(tmp), format=fmt,
                                 rotate_bytes=rotate_bytes, rotate_seconds=60),
                  clock=clock or Clock())
    s.setup()
    return s


def offsets(path: Path) -> list[int]:
    return [json.loads(line)["_kafka_offset"] for line in path.read_text().splitlines()]


def test_batches_append_to_one_file_and_leave_no_temp(tmp_path: Path) -> None:
    s = sink(tmp_path)
    s.write_batch(recs(0, 3))
    s.write_batch(recs(3, 2))
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == [f"{TOPIC}.p0.{0:020d}.jsonl"]
    assert offsets(files[0]) == [0, 1, 2, 3, 4]
    first = json.loads(files[0].read_text().splitlines()[0])
    assert first["issued_on"] == "2024-01-01" and first["_kafka_topic"] == TOPIC


def test_rotation_by_size_and_by_time(tmp_path: Path) -> None:
    clock = Clock()
    s = sink(tmp_path, rotate_bytes=300, clock=clock)
    for start in range(0, 12, 3):
        s.write_batch(recs(start, 3))
    by_size = sorted(tmp_path.iterdir())
    assert len(by_size) > 1
    clock.now += 61
    s.write_batch(recs(12, 1))
    files = sorted(tmp_path.iterdir())
    assert files[-1].name == f"{TOPIC}.p0.{12:020d}.jsonl"
    assert [o for f in files for o in offsets(f)] == list(range(13))


def test_redelivered_records_are_not_written_twice_even_after_restart(tmp_path: Path) -> None:
    s = sink(tmp_path)
    s.write_batch(recs(0, 5))
    s.write_batch(recs(3, 4))  # 3, 4 redelivered
    s.close()
    again = sink(tmp_path)  # a new process: recovers the last offset from the newest file
    again.write_batch(recs(5, 3))
    (f,) = tmp_path.iterdir()
    assert offsets(f) == list(range(8))


def test_partitions_get_their_own_files(tmp_path: Path) -> None:
    s = sink(tmp_path)
    s.write_batch(recs(0, 2, partition=0) + recs(0, 2, partition=1))
    assert sorted(f.name for f in tmp_path.iterdir()) == [
        f"{TOPIC}.p0.{0:020d}.jsonl", f"{TOPIC}.p1.{0:020d}.jsonl"]


def test_csv_has_one_header_per_file_and_rotates_when_columns_change(tmp_path: Path) -> None:
    s = sink(tmp_path, fmt=FileFormat.CSV)
    s.write_batch(recs(0, 2))
    s.write_batch(recs(2, 1))
    s.write_batch(recs(3, 2, extra=True))  # a new view version gained legal_rep
    files = sorted(tmp_path.iterdir())
    assert len(files) == 2
    rows0 = list(csv.DictReader(files[0].open()))
    rows1 = list(csv.DictReader(files[1].open()))
    assert [r["_kafka_offset"] for r in rows0] == ["0", "1", "2"]
    assert rows0[0]["issued_on"] == "2024-01-01"
    assert [r["legal_rep"] for r in rows1] == ["x", "x"]


def test_stale_temp_files_are_removed_at_setup(tmp_path: Path) -> None:
    (tmp_path / f".{TOPIC}.p0.x.jsonl.tmp-deadbeef").write_text("half")
    sink(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(tmp_path: Path) -> None:
    hostile = ["=HYPERLINK(\"http://x\",\"y\")", "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0",
               "@SUM(A1)", "\tx", "\rx", "+86 138 0000 0000"]
    plain = ["-5", "+86", "-1.5e3", "a=b", "张三", "", "'quoted"]
    values: list[Any] = [*hostile, *plain, -5, -0.25]
    rs = [SinkRecord(topic=TOPIC, partition=0, offset=i, key=b"k", raw_value=b"v").decoded(
              schema_id=1, value={"note": v, "_record_key": f"K{i}"}, schema=None)
          for i, v in enumerate([*values, "=1"])]
    s = sink(tmp_path, fmt=FileFormat.CSV)
    s.write_batch(rs[:-1])
    (f,) = tmp_path.iterdir()
    got = [r["note"] for r in csv.DictReader(f.open(newline=""))]
    assert got == ["'" + h for h in hostile] + plain + ["-5", "-0.25"]
    s.close()
    again = sink(tmp_path, fmt=FileFormat.CSV)  # recovery still reads the offsets back
    again.write_batch(rs[-3:])  # two redelivered, one new
    (f,) = tmp_path.iterdir()
    assert [r["note"] for r in csv.DictReader(f.open(newline=""))][-3:] == ["-5", "-0.25", "'=1"]


def test_files_and_new_directories_are_private(tmp_path: Path) -> None:
    target = tmp_path / "out"
    for fmt in FileFormat:
        s = sink(target / fmt.value, fmt=fmt)
        s.write_batch(recs(0, 2))
        s.write_batch(recs(2, 1))  # the rewrite keeps the mode
        (f,) = (target / fmt.value).iterdir()
        assert f.stat().st_mode & 0o777 == 0o600
        assert (target / fmt.value).stat().st_mode & 0o777 == 0o700
