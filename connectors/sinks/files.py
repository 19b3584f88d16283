"""Files sink: JSON Lines or CSV, one file series per (topic, partition), rotated by size or age.

Files are named ``<topic>.p<partition>.<first offset, 20 digits>.<jsonl|csv>`` in ``directory``.
Appending a batch is atomic: the current file's bytes plus the batch go to a temp file in the
same directory, which is fsynced and renamed over the file (then the directory is fsynced), so a
reader sees the file before or after the batch, never half of it; offsets are committed after.
Records at or below the last offset already in the file are skipped, so a batch redelivered
after a crash between rename and commit is not written twice. A new file starts when the
current one reaches ``rotate_bytes`` or ``rotate_seconds`` of age, and (CSV) when the columns
change (a new view version): every CSV file has one header.

CSV injection (OWASP "CSV Injection"): a spreadsheet opening the file would run a cell that
starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return as a formula. Such a *text*
cell is written with a leading apostrophe (``'=HYPERLINK(...)`` shows as text, and the apostrophe
tells a reader the cell was neutralised). Numbers are data, not formulas: a value of a numeric
type (``-5``, ``-0.25``, a decimal) is written as is, and so is text that is wholly a plain
decimal number (``-5``, ``+86``, ``-1.5e3``); ``-5+cmd|...`` or ``+86 138 ...`` is not, and gets
the apostrophe. JSON Lines files are not touched (no spreadsheet evaluates them). CSV rows end
with CRLF (RFC 4180), and a cell holding a line break is quoted.

The files hold personal data: they (and their temporary files) are created mode 0600, readable
by the sink's own user only, and a directory the sink creates is 0700.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shulian.connectors.sinks.backoff import RetryPolicy
from shulian.connectors.sinks.config import FileFormat, FileSinkConfig
from shulian.connectors.sinks.failures import RetryableSinkError
from shulian.connectors.sinks.jsonable import to_jsonable
from shulian.connectors.sinks.records import SinkRecord
from shulian.connectors.sinks.webhook import webhook_records
from shulian.errors import SinkError
from shulian.log import get_logger

__all__ = ["FILE_MODE", "FilesSink", "neutralise_formula", "render_rows"]

log = get_logger("shulian.sinks.files")

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
FILE_MODE = 0o600


@dataclass
class _Segment:
    path: Path
    opened_at: float
    size: int
    last_offset: int
    columns: tuple[str, ...] | None


def render_rows(
    rows: Sequence[dict[str, Any]], fmt: FileFormat, *, columns: Sequence[str] = (),
    with_header: bool = False,
) -> bytes:
    """JSON Lines, or CSV rows in ``columns`` order (preceded by the header when asked)."""
    if fmt is FileFormat.JSONL:
        return b"".join(
            json.dumps(to_jsonable(r), ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
            for r in rows)
    buf = io.StringIO()
    # RFC 4180 line ends: with "\r\n" as the terminator, Python's csv quotes a cell holding a
    # bare carriage return too (with "\n" alone it did not, and the row broke in two)
    w = csv.writer(buf, lineterminator="\r\n")
    if with_header:
        w.writerow(columns)
    for r in rows:
        w.writerow([_csv_cell(r.get(c)) for c in columns])
    return buf.getvalue().encode("utf-8")


def _csv_cell(v: Any) -> str:
    j = to_jsonable(v)
    if j is None:
        return ""
    if isinstance(j, dict | list):
        return json.dumps(j, ensure_ascii=False, separators=(",", ":"))
    if isinstance(j, bool):
        return "true" if j else "false"
    if isinstance(j, str):
        return neutralise_formula(j)
    return str(j)


def neutralise_formula(text: str) -> str:
    """A text cell a spreadsheet will not run as a formula (see the module: OWASP rule)."""
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


class FilesSink:
    def __init__(self, config: FileSinkConfig, *, clock: Any = time.time) -> None:
        self.config = config
        self.name = config.name
        self.retry: RetryPolicy = config.retry
        self.directory = Path(config.directory)
        self._clock = clock
        self._segments: dict[tuple[str, int], _Segment | None] = {}

    @property
    def _ext(self) -> str:
        return self.config.format.value

    def setup(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            probe = self.directory / f".probe-{uuid.uuid4().hex}"
            probe.write_bytes(b"")
            probe.unlink()
            for stale in self.directory.glob(".*.tmp-*"):
                stale.unlink()
        except OSError as exc:
            raise SinkError(f"sink {self.name}: directory {self.directory} is not writable: "
                            f"{exc}") from exc
        log.info("sink.files.ready", connector=self.name, directory=str(self.directory))

    # ------------------------------------------------------------------ writing
    def write_batch(self, records: Sequence[SinkRecord]) -> None:
        by_tp: dict[tuple[str, int], list[SinkRecord]] = {}
        for r in records:
            by_tp.setdefault((r.topic, r.partition), []).append(r)
        try:
            for tp, recs in by_tp.items():
                self._write_tp(tp, recs)
        except OSError as exc:
            raise RetryableSinkError(f"cannot write in {self.directory}: {exc}") from exc

    def _write_tp(self, tp: tuple[str, int], recs: list[SinkRecord]) -> None:
        seg = self._segment(tp)
        if seg is not None:
            recs = [r for r in recs if r.offset > seg.last_offset]
        rows = webhook_records(recs)
        i = 0
        while i < len(rows):
            cols = tuple(rows[i])
            j = i
            jsonl = self.config.format is FileFormat.JSONL
            while j < len(rows) and (jsonl or tuple(rows[j]) == cols):
                j += 1
            seg = self._segment(tp)
            if seg is None or self._must_rotate(seg, cols):
                seg = self._new_segment(tp, recs[i].offset, cols)
            data = render_rows(rows[i:j], self.config.format, columns=cols,
                               with_header=seg.size == 0)
            self._append(seg, data)
            seg.last_offset = recs[j - 1].offset
            i = j

    def _must_rotate(self, seg: _Segment, cols: tuple[str, ...]) -> bool:
        if seg.size >= self.config.rotate_bytes:
            return True
        if self._clock() - seg.opened_at >= self.config.rotate_seconds:
            return True
        return self.config.format is FileFormat.CSV and seg.columns not in (None, cols)

    def _new_segment(self, tp: tuple[str, int], first: int, cols: tuple[str, ...]) -> _Segment:
        topic, partition = tp
        path = self.directory / f"{_SAFE.sub('_', topic)}.p{partition}.{first:020d}.{self._ext}"
        previous = self._segments.get(tp)
        seg = _Segment(path, self._clock(), 0, previous.last_offset if previous else -1, cols)
        self._segments[tp] = seg
        log.info("sink.files.rotated", connector=self.name, file=path.name)
        return seg

    def _append(self, seg: _Segment, data: bytes) -> None:
        tmp = seg.path.with_name(f".{seg.path.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            with os.fdopen(fd, "wb") as out:
                if seg.size and seg.path.exists():
                    with open(seg.path, "rb") as old:
                        while chunk := old.read(1 << 20):
                            out.write(chunk)
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, seg.path)
        finally:
            if tmp.exists():
                tmp.unlink()
        dfd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        seg.size += len(data)

    # ------------------------------------------------------------------ recovery
    def _segment(self, tp: tuple[str, int]) -> _Segment | None:
        if tp in self._segments:
            return self._segments[tp]
        topic, partition = tp
        files = sorted(self.directory.glob(f"{_SAFE.sub('_', topic)}.p{partition}.*.{self._ext}"))
        seg = self._recover(files[-1]) if files else None
        self._segments[tp] = seg
        return seg

    def _recover(self, path: Path) -> _Segment | None:
        """The newest file of a partition: its size, age, columns and last offset."""
        data = path.read_bytes()
        lines = [ln for ln in data.split(b"\n") if ln.strip()]
        if not lines:
            return None
        st = path.stat()
        if self.config.format is FileFormat.JSONL:
            last = json.loads(lines[-1])
            return _Segment(path, st.st_mtime, len(data), int(last["_kafka_offset"]), None)
        rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
        cols = tuple(rows[0])
        offset = int(rows[-1][cols.index("_kafka_offset")]) if len(rows) > 1 else -1
        return _Segment(path, st.st_mtime, len(data), offset, cols)

    def flush(self) -> None:
        """Nothing buffered: each batch is renamed into place inside ``write_batch``."""

    def close(self) -> None:
        self._segments.clear()
