"""Joint verification through the HTTP route: a bank with a verify entry asks the civil
records (household_change, provider psb) whether names and citizen IDs match."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from shulian.catalog.elements import citizen_id_check_char
from shulian.catalog.models import Catalog
from shulian.connectors.sources.gateway_auth import Authenticator, token_sha256
from shulian.connectors.sources.verify_api import verify_router
from shulian.logic.audit import verify_chain
from shulian.logic.verify import Answer, Claim, ClaimHow, VerifyPlan, answer
from shulian.verification.service import VerifyService
from tests.fixtures.verify import IN_FORCE, ChainedAudit, MemoryStore, verify_catalog

TOKENS = {"bank": "bank-token", "psb": "psb-token"}


def cid(first17: str) -> str:
    return first17 + citizen_id_check_char(first17)


ZHANG = cid("44010619850302123")
LI = cid("44010419900711456")


def record(citizen_id: str, name: str, born: date, change: str = "01") -> dict[str, Any]:
    return {"serial_no": f"S{citizen_id[-6:]}", "citizen_id": citizen_id, "name": name,
            "sex": "1", "birth_date": born, "change_type": change,
            "change_date": date(2026, 1, 2), "address": "天河路1号"}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return verify_catalog(tmp_path_factory.mktemp("verify"))


class MovableClock:
    """A decision clock a test moves by hand."""

    label = "test"

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


class Rig:
    def __init__(self, catalog: Catalog, now: datetime = IN_FORCE) -> None:
        self.clock = MovableClock(now)
        self.store = MemoryStore()
        self.audit = ChainedAudit()
        sl = catalog.sharing_lists[3]
        self.service = VerifyService(catalog=catalog, sharing_list=sl,
                                     stores={"household_change": self.store},
                                     audit={"household_change": self.audit},
                                     master_key=b"k" * 32, worker="gw-test",
                                     clock=self.clock)
        from shulian.logic.policy import PolicyEngine
        proj = PolicyEngine(catalog=catalog, sharing_list=sl, master_key=b"k").projection(
            "household_change")
        assert proj is not None
        self.projection = proj
        for rec in (record(ZHANG, "张三", date(1985, 3, 2)),
                    record(LI, "李四", date(1990, 7, 11), change="04")):
            self.put(rec)
        app = FastAPI()
        auth = Authenticator({a: token_sha256(t) for a, t in TOKENS.items()},
                             {"psb": frozenset({"household_change"}), "bank": frozenset()})
        app.include_router(verify_router(self.service, auth, max_body_bytes=1 << 20))
        self.client = TestClient(app)

    def put(self, rec: dict[str, Any]) -> None:
        projected = self.projection.project(rec)
        assert projected is not None
        self.store.apply(*projected)

    def ask(self, body: Any, agency: str | None = "bank", dataset: str = "household_change"
            ) -> Any:
        headers = {} if agency is None else {"Authorization": f"Bearer {TOKENS[agency]}"}
        return self.client.post(f"/v1/verify/{dataset}", json=body, headers=headers)


def name_id(citizen_id: str, name: str, how: str = "equals") -> dict[str, Any]:
    return {"key": {"citizen_id": citizen_id},
            "claims": [{"field": "name", "how": how, "value": name}]}


def test_matching_and_non_matching_name_and_id_and_unknown_id(catalog: Catalog) -> None:
    rig = Rig(catalog)
    r = rig.ask({"queries": [name_id(ZHANG, "张三"), name_id(ZHANG, "张山"),
                             name_id(cid("44010119700101001"), "张三"),
                             name_id(LI.lower(), "李四", "normalised")]})
    assert r.status_code == 200, r.text
    assert [x["answers"] for x in r.json()["results"]] == [
        ["match"], ["no_match"], ["unknown"], ["match"]]
    # alive? the latest change of 李四 is 04 (death: 注销)
    alive = rig.ask({"key": {"citizen_id": LI}, "claims": [
        {"field": "change_type", "how": "equals", "value": "04"},
        {"field": "birth_date", "how": "range", "min": "1990-01-01", "max": "1990-12-31"},
        {"field": "citizen_id", "how": "exists"}]})
    assert alive.json()["results"] == [{"answers": ["match", "match", "match"]}]
    # a superseded record is answered from its latest version
    rig.put(record(ZHANG, "张三丰", date(1985, 3, 2)))
    assert rig.ask(name_id(ZHANG, "张三")).json()["results"][0]["answers"] == ["no_match"]
    # no answer holds a stored value
    assert "张三" not in r.text and "李四" not in alive.text and "1990-07-11" not in alive.text


def test_claims_the_entry_does_not_allow_are_403(catalog: Catalog) -> None:
    rig = Rig(catalog)
    for claim in ({"field": "address", "how": "equals", "value": "天河路1号"},
                  {"field": "name", "how": "range", "min": "a"}):
        r = rig.ask({"key": {"citizen_id": ZHANG}, "claims": [claim]})
        assert r.status_code == 403 and r.json()["error"] == "claim_not_allowed"
    assert [rec["reason"] for rec in rig.audit.records] == ["claim_not_allowed"] * 2


def test_expired_and_not_yet_valid_entries_are_403(catalog: Catalog) -> None:
    for now, why in ((datetime.fromisoformat("2027-03-10T00:00:00+08:00"), "expired"),
                     (datetime.fromisoformat("2026-03-09T23:59:00+08:00"), "not_yet_valid")):
        rig = Rig(catalog, now)
        r = rig.ask(name_id(ZHANG, "张三"))
        assert r.status_code == 403 and why in r.json()["detail"]
        assert rig.audit.records[-1]["reason"] == why


def test_rate_limit_per_key_and_per_consumer(catalog: Catalog) -> None:
    rig = Rig(catalog)
    for guess in ("张一", "张二", "张三", "张四", "张五"):
        assert rig.ask(name_id(ZHANG, guess)).status_code == 200
    assert rig.ask(name_id(ZHANG, "张三")).status_code == 200  # the same claim again is free
    r = rig.ask(name_id(ZHANG, "张六"))
    assert r.status_code == 429
    assert r.json()["limit"] == "distinct_claims_per_key_per_day" and r.json()["value"] == 5
    assert "枚举" in r.json()["reason"] and int(r.headers["Retry-After"]) > 0
    rig.clock.at += timedelta(days=1)  # a new day in Asia/Shanghai
    assert rig.ask(name_id(ZHANG, "张六")).status_code == 200
    # claims per minute: 100 per consumer under the entry
    many = {"queries": [name_id(cid(f"440106198001{i:04d}1"[:17]), "王五") for i in range(101)]}
    r = rig.ask(many)
    assert r.status_code == 429 and r.json()["limit"] == "claims_per_minute"


def test_no_verify_entry_and_unauthenticated(catalog: Catalog) -> None:
    rig = Rig(catalog)
    assert rig.ask(name_id(ZHANG, "张三"), agency="psb").status_code == 403
    assert rig.ask(name_id(ZHANG, "张三"), dataset="business_licence").status_code == 403
    r = rig.ask(name_id(ZHANG, "张三"), agency=None)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    bad = rig.client.post("/v1/verify/household_change", content=b"{not json",
                          headers={"Authorization": "Bearer nobody"})
    assert bad.status_code == 401  # the token is checked before the body is read
    assert rig.audit.records == []


def test_batches_up_to_1000_claims(catalog: Catalog) -> None:
    rig = Rig(catalog)
    over = {"queries": [name_id(ZHANG, "张三")] * 1001}
    assert rig.ask(over).status_code == 413


def test_every_answer_is_audited_with_digests_only(catalog: Catalog) -> None:
    rig = Rig(catalog)
    rig.ask({"queries": [name_id(ZHANG, "张三"), name_id(LI, "李")]})
    rig.ask(name_id(ZHANG, "张三"), agency="psb")  # no entry: nothing to audit under
    recs = rig.audit.records
    assert [r["kind"] for r in recs] == ["verification"] * 2
    assert [[c[2] for c in r["claims"]] for r in recs] == [["match"], ["no_match"]]
    assert {r["entry_id"] for r in recs} == {"psb-bank-verify"} and recs[0]["list_version"] == 3
    assert recs[0]["consumer"] == "bank" and recs[0]["provider"] == "psb"
    text = b"".join(rig.audit.sealed).decode()
    for secret in (ZHANG, LI, "张三", "李"):
        assert secret not in text
    assert verify_chain(enumerate(rig.audit.sealed)) == []


# --- the property: an answer says nothing beyond the claim it answers -------------------------

names = st.text(alphabet="张王李赵三四五六七", min_size=1, max_size=3)
births = st.dates(min_value=date(1940, 1, 1), max_value=date(2020, 12, 31))
changes = st.sampled_from(["01", "02", "03", "04"])


@st.composite
def claims(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["name_eq", "name_norm", "birth_eq", "birth_range", "change",
                                 "exists"]))
    if kind.startswith("name"):
        how = "equals" if kind == "name_eq" else "normalised"
        return {"field": "name", "how": how, "value": draw(names)}
    if kind == "birth_eq":
        return {"field": "birth_date", "how": "equals", "value": draw(births).isoformat()}
    if kind == "birth_range":
        a, b = sorted([draw(births), draw(births)])
        return {"field": "birth_date", "how": "range", "min": a.isoformat(),
                "max": b.isoformat()}
    if kind == "change":
        return {"field": "change_type", "how": "equals", "value": draw(changes)}
    return {"field": "citizen_id", "how": "exists"}


@settings(max_examples=150, deadline=None)
@given(name=names, other_name=names, born=births, other_born=births, change=changes,
       other_change=changes, claim=claims())
def test_property_answers_depend_only_on_the_claimed_field(
        catalog: Catalog, name: str, other_name: str, born: date, other_born: date,
        change: str, other_change: str, claim: dict[str, Any]) -> None:
    rig = Rig(catalog)
    plan = VerifyPlan.of(catalog, catalog.sharing_lists[3].entries[-1],
                         clock=MovableClock(IN_FORCE))
    c = Claim(claim["field"], ClaimHow(claim["how"]), claim.get("value"), claim.get("min"),
              claim.get("max"))
    base = record(ZHANG, name, born, change)
    other = record(ZHANG, other_name, other_born, other_change)
    other[claim["field"]] = base[claim["field"]]  # the claimed field kept, the rest changed
    first, second = (json.loads(p[1]) for p in
                     (rig.projection.project(base), rig.projection.project(other))
                     if p is not None)
    assert answer(plan, c, first) == answer(plan, c, second)
    rig.put(base)
    reply = rig.ask({"key": {"citizen_id": ZHANG}, "claims": [claim]})
    body = reply.json()
    assert body["results"] == [{"answers": [answer(plan, c, first).value]}]
    assert set(body) == {"dataset", "entry", "list_version", "results"}
    assert body["results"][0]["answers"][0] in {a.value for a in Answer}
