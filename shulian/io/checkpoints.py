"""Where audit checkpoints are kept, outside Kafka: append-only.

``SHULIAN_AUDIT_CHECKPOINT_STORE`` names the store:

- ``postgresql://...`` (the default kind): the table ``shulian_audit_checkpoints``. The worker
  connects as a role that may only INSERT (and SELECT nothing it does not need); auditors read
  with a SELECT-only role; nobody the worker runs as may UPDATE or DELETE:

      CREATE TABLE shulian_audit_checkpoints (id bigserial PRIMARY KEY,
          written_at timestamptz NOT NULL DEFAULT now(), body jsonb NOT NULL);
      CREATE ROLE shulian_checkpointer LOGIN;  -- password set out of band
      GRANT INSERT ON shulian_audit_checkpoints TO shulian_checkpointer;
      GRANT USAGE ON SEQUENCE shulian_audit_checkpoints_id_seq TO shulian_checkpointer;
      CREATE ROLE shulian_auditor LOGIN;
      GRANT SELECT ON shulian_audit_checkpoints TO shulian_auditor;

  (:func:`create_table` makes the table only; roles are the database owner's job.)
- a file path (the fallback): one JSON line per checkpoint, opened with ``O_APPEND``; make it
  append-only at the file-system level (``chattr +a``) or ship it off the host.

The DSN may hold a password: it is never logged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from shulian.errors import InfrastructureError
from shulian.logic.checkpoint import Checkpoint, parse_checkpoint

__all__ = ["TABLE", "CheckpointStore", "FileStore", "PostgresStore", "create_table",
           "open_store"]

TABLE = "shulian_audit_checkpoints"


class CheckpointStore(Protocol):
    def append(self, checkpoint: Checkpoint) -> None: ...

    def read(self) -> Iterator[Checkpoint]: ...


class FileStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, checkpoint: Checkpoint) -> None:
        line = (json.dumps(checkpoint.to_record(), sort_keys=True, ensure_ascii=False)
                + "\n").encode("utf-8")
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as exc:
            raise InfrastructureError(f"cannot append a checkpoint to {self.path}: "
                                      f"{exc.strerror}") from exc

    def read(self) -> Iterator[Checkpoint]:
        try:
            lines = self.path.read_text("utf-8").splitlines()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise InfrastructureError(f"cannot read {self.path}: {exc.strerror}") from exc
        for line in lines:
            try:
                cp = parse_checkpoint(json.loads(line))
            except ValueError:
                cp = None
            if cp is not None:
                yield cp


class PostgresStore:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn

    def append(self, checkpoint: Checkpoint) -> None:
        import psycopg

        body = json.dumps(checkpoint.to_record(), sort_keys=True, ensure_ascii=False)
        try:
            with psycopg.connect(self._dsn, autocommit=True, connect_timeout=10) as conn:
                conn.execute(f"INSERT INTO {TABLE} (body) VALUES (%s::jsonb)", (body,))
        except psycopg.Error as exc:
            raise InfrastructureError(f"checkpoint store: insert failed: "
                                      f"{type(exc).__name__}: {exc.sqlstate}") from None

    def read(self) -> Iterator[Checkpoint]:
        import psycopg

        try:
            with psycopg.connect(self._dsn, autocommit=True, connect_timeout=10) as conn:
                rows = conn.execute(f"SELECT body::text FROM {TABLE} ORDER BY id").fetchall()
        except psycopg.Error as exc:
            raise InfrastructureError(f"checkpoint store: read failed: "
                                      f"{type(exc).__name__}: {exc.sqlstate}") from None
        for (body,) in rows:
            cp = parse_checkpoint(json.loads(body))
            if cp is not None:
                yield cp


def create_table(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial PRIMARY KEY, "
                     "written_at timestamptz NOT NULL DEFAULT now(), body jsonb NOT NULL)")


def open_store(spec: str | None) -> CheckpointStore | None:
    """The store ``spec`` names (``postgresql://...`` or a file path), or None."""
    if not spec:
        return None
    if spec.startswith(("postgresql://", "postgres://")):
        return PostgresStore(spec)
    return FileStore(Path(spec))
