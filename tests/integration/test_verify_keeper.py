"""The worker's changelog keeper on a real broker (streams/keeper.py, docs/VERIFY.md): records
for one lookup key written in the wrong source order (the newer first, as two workers deciding
different canonical partitions may), a deletion followed by an older update; the keeper writes
the newer records again, so what compaction would keep (the last record per key by offset)
folds to the source-order store, and a store rebuilt from the changelog answers the same."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from pathlib import Path

from confluent_kafka import Producer

from shulian.catalog.elements import citizen_id_check_char
from shulian.chain.headers import ORDER
from shulian.chain.topology import Topology
from shulian.io.changelog import ChangelogTable
from shulian.io.kafka import TopicSpec, admin_client, ensure_topics, producer_config
from shulian.logic.policy import PolicyEngine
from shulian.logic.supersede import StoreFold
from shulian.settings import Settings
from shulian.streams.keeper import ChangelogKeeper
from tests.fixtures.sinks import read_all
from tests.fixtures.verify import verify_catalog


def cid(first17: str) -> str:
    return first17 + citizen_id_check_char(first17)


def test_the_keeper_makes_compaction_keep_the_newest_at_the_source(
        kafka_settings: Settings, unique: str, tmp_path: Path) -> None:
    catalog = verify_catalog(tmp_path)
    t = Topology(namespace=f"k{unique}")
    topic = t.verify_changelog("household_change")
    ensure_topics(admin_client(kafka_settings),
                  [TopicSpec(topic, 1, (("cleanup.policy", "compact"),))])
    engine = PolicyEngine(catalog=catalog, sharing_list=catalog.sharing_lists[3],
                          master_key=b"k" * 32)
    projection = engine.projection("household_change")
    assert projection is not None
    moved, gone = cid("44010619850000001"), cid("44010619850000002")

    def record(citizen: str, serial: str, name: str, at: datetime) -> dict[str, object]:
        return {"citizen_id": citizen, "serial_no": serial, "name": name,
                "birth_date": date(1985, 1, 1), "change_type": "01", "recorded_at": at}

    newer = record(moved, "S-9", "张新", datetime(2026, 4, 1, tzinfo=UTC))
    older = record(moved, "S-1", "张旧", datetime(2026, 1, 1, tzinfo=UTC))
    producer = Producer(producer_config(kafka_settings))
    for rec in (newer, older):  # the newer one decided first: the older one arrives last
        key, value = projection.project(rec) or (b"", b"")
        order = projection.order(rec, fallback_ms=0, stored=value)
        producer.produce(topic, key=key, value=value, headers=[(ORDER, order.encode())])
    dead = record(gone, "S-5", "李四", datetime(2026, 3, 1, tzinfo=UTC))
    stale = record(gone, "S-2", "李四", datetime(2026, 2, 1, tzinfo=UTC))
    key, _ = projection.project(dead) or (b"", b"")
    producer.produce(topic, key=key, value=None, headers=[
        (ORDER, projection.order(dead, fallback_ms=0, stored=None).encode())])
    k2, v2 = projection.project(stale) or (b"", b"")
    producer.produce(topic, key=k2, value=v2, headers=[
        (ORDER, projection.order(stale, fallback_ms=0, stored=v2).encode())])
    assert producer.flush(30) == 0

    keeper = ChangelogKeeper(kafka_settings, t, lambda: ["household_change"])
    try:
        keeper.sync()
        table = keeper.tables["household_change"]
        deadline = time.monotonic() + 60
        while table.rewritten < 2 and time.monotonic() < deadline:
            keeper.sync()
            time.sleep(0.1)
        assert table.rewritten == 2 and table.late >= 2
        assert table.get(gone.encode()) is None
        assert "张新".encode() in (table.get(moved.encode()) or b"")
    finally:
        keeper.stop()
    log = read_all(kafka_settings, topic, 6)
    assert len(log) == 6  # 4 written + 2 rewritten by the keeper
    last: dict[bytes, tuple[bytes | None, bytes | None]] = {}
    for m in log:  # what compaction keeps: the last record per key by offset
        last[m.key()] = (m.value(), dict(m.headers() or []).get(ORDER))
    compacted = StoreFold()
    for k, (value, order) in last.items():
        compacted.apply(k, value, order)
    assert compacted.get(gone.encode()) is None
    assert "张新".encode() in (compacted.get(moved.encode()) or b"")
    rebuilt = ChangelogTable(kafka_settings, topic)
    rebuilt.start()
    try:
        assert rebuilt.get(moved.encode()) == compacted.get(moved.encode())
        assert rebuilt.get(gone.encode()) is None and len(rebuilt) == 1
    finally:
        rebuilt.stop()
