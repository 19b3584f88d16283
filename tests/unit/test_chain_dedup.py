"""Restart de-duplication state (shulian.chain.dedup): marks per source, audit-tail resume."""

from __future__ import annotations

from datetime import UTC, datetime

from shulian.chain.dedup import Origin, SourceMarks, origin_of, resume_from_audit
from shulian.logic.audit import GENESIS, AuditChain, verify_chain


def test_origin_of_reads_source_headers() -> None:
    headers = [("shulian.source.topic", b"raw.amr.x"), ("shulian.source.partition", b"2"),
               ("shulian.source.offset", b"41"), ("other", None)]
    assert origin_of(headers) == Origin("raw.amr.x", 2, 41)
    assert origin_of(headers[:2]) is None
    assert origin_of([("shulian.source.topic", b"t"), ("shulian.source.partition", b"x"),
                      ("shulian.source.offset", b"1")]) is None
    assert origin_of([("shulian.source.topic", b"\xff"), ("shulian.source.partition", b"1"),
                      ("shulian.source.offset", b"1")]) is None


def test_source_marks_skip_at_or_below_the_mark_per_source() -> None:
    marks = SourceMarks()
    assert not marks.loaded("t", 0)
    marks.load("t", 0, 10)
    marks.load("t", 1, None)
    assert marks.loaded("t", 0) and marks.loaded("t", 1) and not marks.loaded("u", 0)
    assert marks.written("t", 0, 3) and marks.written("t", 0, 10)
    assert not marks.written("t", 0, 11)
    assert not marks.written("t", 1, 0)  # nothing written there yet
    marks.note("t", 1, 5)
    marks.note("t", 1, 2)  # never goes back
    assert marks.written("t", 1, 5) and not marks.written("t", 1, 6)
    marks.reload()  # after a rebalance: read again, but what was written stays a floor
    assert not marks.loaded("t", 0) and marks.written("t", 0, 10)
    marks.load("t", 0, 7)  # a stale tail read (below a settling high watermark)
    assert marks.written("t", 0, 10) and not marks.written("t", 0, 11)
    marks.load("t", 0, 12)  # another worker wrote more meanwhile
    assert marks.written("t", 0, 12)


def _audit(chain: AuditChain, *, offset: int, part: tuple[int, int] | None,
           origin: tuple[str, int, int] | None, topic: str = "canonical.d") -> bytes:
    rec: dict[str, object] = {"v": 1, "ts": "2026-01-02T03:04:05.678Z", "kind": "decision",
                              "source": {"topic": topic, "partition": 0, "offset": offset}}
    if part is not None:
        rec["part"] = list(part)
    if origin is not None:
        rec["origin"] = {"topic": origin[0], "partition": origin[1], "offset": origin[2]}
    return chain.seal(rec)


def test_resume_from_an_empty_partition() -> None:
    r = resume_from_audit([])
    assert r.chain.head == GENESIS and r.chain.next_seq == 0
    assert r.last_offset == -1 and r.pending_from is None and not r.origins.marks
    assert not r.skip(0)


def test_resume_knows_last_offset_origins_and_continues_the_chain() -> None:
    chain = AuditChain()
    values = [
        _audit(chain, offset=0, part=(0, 2), origin=("raw.a.d", 0, 7)),
        _audit(chain, offset=0, part=(1, 2), origin=("raw.a.d", 0, 7)),
        _audit(chain, offset=1, part=(0, 1), origin=("raw.a.d", 1, 3)),
        _audit(chain, offset=2, part=(0, 1), origin=("raw.a.d", 0, 9)),
    ]
    r = resume_from_audit(values, canonical_topic="canonical.d")
    assert r.last_offset == 2 and r.pending_from is None
    assert r.last_ts == "2026-01-02T03:04:05.678Z"
    assert r.skip(0) and r.skip(2) and not r.skip(3)
    assert r.origins.written("raw.a.d", 0, 9) and not r.origins.written("raw.a.d", 0, 10)
    assert r.origins.written("raw.a.d", 1, 3) and not r.origins.written("raw.a.d", 2, 0)
    # the resumed chain links: what it seals next verifies together with what was there
    more = _audit(r.chain, offset=3, part=(0, 1), origin=("raw.a.d", 1, 4))
    assert verify_chain(list(enumerate([*values, more]))) == []


