"""File drop: CSV or JSON Lines files dropped in a directory, produced to the raw topic.

One (agency, dataset) per connector. Files matching ``pattern`` are taken oldest first once
unchanged for ``settle_s`` (better: write under another name, then rename into place). Each
record is checked and encoded like the gateway's (:func:`connectors.coerce.encode_checked`);
a bad record goes to ``deadletter.<agency>.<dataset>`` with its original bytes and reason
headers (``shulian.reason/.detail/.field/.check``, ``shulian.source.file/.line``), never
dropped. A finished file moves to ``done/``; a file that cannot be read as a whole (CSV header
naming unknown fields or lacking required ones) moves to ``failed/`` with a ``.reason`` note.

Resume: the state file holds the current file's identity (name, size, mtime, SHA-256) and how
many records (CSV rows after the header, JSONL lines) the broker has acknowledged. It is written
atomically after each acknowledged chunk, so a restart continues at the next record: nothing
re-sent, nothing skipped. (After a crash *inside* a chunk, that chunk's records acknowledged
before the crash are sent again: at most ``chunk_lines`` duplicates, at-least-once.)
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.base import ThreadedConnector
from connectors.coerce import RawSchema, encode_checked, record_key
from connectors.metrics import ConnectorMetrics
from connectors.sources.config import DropFormat, FileDropConfig
from connectors.sources.plumbing import (
    Acks,
    RawProducer,
    RawSchemas,
    deadletter_topic,
    raw_topic,
)
from shulian.chain.headers import CONNECTOR, rejected_headers
from shulian.errors import BrokerError, InfrastructureError
from shulian.log import get_logger
from shulian.logic.result import Accepted, Reason, Rejected
from shulian.settings import Settings

__all__ = ["DropRecord", "FileDropSource", "FileIdentity", "read_records", "write_state"]

log = get_logger(__name__)


@dataclass(frozen=True)
class FileIdentity:
    name: str
    size: int
    mtime_ns: int
    sha256: str

    @classmethod
    def of(cls, path: Path) -> FileIdentity:
        st = path.stat()
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return cls(path.name, st.st_size, st.st_mtime_ns, h.hexdigest())


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


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Atomically replace the state file (write, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(state, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _read_state(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise InfrastructureError(f"state file {path} is unreadable: {exc}") from exc
    return data if isinstance(data, dict) else None


def _jsonl(path: Path, encoding: str) -> Iterator[DropRecord]:
    with path.open("rb") as fh:
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
    with path.open("rb") as fh:
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


class FileDropSource(ThreadedConnector):
    def __init__(self, config: FileDropConfig, *, settings: Settings,
                 metrics: ConnectorMetrics) -> None:
        super().__init__(config.name)
        self.config = config
        self.metrics = metrics.source
        self.producer = RawProducer(settings, timeout_s=config.produce_timeout_s)
        self.schemas = RawSchemas(settings.registry_url)
        self.topic = raw_topic(config.agency, config.dataset)
        self.dlq = deadletter_topic(config.agency, config.dataset)
        self.done_dir = config.directory / "done"
        self.failed_dir = config.directory / "failed"
        self.null_values = frozenset(config.csv.null_values)

    # ------------------------------------------------------------------ lifecycle
    def setup(self) -> None:
        if not self.config.directory.is_dir():
            raise InfrastructureError(f"file drop {self.name}: directory "
                                      f"{self.config.directory} does not exist")
        for d in (self.done_dir, self.failed_dir, self.config.state_path.parent):
            d.mkdir(parents=True, exist_ok=True)
        self.producer.check([self.topic, self.dlq])
        self.schemas.get(self.config.agency, self.config.dataset)
        log.info("filedrop.ready", connector=self.name, directory=str(self.config.directory),
                 topic=self.topic)

    def close(self) -> None:
        self.producer.flush()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if not self.step(stop):
                stop.wait(self.config.poll_interval_s)

    def step(self, stop: threading.Event) -> bool:
        """Work on the next file (resuming the one in the state file) until it is done or
        ``stop`` is set after a chunk; False when no file is waiting."""
        picked = self._next_file()
        if picked is None:
            return False
        path, ident, start = picked
        self._process(path, ident, start, stop)
        return True

    # ------------------------------------------------------------------ files
    def _candidates(self) -> list[Path]:
        now = time.time()
        found = []
        for p in self.config.directory.glob(self.config.pattern):
            if not p.is_file() or p.name.startswith("."):
                continue
            if now - p.stat().st_mtime < self.config.settle_s:
                continue
            found.append(p)
        return sorted(found, key=lambda p: (p.stat().st_mtime_ns, p.name))

    def _next_file(self) -> tuple[Path, FileIdentity, int] | None:
        state = _read_state(self.config.state_path)
        if state is not None:
            path = self.config.directory / str(state.get("file", ""))
            if path.is_file():
                ident = FileIdentity.of(path)
                if (ident.size, ident.mtime_ns, ident.sha256) == (
                        state.get("size"), state.get("mtime_ns"), state.get("sha256")):
                    done = int(state.get("lines_done", 0))
                    log.info("filedrop.resume", connector=self.name, file=path.name,
                             lines_done=done)
                    return path, ident, done
                log.warning("filedrop.state_mismatch", connector=self.name, file=path.name)
            self.config.state_path.unlink(missing_ok=True)
        for path in self._candidates():
            return path, FileIdentity.of(path), 0
        return None

    def _save(self, ident: FileIdentity, lines_done: int) -> None:
        write_state(self.config.state_path, {
            "file": ident.name, "size": ident.size, "mtime_ns": ident.mtime_ns,
            "sha256": ident.sha256, "lines_done": lines_done,
            "updated": dt.datetime.now(dt.UTC).isoformat()})

    def _move(self, path: Path, target_dir: Path, note: str | None = None) -> Path:
        target = target_dir / path.name
        if target.exists():
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
            target = target_dir / f"{path.stem}.{stamp}{path.suffix}"
        os.replace(path, target)
        if note is not None:
            target.with_name(target.name + ".reason").write_text(note + "\n", encoding="utf-8")
        return target

    def _process(self, path: Path, ident: FileIdentity, start: int,
                 stop: threading.Event) -> None:
        schema = self.schemas.get(self.config.agency, self.config.dataset)
        done = start
        chunk: list[DropRecord] = []
        try:
            for rec in read_records(path, self.config, schema):
                if rec.number < start:
                    continue
                chunk.append(rec)
                if len(chunk) >= self.config.chunk_lines:
                    if not self._send(chunk, path.name, schema, stop):
                        return
                    done += len(chunk)
                    self._save(ident, done)
                    chunk = []
                    if stop.is_set():
                        log.info("filedrop.paused", connector=self.name, file=path.name,
                                 lines_done=done)
                        return
        except HeaderProblem as exc:
            moved = self._move(path, self.failed_dir, str(exc))
            self.config.state_path.unlink(missing_ok=True)
            self.metrics.rejected.labels(self.name, "unreadable_file").inc()
            log.error("filedrop.file_failed", connector=self.name, file=moved.name, why=str(exc))
            return
        if chunk:
            if not self._send(chunk, path.name, schema, stop):
                return
            done += len(chunk)
            self._save(ident, done)
        moved = self._move(path, self.done_dir)
        self.config.state_path.unlink(missing_ok=True)
        log.info("filedrop.file_done", connector=self.name, file=moved.name, records=done)

    def _send(self, chunk: list[DropRecord], file: str, schema: RawSchema,
              stop: threading.Event) -> bool:
        """Produce one chunk and wait for every ack; retried while the broker fails. False when
        stopped before the chunk was acknowledged (its state is not advanced)."""
        backoff = 0.2
        while True:
            started = time.monotonic()
            acks = Acks()
            sent = out = 0
            for rec in chunk:
                if rec.fields is None:
                    continue
                result: Accepted[bytes] | Rejected = (
                    rec.fields if isinstance(rec.fields, Rejected)
                    else encode_checked(schema, rec.fields, null_values=self.null_values))
                sent += 1
                if isinstance(result, Rejected):
                    self.producer.produce(self.dlq, key=None, value=rec.raw, on_delivery=acks,
                                          headers=rejected_headers(
                                              result, extra=[(CONNECTOR, self.name)],
                                              source={"file": file, "line": rec.line}))
                else:
                    assert isinstance(rec.fields, dict)
                    key = record_key(rec.fields, self.config.key_fields)
                    self.producer.produce(self.topic, key=key, value=result.value,
                                          on_delivery=acks)
                    out += 1
                self.producer.poll(0)
            self.metrics.lag.labels(self.name).set(sent)
            left = self.producer.flush()
            self.metrics.lag.labels(self.name).set(0)
            if left == 0 and not acks.errors and acks.ok == sent:
                self.metrics.records_in.labels(self.name).inc(sent)
                self.metrics.records_out.labels(self.name, self.topic).inc(out)
                if sent - out:
                    self.metrics.rejected.labels(self.name, "deadlettered").inc(sent - out)
                self.metrics.delivery_latency.labels(self.name).observe(
                    time.monotonic() - started)
                return True
            self.metrics.errors.labels(self.name, "broker").inc()
            why = acks.errors[0] if acks.errors else f"{left} records unacknowledged"
            log.warning("filedrop.chunk_failed", connector=self.name, file=file, error=why,
                        retry_in_s=backoff)
            if stop.wait(backoff):
                raise BrokerError(f"file drop {self.name} stopped with chunk of {file} "
                                  f"unacknowledged: {why}")
            backoff = min(backoff * 2, 10.0)
