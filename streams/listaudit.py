"""The worker's record of every list version it applied or refused, signed with the chain's
key, on ``audit.sharing-list`` (one partition, key = the worker id), and its audit checkpoints
(:mod:`shulian.logic.checkpoint`, signed on their own). Rare: produced and flushed at once."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from shulian.catalog.keys import SigningKey
from shulian.io.sender import Sender
from shulian.log import get_logger
from shulian.logic.audit import audit_ts, encode
from shulian.logic.checkpoint import Checkpoint
from shulian.logic.signed import sign_record
from shulian.settings import Settings

log = get_logger(__name__)


def list_audit_record(*, kind: str, raw: bytes, version: int | None, worker: str, ts: datetime,
                      in_force: int | None = None, digest: str | None = None,
                      reasons: list[str] | None = None) -> dict[str, Any]:
    """``kind``: ``list_applied`` | ``list_refused``; ``message_digest``: SHA-256 of the
    control-topic message as read."""
    return {"v": 1, "kind": kind, "ts": audit_ts(ts), "worker": worker, "version": version,
            "digest": digest, "in_force": in_force, "reasons": reasons or [],
            "message_digest": hashlib.sha256(raw).hexdigest()}


class ListAuditWriter:
    def __init__(self, settings: Settings, topic: str, signer: SigningKey, *, worker: str
                 ) -> None:
        self._sender = Sender(settings)
        self._topic = topic
        self._signer = signer
        self._worker = worker

    def _write(self, record: dict[str, Any]) -> None:
        value = encode(sign_record(record, self._signer))
        self._sender.send(self._topic, value, self._worker.encode("utf-8"))
        if self._sender.flush(10):
            log.error("sharing_list.audit_unwritten", topic=self._topic, kind=record["kind"])

    def refused(self, raw: bytes, version: int | None, reasons: list[str], *, in_force: int
                ) -> None:
        self._write(list_audit_record(kind="list_refused", raw=raw, version=version,
                                      worker=self._worker, ts=datetime.now(UTC),
                                      in_force=in_force, reasons=reasons))

    def applied(self, raw: bytes, version: int, digest: str) -> None:
        self._write(list_audit_record(kind="list_applied", raw=raw, version=version,
                                      worker=self._worker, ts=datetime.now(UTC),
                                      in_force=version, digest=digest))

    def checkpoint(self, checkpoint: Checkpoint) -> None:
        """A copy of a checkpoint in Kafka (the store outside Kafka is the one that counts)."""
        self._sender.send(self._topic, encode(checkpoint.to_record()),
                          self._worker.encode("utf-8"))
        if self._sender.flush(10):
            log.error("audit.checkpoint_unwritten", topic=self._topic)