def test_resume_finishes_a_record_whose_audit_was_cut_short() -> None:
    chain = AuditChain()
    values = [_audit(chain, offset=5, part=(0, 3), origin=None),
              _audit(chain, offset=5, part=(1, 3), origin=None)]
    r = resume_from_audit(values)
    assert r.last_offset == 5 and r.pending_from == 2
    assert r.skip(4) and not r.skip(5) and not r.skip(6)


def test_records_without_part_or_origin_count_as_complete() -> None:
    chain = AuditChain()
    r = resume_from_audit([_audit(chain, offset=8, part=None, origin=None)])
    assert r.last_offset == 8 and r.pending_from is None and r.skip(8)
    assert not r.origins.marks


def test_other_canonical_topics_do_not_count_for_progress() -> None:
    chain = AuditChain()
    values = [_audit(chain, offset=4, part=(0, 1), origin=None),
              _audit(chain, offset=99, part=(0, 1), origin=None, topic="ns.canonical.d")]
    r = resume_from_audit(values, canonical_topic="canonical.d")
    assert r.last_offset == 4
    assert r.chain.next_seq == 2  # the chain still continues after the very last record


def test_junk_at_the_end_is_disowned_and_the_chain_goes_on_after_the_last_record() -> None:
    chain = AuditChain()
    first = _audit(chain, offset=3, part=(0, 1), origin=None)
    r = resume_from_audit([first, b"not json"])
    assert r.disowned == [1] and r.last_offset == 3
    assert r.chain.head == chain.head and r.chain.next_seq == 1
    assert resume_from_audit([b"not json"]).chain.head == GENESIS


def test_cut_short_ts_parses_to_an_aware_datetime() -> None:
    chain = AuditChain()
    r = resume_from_audit([_audit(chain, offset=1, part=(0, 2), origin=None)])
    assert r.last_ts is not None
    assert datetime.fromisoformat(r.last_ts) == datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def test_a_restarted_worker_continues_only_a_sound_unsigned_tail() -> None:
    from shulian.catalog.keys import SigningKey
    from shulian.logic.auditseal import build_seal

    chain = AuditChain()

    def rec(i: int) -> dict[str, object]:
        return {"v": 1, "kind": "decision", "ts": "2026-03-01T00:00:00.000Z",
                "source": {"topic": "canonical.d", "partition": 0, "offset": i}}

    values = [chain.seal(rec(0)), chain.seal(rec(1)),
              build_seal(chain, SigningKey.generate("k"), topic="audit.d", partition=0,
                         ts=datetime(2026, 3, 1, tzinfo=UTC), worker="w"),
              chain.seal(rec(2)), chain.seal(rec(3))]  # killed before its seal
    sound = resume_from_audit(values, canonical_topic="canonical.d")
    assert sound.rejected == 0 and not sound.sealed and sound.last_offset == 3
    # junk appended while the worker was down: disowned, the chain links after the physical end
    junk = resume_from_audit([*values, b"junk"], canonical_topic="canonical.d")
    assert junk.disowned == [5] and junk.chain.head == sound.chain.head
    assert junk.last_offset == 3
    # a tail record edited (its hash no longer holds): it and what links to it are disowned
    edited = [*values[:3], values[3].replace(b'"offset":2', b'"offset":9'), values[4]]
    cut = resume_from_audit(edited, canonical_topic="canonical.d")
    assert cut.disowned == [3, 4] and cut.sealed and cut.last_offset == 1
