"""Rate-limit counts survive a gateway restart: a new service counts again, from the audit
records of the day, the claims admitted before; claims of an earlier day or refused ones do not
count; the limiter's keys are the audit's key digests (no plain key kept in the counts)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from shulian.catalog.elements import citizen_id_check_char
from shulian.catalog.models import Catalog
from shulian.clock import FixedClock
from shulian.logic.ratelimit import day_start
from shulian.verification.service import VerifyService
from tests.fixtures.verify import IN_FORCE, ChainedAudit, MemoryStore, verify_catalog

ZHANG = "44010619850302123" + citizen_id_check_char("44010619850302123")


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return verify_catalog(tmp_path_factory.mktemp("limits"))


def service(catalog: Catalog, at: Any = IN_FORCE) -> tuple[VerifyService, ChainedAudit]:
    audit = ChainedAudit()
    svc = VerifyService(catalog=catalog, sharing_list=catalog.current_list,
                        stores={"household_change": MemoryStore()},
                        audit={"household_change": audit}, master_key=b"k" * 32,
                        worker="gw-test", clock=FixedClock(at))
    return svc, audit


def guess(svc: VerifyService, name: str) -> int:
    return svc.verify("bank", "household_change", {
        "key": {"citizen_id": ZHANG},
        "claims": [{"field": "name", "how": "equals", "value": name}]}).status


def test_a_restarted_service_counts_the_days_claims_again(catalog: Catalog) -> None:
    first, audit = service(catalog)
    assert [guess(first, n) for n in ("一", "二", "三", "四", "五", "六")] == [200] * 5 + [429]
    assert ZHANG not in str(first._limiter.__dict__)  # counts keyed by digests
    fresh, _ = service(catalog)
    assert fresh.restore_limits(audit.records, since=day_start(IN_FORCE)) == 5
    assert guess(fresh, "七") == 429  # the sixth distinct guess, after the restart
    assert guess(fresh, "三") == 200  # a claim already counted stays free
    # without the audit (as before), the restart would have forgotten every guess
    forgetful, _ = service(catalog)
    assert guess(forgetful, "七") == 200


def test_claims_of_an_earlier_day_and_refusals_do_not_count(catalog: Catalog) -> None:
    yesterday = IN_FORCE - timedelta(days=1)
    old, audit = service(catalog, yesterday)
    for n in ("一", "二", "三", "四", "五", "六"):
        guess(old, n)
    assert [r["decision"] for r in audit.records][-1] == "refused"
    fresh, _ = service(catalog)
    assert fresh.restore_limits(audit.records, since=day_start(IN_FORCE)) == 0
    assert guess(fresh, "七") == 200
    again, _ = service(catalog, yesterday)
    assert again.restore_limits(audit.records, since=day_start(yesterday)) == 5


def test_day_start_is_midnight_in_shanghai() -> None:
    start = day_start(IN_FORCE)
    assert start.utcoffset() == timedelta(hours=8) and (start.hour, start.minute) == (0, 0)
    assert start.date() == date(2026, 6, 1) and start <= IN_FORCE < start + timedelta(days=1)
