"""Reading a dropped file: CSV or JSON Lines records, each with its first line number and
original bytes, parsed or rejected (:class:`~shulian.logic.result.Rejected`). Pure (no Kafka)."""

from __future__ import annotations

import csv
import errno
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from shulian.connectors.coerce import RawSchema
from shulian.connectors.sources.config import DropFormat, FileDropConfig
from shulian.logic.result import Reason, Rejected

__all__ = ["DropRecord", "HeaderProblem", "not_regular_reason", "open_regular", "read_records"]


@dataclass(frozen=True)
class DropRecord:
    """One record of a dropped file: its number (0-based), first line, original bytes and
    either the parsed fields or why it could not be parsed."""

    number: int
    line: int
    raw: bytes
    fields: dict[str, Any] | Rejected | None  # None: a blank line, skipped


class HeaderProblem(Exception):
    """The file cannot be read as a whole (moved to failed/)."""


def not_regular_reason(mode: int) -> str:
    """Why a file drop refuses a path that is not a regular file."""
    if stat.S_ISLNK(mode):
        return ("a symbolic link: the file drop never follows links (put the file itself in the "
                "folder)")
    return "not a regular file (a FIFO, socket or device)"


def open_regular(path: Path) -> IO[bytes]:
    """``path`` opened for reading if it is a regular file, never through a symbolic link
    (``O_NOFOLLOW``) and never blocking on a FIFO; else HeaderProblem saying why."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise HeaderProblem(not_regular_reason(stat.S_IFLNK)) from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise HeaderProblem(not_regular_reason(mode))
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _jsonl(path: Path, encoding: str) -> Iterator[DropRecord]:
    with open_regular(path) as fh:
        for n, raw in enumerate(fh):
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                yield DropRecord(n, n + 1, line, None)
                continue
            try:
                text = line.decode(encoding)
            except UnicodeDecodeError:
                yield DropRecord(n, n + 1, line, Rejected(
                    Reason.DECODE_ERROR, f"line is not valid {encoding}", check="encoding"))
                continue
            try:
                doc = json.loads(text)
            except (ValueError, RecursionError):
                yield DropRecord(n, n + 1, line, Rejected(
                    Reason.DECODE_ERROR, "line is not valid JSON", check="json"))
                continue
            if not isinstance(doc, dict):
                yield DropRecord(n, n + 1, line, Rejected(
                    Reason.DECODE_ERROR, "line is not a JSON object", check="json"))
                continue
            yield DropRecord(n, n + 1, line, doc)


class _Lines:
    """Decoded lines for csv.reader, remembering the raw bytes of the current record."""

    def __init__(self, fh: Any, encoding: str) -> None:
        self._fh = fh
        self._encoding = encoding
        self.raw: list[bytes] = []
        self.bad_encoding = False
        self.line = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        raw = self._fh.readline()
        if not raw:
            raise StopIteration
        self.line += 1
        self.raw.append(raw)
        try:
            return str(raw.decode(self._encoding))
        except UnicodeDecodeError:
            self.bad_encoding = True
            return str(raw.decode(self._encoding, "replace"))

    def take(self) -> tuple[bytes, bool]:
        raw, bad = b"".join(self.raw).rstrip(b"\r\n"), self.bad_encoding
        self.raw, self.bad_encoding = [], False
        return raw, bad


def _csv(path: Path, config: FileDropConfig, schema: RawSchema) -> Iterator[DropRecord]:
    opts = config.csv
    with open_regular(path) as fh:
        lines = _Lines(fh, config.encoding)
        reader = csv.reader(lines, delimiter=opts.delimiter, quotechar=opts.quotechar)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise HeaderProblem(f"header row is not valid CSV: {exc}") from None
        _, bad = lines.take()
        header = [h.strip().lstrip("\ufeff") for h in header]
        known = {f.name for f in schema.fields}
        # positions, not names: a file without a header would put personal data here
        unknown = [i + 1 for i, h in enumerate(header) if h not in known]
        problems = [f"{len(unknown)} column(s) not in the raw schema, at position(s) "
                    f"{', '.join(map(str, unknown[:10]))}"] if unknown else []
        if bad:
            problems.append(f"header is not valid {config.encoding}")
        if len(set(header)) != len(header):
            problems.append("duplicate column names")
        required = [f.name for f in schema.fields if not f.nullable and not f.has_default]
        problems += [f"missing required column {r!r}" for r in required if r not in header]
        if problems:
            raise HeaderProblem("; ".join(problems))
        n = 0
        while True:
            first = lines.line + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error:
                raw, _ = lines.take()
                yield DropRecord(n, first, raw, Rejected(
                    Reason.DECODE_ERROR, "row is not valid CSV", check="csv"))
                n += 1
                continue
            raw, bad = lines.take()
            if not row:
                yield DropRecord(n, first, raw, None)
            elif bad:
                yield DropRecord(n, first, raw, Rejected(
                    Reason.DECODE_ERROR, f"row is not valid {config.encoding}", check="encoding"))
            elif len(row) != len(header):
                yield DropRecord(n, first, raw, Rejected(
                    Reason.DECODE_ERROR, f"row has {len(row)} cells, the header {len(header)}",
                    check="columns"))
            else:
                yield DropRecord(n, first, raw, dict(zip(header, row, strict=True)))
            n += 1


def read_records(path: Path, config: FileDropConfig, schema: RawSchema) -> Iterator[DropRecord]:
    """The records of one dropped file, in order (HeaderProblem for an unreadable CSV)."""
    if config.format == DropFormat.JSONL:
        return _jsonl(path, config.encoding)
    return _csv(path, config, schema)
