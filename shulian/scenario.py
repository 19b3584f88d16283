"""The demo scenario as a service: publish it, wait for the chain, measure what happened.

Used by ``shulian demo`` on its own stack and on an already running one (``--bootstrap``), so
the docs' audit examples can be reproduced; the measurement is read from the chain's topics
(audit, dead letters), never predicted. Kafka is imported inside the functions that need it.

``records`` is the number of records published in all, wire garbage included: it is split
evenly over the catalogue's agency datasets (the first ones take the remainder), and each
dataset's share holds ``garbage`` wire-garbage records (fewer when the share is smaller).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shulian.audit.deadletters import DeadLetter, DeadLetterFilter, select
from shulian.errors import ShulianError

if TYPE_CHECKING:
    from shulian.catalog.models import Catalog
    from shulian.chain.topology import Topology
    from shulian.io.publish import PublishTally
    from shulian.settings import Settings

__all__ = ["Measured", "ScenarioTimeout", "measure", "play", "shares", "topic_ends",
           "wait_for_chain"]

Pair = tuple[str, str]


class ScenarioTimeout(ShulianError):
    """The chain did not process the scenario in time."""


def shares(pairs: Sequence[Pair], records: int, garbage: int) -> dict[Pair, tuple[int, int]]:
    """``(generated records, wire garbage)`` per agency dataset, summing to ``records``."""
    if records < 0 or garbage < 0:
        raise ValueError("records and garbage must not be negative")
    if not pairs:
        return {}
    base, extra = divmod(records, len(pairs))
    out: dict[Pair, tuple[int, int]] = {}
    for i, pair in enumerate(pairs):
        share = base + (1 if i < extra else 0)
        junk = min(garbage, share)
        out[pair] = (share - junk, junk)
    return out


def play(settings: Settings, catalog: Catalog, topology: Topology, *, records: int,
         invalid_rate: float, seed: int, garbage: int) -> PublishTally:
    """Publish the scenario (Avro through confluent-kafka's serializer) and flush."""
    from shulian.io.publish import AgencyPublisher, PublishTally

    publisher = AgencyPublisher(settings, catalog, topology)
    rng = random.Random(seed)
    tally = PublishTally()
    for pair, (n, junk) in shares(publisher.pairs, records, garbage).items():
        t = publisher.publish(pair, n, rng=rng, invalid_rate=invalid_rate, garbage=junk)
        tally.valid.update(t.valid)
        tally.invalid.update(t.invalid)
        tally.garbage.update(t.garbage)
        tally.garbage_kinds.update(t.garbage_kinds)
    publisher.flush()
    return tally


def topic_ends(settings: Settings, topics: Sequence[str]) -> dict[tuple[str, int], int]:
    """The next offset of every partition of ``topics`` now, found by reading them to the end
    (the embedded broker's watermarks can lag what was written): what the scenario's
    measurement starts after, so earlier traffic on a running stack is not counted."""
    from shulian.io.reader import read_topics

    return {tp: (msgs[-1].offset + 1 if msgs else 0)
            for tp, msgs in read_topics(settings, topics).items()}


@dataclass
class Measured:
    """What the chain did with the scenario, read from its topics."""

    decisions: list[dict[str, Any]] = field(default_factory=list)  # audit records
    dead: list[DeadLetter] = field(default_factory=list)
    breaks: int = 0
    partitions: int = 0  # audit partitions holding the scenario's decisions

    def distinct_decisions(self) -> int:
        return len({(json.dumps(r.get("source"), sort_keys=True), r.get("entry_id"))
                    for r in self.decisions})

    def distinct_dead(self) -> int:
        return len({d.source or d.deadletter for d in self.dead})


def measure(settings: Settings, catalog: Catalog, topology: Topology,
            after: dict[tuple[str, int], int]) -> Measured:
    """Read the audit and dead-letter topics: records at or after ``after`` (per partition)
    are the scenario's; every audit chain is verified from its start."""
    from shulian.chain.topology import plan_topics
    from shulian.io.reader import read_topics
    from shulian.logic.audit import verify_chain

    plan = plan_topics(catalog, topology)
    audit = read_topics(settings, plan.audit)
    dead = read_topics(settings, plan.deadletter)
    out = Measured()
    for tp, msgs in audit.items():
        out.breaks += len(verify_chain([(m.offset, m.value or b"") for m in msgs]))
        mine = [m for m in msgs if m.offset >= after.get(tp, 0)]
        out.partitions += bool(mine)
        recs = (json.loads(m.value or b"{}") for m in mine)
        out.decisions.extend(r for r in recs if r.get("kind") != "seal")  # seals decide nothing
    fresh = [m for tp, msgs in dead.items() for m in msgs if m.offset >= after.get(tp, 0)]
    out.dead = select(fresh, topology, DeadLetterFilter())
    return out


def wait_for_chain(settings: Settings, catalog: Catalog, topology: Topology,
                   tally: PublishTally, after: dict[tuple[str, int], int], *,
                   timeout_s: float, stopped: Callable[[], str | None],
                   poll_s: float = 1.0) -> Measured:
    """Measure until every decision and dead letter the scenario implies is there; raises
    :class:`ScenarioTimeout` (saying how far the chain got) on timeout or when ``stopped()``
    names a reason (a child died)."""
    entries = catalog.current_list.entries
    want_decisions = sum(n * sum(1 for e in entries if (e.provider, e.dataset) == pair)
                         for pair, n in tally.valid.items())
    want_dead = sum(tally.invalid.values()) + sum(tally.garbage.values())
    deadline = time.monotonic() + timeout_s
    while True:
        got = measure(settings, catalog, topology, after)
        decided, dead = got.distinct_decisions(), got.distinct_dead()
        if decided >= want_decisions and dead >= want_dead:
            return got
        why = stopped()
        if why is not None or time.monotonic() > deadline:
            raise ScenarioTimeout(
                f"the chain processed {decided}/{want_decisions} decisions and {dead}/"
                f"{want_dead} dead letters"
                + (f" ({why})" if why else f" in {timeout_s:.0f} s: is a worker running?"))
        time.sleep(poll_s)

