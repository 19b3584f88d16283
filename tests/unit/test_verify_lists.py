"""The verification service follows the list in force as the worker does: a version that
revokes the bank's verify entry, accepted by the ledger, makes the next request 403; a version
the ledger refuses (unsigned, a squatted number, not a list at all) changes nothing."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from shulian.catalog.approval import ListAccepted, ListIgnored, ListRefused
from shulian.catalog.elements import citizen_id_check_char
from shulian.catalog.models import Catalog
from shulian.clock import FixedClock
from shulian.logic.policy import PolicyEngine
from shulian.verification.lists import ListFollower
from shulian.verification.service import VerifyService
from tests.fixtures.verify import (
    IN_FORCE,
    ChainedAudit,
    MemoryStore,
    revoking_version,
    verify_catalog,
)

ZHANG = "44010619850302123" + citizen_id_check_char("44010619850302123")
ASK = {"key": {"citizen_id": ZHANG}, "claims": [{"field": "name", "how": "equals",
                                                  "value": "张三"}]}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return verify_catalog(tmp_path_factory.mktemp("lists"))


def service(catalog: Catalog) -> tuple[VerifyService, ListFollower, ChainedAudit]:
    store, audit = MemoryStore(), ChainedAudit()
    sl = catalog.current_list
    projection = PolicyEngine(catalog=catalog, sharing_list=sl, master_key=b"k").projection(
        "household_change")
    assert projection is not None
    projected = projection.project({"citizen_id": ZHANG, "name": "张三",
                                    "birth_date": date(1985, 3, 2), "change_type": "01"})
    assert projected is not None
    store.apply(*projected)
    clock = FixedClock(IN_FORCE)
    svc = VerifyService(catalog=catalog, sharing_list=sl, stores={"household_change": store},
                        audit={"household_change": audit}, master_key=b"k" * 32,
                        worker="gw-test", clock=clock)
    return svc, ListFollower.of(catalog, clock=clock, apply=svc.apply_list), audit


def test_a_revoking_version_makes_the_next_request_403(catalog: Catalog) -> None:
    svc, follower, audit = service(catalog)
    assert catalog.current_list.version == 3
    assert svc.verify("bank", "household_change", ASK).status == 200
    verdict = follower.offer(revoking_version(catalog))
    assert isinstance(verdict, ListAccepted) and verdict.version == 4
    assert svc.sharing_list.version == 4
    reply = svc.verify("bank", "household_change", ASK)
    assert reply.status == 403 and reply.body["error"] == "forbidden"
    assert [r["list_version"] for r in audit.records] == [3]  # no entry: nothing to audit
    # the same version read again (a restart re-reads the topic) is ignored
    assert isinstance(follower.offer(revoking_version(catalog)), ListIgnored)


def test_versions_the_ledger_refuses_change_nothing(catalog: Catalog, tmp_path: Path) -> None:
    svc, follower, _ = service(catalog)
    unsigned = follower.offer(revoking_version(catalog, signed=False))
    assert isinstance(unsigned, ListRefused)
    assert "no version signature" in unsigned.reason
    # the signed v4 with its number changed to 3: a squatted number, and its seal breaks
    squatted = json.loads(revoking_version(catalog))
    squatted["version"] = 3
    assert isinstance(follower.offer(json.dumps(squatted).encode()), ListRefused)
    assert follower.offer(b"\xff not a list") is None
    assert follower.offer(b"version: [") is None
    assert svc.sharing_list.version == 3
    reply = svc.verify("bank", "household_change", ASK)
    assert reply.status == 200 and reply.body["results"] == [{"answers": ["match"]}]
    assert reply.body["list_version"] == 3
