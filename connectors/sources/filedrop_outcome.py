"""What became of each row of a dropped file: the note written next to it in ``done/``.

The note (``<file>.outcome``, UTF-8 text) counts the records, lists the rows the file drop
dead-lettered (line, reason, check or field; the first :data:`MAX_LISTED`) and gives the raw
partitions and offsets the file's records were written at. Rows the chain rejects later (a data
element check, a mapping) go to the same dead-letter topic with ``shulian.source.topic`` naming
the raw topic and ``shulian.source.partition/.offset`` inside those ranges, so each can be traced
back to this file. No field value is ever written to the note. Pure (no Kafka).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shulian.chain.headers import SOURCE_OFFSET, SOURCE_PARTITION, SOURCE_TOPIC, text_bytes
from shulian.logic.result import Rejected

__all__ = ["MAX_LISTED", "FileOutcome", "display_name"]

MAX_LISTED = 200


def display_name(name: str) -> str:
    """A file name as printable text (a legacy-encoded name's bytes as ``\\xNN``)."""
    return text_bytes(name).decode("utf-8")


@dataclass
class FileOutcome:
    """Per-file counts, kept in the state file between chunks so a restart keeps them."""

    produced: int = 0
    rejected: int = 0
    listed: list[tuple[int, str, str]] = field(default_factory=list)
    offsets: dict[int, tuple[int, int]] = field(default_factory=dict)

    def reject(self, line: int, why: Rejected) -> None:
        self.rejected += 1
        if len(self.listed) < MAX_LISTED:
            self.listed.append((line, str(why.reason), why.check or why.field or ""))

    def written(self, partition: int, first: int, last: int) -> None:
        lo, hi = self.offsets.get(partition, (first, last))
        self.offsets[partition] = (min(lo, first), max(hi, last))

    def to_state(self) -> dict[str, Any]:
        return {"produced": self.produced, "rejected": self.rejected,
                "listed": [list(x) for x in self.listed],
                "offsets": {str(p): list(r) for p, r in self.offsets.items()}}

    @classmethod
    def from_state(cls, data: Any) -> FileOutcome:
        if not isinstance(data, dict):
            return cls()
        try:
            return cls(
                produced=int(data.get("produced", 0)), rejected=int(data.get("rejected", 0)),
                listed=[(int(a), str(b), str(c)) for a, b, c in data.get("listed", [])],
                offsets={int(p): (int(r[0]), int(r[1]))
                         for p, r in dict(data.get("offsets", {})).items()})
        except (TypeError, ValueError):
            return cls()

    def text(self, *, file: str, topic: str, deadletter: str) -> str:
        """The note, in words."""
        lines = [
            f"file: {display_name(file)}",
            f"records: {self.produced + self.rejected}: {self.produced} written to {topic}, "
            f"{self.rejected} dead-lettered by the file drop to {deadletter}",
        ]
        if self.rejected:
            more = self.rejected - len(self.listed)
            lines.append("dead-lettered by the file drop (headers shulian.source.file/.line):")
            lines += [f"  line {ln}: {reason}" + (f" ({what})" if what else "")
                      for ln, reason, what in self.listed]
            if more:
                lines.append(f"  ... and {more} more")
        if self.offsets:
            ranges = "; ".join(f"partition {p} offsets {a}-{b}"
                               for p, (a, b) in sorted(self.offsets.items()))
            lines.append(f"written to {topic} at: {ranges}")
            lines.append(
                f"rows the chain rejects later (data element checks, mappings) go to "
                f"{deadletter} with {SOURCE_TOPIC}={topic} and {SOURCE_PARTITION}/"
                f"{SOURCE_OFFSET} in the ranges above")
        return "\n".join(lines) + "\n"
