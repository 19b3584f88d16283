"""Supersession in source order (shulian/logic/supersede.py, docs/VERIFY.md): the verification
store keeps, per lookup key, the record newest at the SOURCE, whatever order the changelog
delivers them in (canonical records are partitioned by serial number, so two records of one
person are decided by different workers), and after a rebuild from a compacted changelog."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from shulian.catalog.models import Catalog
from shulian.chain.headers import ORDER
from shulian.logic.policy import PolicyEngine
from shulian.logic.supersede import SourceOrder, StoreFold, order_of, source_ms
from shulian.logic.verify import Projection
from tests.fixtures.verify import verify_catalog

ZHANG = "11010519491231002X"


def _projection(tmp_path: object) -> tuple[Catalog, Projection]:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    catalog = verify_catalog(tmp_path)
    engine = PolicyEngine(catalog=catalog, sharing_list=catalog.sharing_lists[3],
                          master_key=b"k" * 32)
    projection = engine.projection("household_change")
    assert projection is not None
    return catalog, projection


def _record(serial: str, name: str, at: datetime, change: str = "01") -> dict[str, object]:
    return {"serial_no": serial, "citizen_id": ZHANG, "name": name, "sex": "2",
            "birth_date": date(1949, 12, 31), "change_type": change, "change_date": at.date(),
            "recorded_at": at}


def test_the_dataset_names_its_source_time_and_the_changelog_record_carries_it(
        tmp_path: object) -> None:
    catalog, projection = _projection(tmp_path)
    assert catalog.datasets["household_change"].order_by == "recorded_at"
    assert projection.order_by == "recorded_at" and projection.record_key == ("serial_no",)
    at = datetime(2026, 5, 1, 8, 30, tzinfo=UTC)
    _, value = projection.project(_record("S-2", "张三", at)) or (b"", b"")
    order = projection.order(_record("S-2", "张三", at), fallback_ms=1, stored=value)
    assert order.at_ms == int(at.timestamp() * 1000) and order.key == "S-2"
    assert SourceOrder.decode(order.encode()) == order


def test_an_older_record_arriving_last_does_not_overwrite_the_newer(tmp_path: object) -> None:
    """The race of issue #25: the newer registration (moved out, 02) is decided first by one
    worker, the older one (born, 01) later by another: the store keeps the newer."""
    _, projection = _projection(tmp_path)
    older = _record("S-1", "张三", datetime(2026, 1, 5, 9, 0, tzinfo=UTC), "01")
    newer = _record("S-7", "张新", datetime(2026, 4, 2, 9, 0, tzinfo=UTC), "02")
    fold = StoreFold()
    for rec in (newer, older):  # arrival order: newest first
        key, value = projection.project(rec) or (b"", b"")
        fold.apply(key, value, projection.order(rec, fallback_ms=0, stored=value).encode())
    stored = json.loads(fold.get(ZHANG.encode()) or b"{}")
    assert stored["name"] == "张新" and stored["change_type"] == "02"
    assert fold.late == {ZHANG.encode()}  # the holder writes the newer one again
    held = fold.held(ZHANG.encode())
    assert held is not None and json.loads(held[0] or b"{}")["name"] == "张新"


def test_a_deletion_is_kept_against_older_records_and_yields_to_newer(tmp_path: object) -> None:
    _, projection = _projection(tmp_path)
    old = _record("S-1", "张三", datetime(2026, 1, 5, tzinfo=UTC))
    key, value = projection.project(old) or (b"", b"")
    gone = order_of(old, order_by="recorded_at", record_key=("serial_no",),
                    fallback_ms=0, stored=None)
    gone = SourceOrder(gone.at_ms + 1000, "S-2", True, "")
    fold = StoreFold()
    fold.apply(key, None, gone.encode())  # the deletion arrives first
    assert not fold.apply(key, value, projection.order(old, fallback_ms=0,
                                                       stored=value).encode())
    assert fold.get(key) is None and len(fold) == 0
    again = _record("S-3", "张三", datetime(2026, 2, 1, tzinfo=UTC))
    k2, v2 = projection.project(again) or (b"", b"")
    assert fold.apply(k2, v2, projection.order(again, fallback_ms=0, stored=v2).encode())
    assert fold.get(key) == v2 and len(fold) == 1


def test_ties_are_broken_by_serial_number_then_deletion_then_bytes() -> None:
    a = SourceOrder(5, "S-1", False, "ff")
    assert a < SourceOrder(5, "S-2", False, "00") < SourceOrder(5, "S-2", True, "")
    assert SourceOrder(5, "S-2", False, "00") < SourceOrder(5, "S-2", False, "01")
    assert SourceOrder(4, "S-9", True, "") < a


def test_records_without_an_order_are_taken_in_arrival_order() -> None:
    """Changelog records written before the order existed (no header) behave as before."""
    fold = StoreFold()
    fold.apply(b"k", b"new", SourceOrder(10, "S", False, "x").encode())
    assert fold.apply(b"k", b"legacy", None) and fold.get(b"k") == b"legacy"
    assert fold.apply(b"k", b"old", SourceOrder(1, "S", False, "y").encode())
    assert fold.get(b"k") == b"old"  # a legacy holder yields to any ordered record
    fold.apply(b"k", None, None)
    assert fold.get(b"k") is None and len(fold) == 0
    assert SourceOrder.decode(b"not json") is None and SourceOrder.decode(b"[1,2]") is None


def test_source_times_of_every_kind() -> None:
    assert source_ms(datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)) == 1000
    assert source_ms(date(1969, 12, 31)) == -86_400_000
    assert source_ms("2026-01-01T00:00:00.000Z") == source_ms(datetime(2026, 1, 1, tzinfo=UTC))
    assert source_ms(7) == 7 and source_ms(True) is None and source_ms("x") is None
    assert order_of({}, order_by="recorded_at", record_key=("serial_no",), fallback_ms=42,
                    stored=b"v").at_ms == 42  # no source time: when it entered the chain


_event = st.tuples(
    st.sampled_from([b"k1", b"k2", b"k3"]),  # lookup key
    st.integers(0, 5),  # source time: few values, so ties happen
    st.sampled_from(["S-1", "S-2", "S-3"]),  # serial number
    st.one_of(st.none(), st.sampled_from([b"a", b"b", b"c"])),  # value or deletion
)


def _fold(events: list[tuple[bytes, int, str, bytes | None]]) -> dict[bytes, bytes]:
    fold = StoreFold()
    for key, at, serial, value in events:
        order = order_of({"t": at, "s": serial}, order_by="t", record_key=("s",),
                         fallback_ms=0, stored=value)
        fold.apply(key, value, order.encode())
    return fold.snapshot()


@settings(max_examples=300, deadline=None)
@given(st.lists(_event, max_size=30), st.randoms(use_true_random=False))
def test_any_arrival_order_gives_the_same_store(
        events: list[tuple[bytes, int, str, bytes | None]], rng: object) -> None:
    import random

    assert isinstance(rng, random.Random)
    shuffled = list(events)
    rng.shuffle(shuffled)
    assert _fold(shuffled) == _fold(events)


@settings(max_examples=200, deadline=None)
@given(st.lists(_event, max_size=30), st.randoms(use_true_random=False))
def test_a_rebuild_after_compaction_with_rewrites_gives_the_same_store(
        events: list[tuple[bytes, int, str, bytes | None]], rng: object) -> None:
    """A log written in any order, the holder writing late keys' newer records again (as
    ChangelogTable does), then compacted (the last record per key by offset): a store rebuilt
    from what compaction left equals the store of the source order."""
    import random

    assert isinstance(rng, random.Random)
    shuffled = list(events)
    rng.shuffle(shuffled)
    fold = StoreFold()
    log: list[tuple[bytes, bytes | None, bytes | None]] = []
    for key, at, serial, value in shuffled:
        order = order_of({"t": at, "s": serial}, order_by="t", record_key=("s",),
                         fallback_ms=0, stored=value).encode()
        log.append((key, value, order))
        fold.apply(key, value, order)
        for late in sorted(fold.late):  # the rewrite, appended to the log and folded back
            held = fold.held(late)
            assert held is not None
            log.append((late, held[0], held[1]))
        fold.late.clear()
    compacted = {key: (value, order) for key, value, order in log}  # last by offset
    rebuilt = StoreFold()
    for key, (value, order) in compacted.items():
        rebuilt.apply(key, value, order)
    assert rebuilt.snapshot() == _fold(events)


def test_the_header_name_is_the_one_the_chain_writes() -> None:
    assert ORDER == "shulian.order"
