"""Verifications in ``audit report`` (pure): a row per answered or refused query, next to the
chain's decisions, with who asked, the entry and version, each claim's field and answer, and
the key only as a digest; the summary counts the answers."""

from __future__ import annotations

from datetime import UTC, datetime

from shulian.audit.check import AuditEntry
from shulian.audit.report import Filter, report_rows, summary, to_csv
from shulian.logic.audit import build_verification

AT = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)


def _verification(offset: int, answers: list[str | None], refused: str | None = None
                  ) -> AuditEntry:
    claims = [("name", "equals", a, f"d{offset}{i}") for i, a in enumerate(answers)]
    rec = build_verification(entry_id="psb-bank-verify", list_version=3,
                             dataset="household_change", provider="psb", consumer="bank",
                             ts=AT, worker="gw", claims=claims, key_digest="ab" * 32,
                             refused=refused)
    return AuditEntry("audit.verify.household_change", 0, offset, rec)


def _decision() -> AuditEntry:
    return AuditEntry("audit.household_change", 0, 0, {
        "ts": "2026-06-01T01:00:00.000Z", "kind": "decision", "dataset": "household_change",
        "provider": "psb", "consumer": "bank", "record_key": "S1", "decision": "withhold",
        "reason": "verify_only", "entry_id": "psb-bank-verify", "list_version": 3,
        "fields_delivered": [], "fields_masked": [], "egress_topic": None})


ENTRIES = [_verification(0, ["match"]), _verification(1, ["no_match", "unknown"]),
           _verification(2, [None], refused="rate_limited:distinct_claims_per_key_per_day"),
           _decision()]


def test_verifications_next_to_decisions() -> None:
    rows = report_rows(ENTRIES, Filter(consumer="bank"))
    assert [r["kind"] for r in rows] == ["decision", "verification", "verification",
                                         "verification"]
    assert rows[0]["answers"] == "" and rows[0]["key_digest"] == ""
    v = rows[1]
    assert (v["consumer"], v["entry_id"], v["list_version"], v["decision"]) == (
        "bank", "psb-bank-verify", 3, "verify")
    assert v["answers"] == "name equals: match" and v["key_digest"] == "ab" * 8
    assert rows[2]["answers"] == "name equals: no_match; name equals: unknown"
    assert rows[3]["decision"] == "refused" and rows[3]["answers"] == "name equals: -"
    assert rows[3]["why"] == "over the entry's distinct claims per key per day"
    assert "d00" not in to_csv(rows)  # claimed values' digests stay in the audit record


def test_summary_counts_the_answers() -> None:
    s = {(x["decision"], x["reason"]): x for x in summary(report_rows(ENTRIES, Filter()))}
    assert s[("verify", "")]["records"] == 2
    assert s[("verify", "")]["answers"] == {"match": 1, "no_match": 1, "unknown": 1}
    assert "answers" not in s[("withhold", "verify_only")]
    assert "answers" not in s[("refused", "rate_limited:distinct_claims_per_key_per_day")]


def test_every_refusal_the_service_audits_has_words() -> None:
    from shulian.catalog.models import VerifyRateLimit
    from shulian.logic.reasons import VERIFY_WORDS

    limits = {f"rate_limited:{name}" for name in VerifyRateLimit.model_fields if name != "reason"}
    assert limits | {"claim_not_allowed", "bad_key"} == set(VERIFY_WORDS)
