"""File drop: CSV or JSON Lines files dropped in a directory, produced to the raw topic.

One (agency, dataset) per connector. Each record is checked and encoded like the gateway's
(:func:`shulian.connectors.coerce.encode_checked`); a bad record goes to
``deadletter.<agency>.<dataset>`` with its original bytes and reason headers
(``shulian.reason/.detail/.field/.check``, ``shulian.source.file/.line``), never dropped.

Which files are taken, oldest first:

* a regular file matching ``pattern``. A **symbolic link** is never followed: it is moved to
  ``failed/`` (the link itself, not what it points to) with a ``.reason`` note, and so is a FIFO,
  socket or device. A name starting with ``.`` is left alone (editors' and copy tools' temporary
  files) and logged once per name (``filedrop.dotfile_ignored``), not skipped silently.
* **only once complete**: its size and mtime were seen unchanged for ``settle_s`` (observed by
  this process, so a clock skew between the writer and this host does not matter) *and* it ends
  with a newline (a complete last line). A file that stays unchanged without a final newline
  for ``incomplete_after_s`` moves to ``failed/`` (a writer that died, or an export without a
  final newline: add one and drop it again). The settle rule cannot tell a writer paused
  longer than ``settle_s`` exactly at a line end from a finished file: the only guarantee is
  **write under another name (``.name`` or one not matching ``pattern``), then rename** into
  place, which is atomic.

Every file ends in ``done/`` or ``failed/``. A finished file moves to ``done/`` with
``<file>.outcome`` (:mod:`shulian.connectors.sources.filedrop_outcome`): counts, the dead-lettered
lines and their reasons, the raw offsets written, and where the rows the chain rejects later go. A
file that cannot be read as a whole (CSV header naming unknown fields or lacking required
ones) moves to ``failed/`` with a ``.reason`` note.

Resume: the state file (mode 0600) holds the current file's identity (name, size, mtime,
SHA-256), how many records (CSV rows after the header, JSONL lines) the broker has acknowledged
and the outcome so far. It is written atomically after each acknowledged chunk, so a restart
continues at the next record: nothing re-sent, nothing skipped. (After a crash *inside* a chunk,
that chunk's records acknowledged before the crash are sent again: at most ``chunk_lines``
duplicates, at-least-once.)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shulian.connectors.base import ThreadedConnector
from shulian.connectors.coerce import RawSchema, encode_checked, record_key
from shulian.connectors.metrics import ConnectorMetrics
from shulian.connectors.sources.config import FileDropConfig
from shulian.connectors.sources.filedrop_outcome import FileOutcome, display_name
from shulian.connectors.sources.filedrop_read import (
    DropRecord,
    HeaderProblem,
    not_regular_reason,
    open_regular,
    read_records,
)
from shulian.connectors.sources.plumbing import (
    Outgoing,
    RawProducer,
    RawSchemas,
    SendTo,
    deadletter_topic,
    raw_topic,
    read_state,
    send_batch,
    write_state,
)
from shulian.errors import InfrastructureError
from shulian.log import get_logger
from shulian.logic.result import Accepted, Rejected
from shulian.settings import Settings

__all__ = ["DropRecord", "FileDropSource", "FileIdentity", "read_records"]

log = get_logger(__name__)


@dataclass(frozen=True)
class FileIdentity:
    name: str
    size: int
    mtime_ns: int
    sha256: str

    @classmethod
    def of(cls, path: Path) -> FileIdentity:
        h = hashlib.sha256()
        with open_regular(path) as fh:
            st = os.fstat(fh.fileno())
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return cls(path.name, st.st_size, st.st_mtime_ns, h.hexdigest())


def _ends_with_newline(path: Path, size: int) -> bool:
    if size == 0:
        return True
    with open_regular(path) as fh:
        fh.seek(size - 1)
        return fh.read(1) == b"\n"


@dataclass(frozen=True)
class _Seen:
    size: int
    mtime_ns: int
    since: float  # clock() when first seen with this size and mtime


class FileDropSource(ThreadedConnector):
    def __init__(self, config: FileDropConfig, *, settings: Settings,
                 metrics: ConnectorMetrics, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(config.name)
        self.config = config
        self.metrics = metrics.source
        self.producer = RawProducer(settings, timeout_s=config.produce_timeout_s)
        self.schemas = RawSchemas(settings.registry_url, auth=settings.registry_auth_conf())
        self.topic = raw_topic(config.agency, config.dataset)
        self.dlq = deadletter_topic(config.agency, config.dataset)
        self.send_to = SendTo(self.name, self.topic, self.dlq, self.producer, self.metrics)
        self.done_dir = config.directory / "done"
        self.failed_dir = config.directory / "failed"
        self.null_values = frozenset(config.csv.null_values)
        self._clock = clock
        self._seen: dict[str, _Seen] = {}
        self._noted: set[tuple[str, str]] = set()

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
        self._process(*picked, stop)
        return True

    # ------------------------------------------------------------------ files
    def _note_once(self, event: str, name: str) -> None:
        if (event, name) not in self._noted:
            self._noted.add((event, name))
            log.warning(event, connector=self.name, file=display_name(name))

    def _refuse(self, path: Path, why: str) -> None:
        moved = self._move(path, self.failed_dir, why)
        self.metrics.rejected.labels(self.name, "refused_file").inc()
        log.error("filedrop.file_refused", connector=self.name,
                  file=display_name(moved.name), why=why)

    def _candidates(self) -> list[Path]:
        """Regular files matching the pattern, complete (see the module), oldest first; others
        are refused (moved to failed/) or waited for."""
        now = self._clock()
        seen: dict[str, _Seen] = {}
        ready: list[tuple[int, str, Path]] = []
        for p in self.config.directory.glob(self.config.pattern):
            name = p.name
            if name.startswith("."):
                self._note_once("filedrop.dotfile_ignored", name)
                continue
            try:
                st = p.lstat()
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                continue
            if not stat.S_ISREG(st.st_mode):
                self._refuse(p, not_regular_reason(st.st_mode))
                continue
            prev = self._seen.get(name)
            unchanged = prev is not None and (prev.size, prev.mtime_ns) == (
                st.st_size, st.st_mtime_ns)
            since = prev.since if prev is not None and unchanged else now
            seen[name] = _Seen(st.st_size, st.st_mtime_ns, since)
            if now - since < self.config.settle_s:
                continue
            try:
                complete = _ends_with_newline(p, st.st_size)
            except FileNotFoundError:
                continue
            except HeaderProblem as exc:  # replaced by a link or FIFO since lstat
                self._refuse(p, str(exc))
                continue
            if not complete:
                if now - since >= self.config.incomplete_after_s:
                    self._refuse(p, f"the last line is incomplete (no final newline) and the "
                                    f"file was unchanged for {self.config.incomplete_after_s:g} s:"
                                    " a writer that stopped, or an export without a final "
                                    "newline (add one and drop the file again)")
                else:
                    self._note_once("filedrop.waiting_for_last_line", name)
                continue
            ready.append((st.st_mtime_ns, name, p))
        self._seen = seen
        return [p for _, _, p in sorted(ready)]

    def _next_file(self) -> tuple[Path, FileIdentity, int, FileOutcome] | None:
        state = read_state(self.config.state_path)
        if state is not None:
            path = self.config.directory / str(state.get("file", ""))
            if path.is_file() and not path.is_symlink():
                ident = FileIdentity.of(path)
                if (ident.size, ident.mtime_ns, ident.sha256) == (
                        state.get("size"), state.get("mtime_ns"), state.get("sha256")):
                    done = int(state.get("lines_done", 0))
                    log.info("filedrop.resume", connector=self.name,
                             file=display_name(path.name), lines_done=done)
                    return path, ident, done, FileOutcome.from_state(state.get("outcome"))
                log.warning("filedrop.state_mismatch", connector=self.name,
                            file=display_name(path.name))
            self.config.state_path.unlink(missing_ok=True)
        for path in self._candidates():
            try:
                return path, FileIdentity.of(path), 0, FileOutcome()
            except HeaderProblem as exc:  # replaced by a link or FIFO since the scan
                self._refuse(path, str(exc))
        return None

    def _save(self, ident: FileIdentity, lines_done: int, outcome: FileOutcome) -> None:
        write_state(self.config.state_path, {
            "file": ident.name, "size": ident.size, "mtime_ns": ident.mtime_ns,
            "sha256": ident.sha256, "lines_done": lines_done, "outcome": outcome.to_state(),
            "updated": dt.datetime.now(dt.UTC).isoformat()})

    def _move(self, path: Path, target_dir: Path, note: str | None = None,
              suffix: str = ".reason") -> Path:
        target = target_dir / path.name
        if os.path.lexists(target):
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
            target = target_dir / f"{path.stem}.{stamp}{path.suffix}"
        os.replace(path, target)  # a symbolic link moves as the link itself
        if note is not None:
            target.with_name(target.name + suffix).write_text(note + "\n", encoding="utf-8")
        return target

    def _process(self, path: Path, ident: FileIdentity, start: int, outcome: FileOutcome,
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
                    self._send(chunk, path.name, schema, outcome, stop)
                    done += len(chunk)
                    self._save(ident, done, outcome)
                    chunk = []
                    if stop.is_set():
                        log.info("filedrop.paused", connector=self.name,
                                 file=display_name(path.name), lines_done=done)
                        return
        except HeaderProblem as exc:
            self._refuse(path, str(exc))
            self.config.state_path.unlink(missing_ok=True)
            return
        if chunk:
            self._send(chunk, path.name, schema, outcome, stop)
            done += len(chunk)
            self._save(ident, done, outcome)
        note = outcome.text(file=path.name, topic=self.topic, deadletter=self.dlq).rstrip("\n")
        moved = self._move(path, self.done_dir, note, suffix=".outcome")
        self.config.state_path.unlink(missing_ok=True)
        log.info("filedrop.file_done", connector=self.name, file=display_name(moved.name),
                 records=outcome.produced + outcome.rejected, written=outcome.produced,
                 deadlettered=outcome.rejected)

    def _send(self, chunk: list[DropRecord], file: str, schema: RawSchema,
              outcome: FileOutcome, stop: threading.Event) -> None:
        """Produce one chunk and wait for every ack; retried while the broker fails (BrokerError
        when stopped before the chunk was acknowledged: its state is not advanced). ``outcome``
        takes the chunk's rows once it was acknowledged."""
        records = [rec for rec in chunk if rec.fields is not None]
        batch = [self._outgoing(schema, rec, file) for rec in records]
        sent = send_batch(self.send_to, batch, stop, what=f"file drop {self.name} stopped with "
                          f"chunk of {display_name(file)}")
        for i, why in sent.rejected:
            outcome.reject(records[i].line, why)
        outcome.produced += sent.produced
        for (topic, partition), (first, last) in sent.acks.offsets.items():
            if topic == self.topic:
                outcome.written(partition, first, last)

    def _outgoing(self, schema: RawSchema, rec: DropRecord, file: str) -> Outgoing:
        if isinstance(rec.fields, Rejected):
            result: Accepted[bytes] | Rejected = rec.fields
        else:
            assert isinstance(rec.fields, dict)
            result = encode_checked(schema, rec.fields, null_values=self.null_values)
            if isinstance(result, Accepted):
                return Outgoing(result, key=record_key(rec.fields, self.config.key_fields))
        return Outgoing(result, raw=rec.raw, source={"file": file, "line": rec.line})
