"""Re-delivery and drills, the pure part.

Replay audit records go to ``audit.replay.<dataset>`` (one partition, one chain), never to the
live ``audit.<dataset>``: a live worker owns each partition of that topic and keeps its chain
head in memory, so a second writer would fork the chain (see docs/AUDIT.md). ``audit verify``
checks that chain too and counts its ``deliver`` records for completeness.

A replay audit record is the original ``deliver`` audit record with ``kind="replay"``, the
replay's own ``ts`` and ``worker``, ``egress_topic`` set only when the replay produced to the
egress topic (a sink replay leaves no egress record), and ``replay`` naming the original audit
record and the target.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from shulian.chain.topology import Topology

__all__ = [
    "REPLAY_AUDIT_PARTITIONS",
    "pace",
    "replay_audit_record",
    "replay_audit_topic",
]

REPLAY_AUDIT_PARTITIONS = 1
_AUDIT_CONTENT = (
    "dataset", "provider", "consumer", "entry_id", "list_version", "share_type", "decision",
    "reason", "fields_delivered", "fields_masked", "record_key", "record_digest", "source",
    "egress_key", "egress_digest",
)


def replay_audit_topic(topology: Topology, dataset: str) -> str:
    """``audit.replay.<dataset>`` (namespace-prefixed like every other topic)."""
    return topology.audit(f"replay.{dataset}")


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def replay_audit_record(
    original: Mapping[str, Any],
    *,
    original_position: tuple[str, int, int],
    target: str,
    egress_topic: str | None,
    ts: datetime,
    worker: str,
    egress_digest: str | None = None,
) -> dict[str, Any]:
    """The unsealed replay audit record of one re-delivery (seal it with ``AuditChain.seal``).
    ``egress_digest``: the ``shulian.digest`` the re-delivered copy carries (default: the
    original's; an original written before keyed digests has none)."""
    rec: dict[str, Any] = {k: original.get(k) for k in _AUDIT_CONTENT}
    if egress_digest is not None:
        rec["egress_digest"] = egress_digest
    rec.update({
        "v": original.get("v", 1),
        "ts": _iso(ts),
        "kind": "replay",
        "egress_topic": egress_topic,
        "worker": worker,
        "replay": {
            "of": {"topic": original_position[0], "partition": original_position[1],
                   "offset": original_position[2]},
            "target": target,
        },
    })
    return rec


def pace(timestamps_ms: Sequence[int], speed: float) -> list[float]:
    """Seconds after the start at which each record is due, at ``speed`` times the original
    pace (by record timestamps, in the given order; a timestamp earlier than its predecessor's
    is due at once)."""
    if speed <= 0:
        raise ValueError("speed must be > 0")
    if not timestamps_ms:
        return []
    base = timestamps_ms[0]
    due: list[float] = []
    last = 0.0
    for ts in timestamps_ms:
        at = max(last, (ts - base) / 1000.0 / speed)
        due.append(at)
        last = at
    return due
