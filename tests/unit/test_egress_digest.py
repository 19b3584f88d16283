"""The egress ``shulian.digest`` reveals nothing about fields masked for its consumer.

Two canonical records that differ only in fields the human-resources bureau (``hrss``) sees
masked (the middle digits of ``legal_rep_id``, the dropped ``phone``, the day of
``established_on``) must reach it as byte-identical egress records, headers included: with a
plain SHA-256 of the canonical record in the header, the consumer could tell them apart, and so
test guesses of the hidden digits; with a keyed digest of the canonical record it could still
tell them apart. Auditors still tie egress to audit (``egress_digest``) and audit to canonical
(``record_digest``), with no secret key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fastavro import parse_schema

from shulian.audit.check import (
    AuditEntry,
    audit_entries,
    completeness,
    deliveries_from_audit,
    deliveries_from_egress,
    digest_breaks,
    digest_wrong,
    forged_egress,
)
from shulian.audit.rederive import Rederived, Refused, rederive
from shulian.audit.window import Window
from shulian.catalog.keys import CHAIN, Keyring, SigningKey
from shulian.catalog.load import load_catalog
from shulian.catalog.models import Catalog, PublicKey, ShareType
from shulian.chain.dedup import resume_from_audit
from shulian.chain.enforce import AuditPartition, EnforceStage, ViewSchema
from shulian.chain.messages import InMessage, OutMessage
from shulian.chain.topology import Topology
from shulian.chain.wire import encode_wire
from shulian.clock import FixedClock
from shulian.logic.audit import record_digest
from shulian.logic.digests import DIGEST_PLAIN, DIGEST_VIEW, digest_scheme, view_digest
from shulian.logic.egress import DIGEST_HEADER, verify_egress
from shulian.logic.policy import PolicyEngine
from shulian.logic.views import view_schema
from shulian.settings import load_settings
from tests.fixtures.clock import EXAMPLE_NOW

TOPO = Topology(namespace="t")
DATASET, PROVIDER, CONSUMER = "business_licence", "amr", "hrss"
MASTER = b"m" * 32
CHAIN_KEY = SigningKey.generate("chain-digest-1")
KEYS = Keyring([PublicKey(id=CHAIN_KEY.key_id, owner=CHAIN, public_key=CHAIN_KEY.public_b64,
                          valid_from=datetime(2026, 1, 1, tzinfo=UTC))])
CANONICAL_ID = 1

RECORD: dict[str, Any] = {
    "credit_code": "91440101MA5D12345X", "enterprise_name": "广州某某科技有限公司",
    "enterprise_type": "1130", "legal_rep_name": "张三丰", "legal_rep_id": "440105199003071234",
    "registered_capital": 1_000_000, "region": "440105", "address": "广州市海珠区某路1号",
    "established_on": date(2026, 2, 14), "status": "1", "phone": "13800138000",
    "business_scope": None, "registered_at": datetime(2026, 2, 14, 9, 30, tzinfo=UTC),
}
# the same record but for what hrss sees masked: birth date digits of the ID, phone, day
TWIN = RECORD | {"legal_rep_id": "440105198511221234", "phone": "13912345678",
                 "established_on": date(2026, 2, 27)}


def _catalog() -> Catalog:
    s = load_settings()
    return load_catalog(s.catalog_dir, schemas_dir=s.schemas_dir)


def _canonical(record: dict[str, Any]) -> InMessage:
    s = load_settings()
    with (s.schemas_dir / "canonical" / f"{DATASET}.avsc").open(encoding="utf-8") as fh:
        parsed = parse_schema(json.load(fh))
    return InMessage(topic=TOPO.canonical(DATASET), partition=0, offset=7,
                     key=str(record["credit_code"]).encode(),
                     value=encode_wire(CANONICAL_ID, parsed, record), timestamp_ms=0,
                     headers=[("shulian.provider", PROVIDER.encode())])


class _Lookup:
    def __init__(self) -> None:
        s = load_settings()
        with (s.schemas_dir / "canonical" / f"{DATASET}.avsc").open(encoding="utf-8") as fh:
            self._parsed = parse_schema(json.load(fh))

    def parsed(self, schema_id: int) -> Any | None:
        return self._parsed if schema_id == CANONICAL_ID else None

    def subjects_of(self, schema_id: int) -> frozenset[str]:
        return frozenset()


def _enforce(catalog: Catalog, msg: InMessage, master: bytes = MASTER) -> list[OutMessage]:
    """One fresh worker (same key, same decision time) deciding ``msg`` alone."""
    sl = catalog.current_list
    views = {(sl.version, str(e.id)): ViewSchema(100 + i, parse_schema(
        view_schema(catalog.datasets[e.dataset], catalog.elements, e)))
        for i, e in enumerate(sl.entries) if e.share_type is not ShareType.NONE}

    def loader(parts: Sequence[AuditPartition]) -> dict[AuditPartition, Any]:
        return {p: resume_from_audit([], canonical_topic=p[2], topic=p[0], partition=p[1],
                                     trust=None) for p in parts}

    stage = EnforceStage(topology=TOPO, schemas=_Lookup(), engine=PolicyEngine(
        catalog=catalog, sharing_list=sl, master_key=master), views=views, resume_loader=loader,
        worker="w", clock=FixedClock(EXAMPLE_NOW), signer=CHAIN_KEY)
    out, _ = stage.process([msg])
    return out


def _egress(out: list[OutMessage]) -> OutMessage:
    [m] = [m for m in out if m.topic == TOPO.egress(CONSUMER, DATASET)]
    return m


def _deliver_audit(out: list[OutMessage]) -> dict[str, Any]:
    recs: list[dict[str, Any]] = [json.loads(m.value) for m in out
                                  if m.topic == TOPO.audit(DATASET)]
    [rec] = [r for r in recs if r.get("consumer") == CONSUMER and r.get("decision") == "deliver"]
    return rec


def _header(m: OutMessage, name: str) -> str:
    [value] = [v for k, v in m.headers if k == name]
    assert value is not None
    return value.decode()


def test_masked_twins_reach_the_consumer_identical() -> None:
    catalog = _catalog()
    one, two = _canonical(RECORD), _canonical(TWIN)
    assert one.value and two.value and one.value != two.value
    assert record_digest(one.value) != record_digest(two.value)
    out1, out2 = _enforce(catalog, one), _enforce(catalog, two)
    e1, e2 = _egress(out1), _egress(out2)
    # everything the consumer receives: key, value and every header, signature included
    assert (e1.topic, e1.key, e1.value, e1.headers) == (e2.topic, e2.key, e2.value, e2.headers)
    header = _header(e1, DIGEST_HEADER)
    assert digest_scheme(header) == DIGEST_VIEW
    # what a consumer could brute-force before: the plain digest of its guess is not there
    for m in (one, two):
        assert hashlib.sha256(m.value or b"").hexdigest() not in header
    # the auditor's side: each audit record names its own canonical record and this header
    for rec_out, m in ((out1, one), (out2, two)):
        audit = _deliver_audit(rec_out)
        assert audit["record_digest"] == record_digest(m.value or b"")
        assert audit["egress_digest"] == header
        assert verify_egress(topic=e1.topic, key=e1.key, value=e1.value, headers=e1.headers,
                             keys=KEYS, at=EXAMPLE_NOW, now=EXAMPLE_NOW) is None


def test_view_digest_is_of_the_view_only() -> None:
    d = view_digest("t.egress.hrss.business_licence", b"k", b"v", "e1", 2)
    assert digest_scheme(d) == DIGEST_VIEW and d == view_digest(
        "t.egress.hrss.business_licence", b"k", b"v", "e1", "2")
    for other in (view_digest("t.egress.tax.business_licence", b"k", b"v", "e1", 2),
                  view_digest("t.egress.hrss.business_licence", b"k2", b"v", "e1", 2),
                  view_digest("t.egress.hrss.business_licence", b"k", b"w", "e1", 2),
                  view_digest("t.egress.hrss.business_licence", b"k", b"v", "e2", 2),
                  view_digest("t.egress.hrss.business_licence", b"k", b"v", "e1", 3)):
        assert other != d
    assert digest_scheme("ab" * 32) == DIGEST_PLAIN
    assert digest_scheme("x" * 64) is None and digest_scheme(DIGEST_VIEW + ":ab") is None
    assert digest_scheme("hmac-sha256/v1:" + "ab" * 32) is None


def _entries(out: list[OutMessage]) -> list[AuditEntry]:
    return audit_entries(InMessage(m.topic, 0, i, m.key, m.value, 0, [])
                         for i, m in enumerate(out) if m.topic == TOPO.audit(DATASET))


def _egress_in(out: list[OutMessage]) -> list[InMessage]:
    return [InMessage(m.topic, 0, i, m.key, m.value, 0, list(m.headers))
            for i, m in enumerate(out) if TOPO.parse_egress(m.topic)]


def test_audit_ties_egress_to_audit_to_canonical_without_a_key() -> None:
    catalog = _catalog()
    msg = _canonical(RECORD)
    out = _enforce(catalog, msg)
    entries = _entries(out)
    egress, bad = deliveries_from_egress(_egress_in(out))
    audited = deliveries_from_audit(entries)
    assert len(egress) == len(audited) > 1 and not bad
    assert completeness(egress, audited, Window()) == []
    assert digest_breaks(entries, {(msg.topic, msg.partition, msg.offset): msg.value or b""},
                         read_topics=frozenset({msg.topic}), window=Window()) == []


def test_egress_whose_digest_is_not_of_its_view_is_a_break() -> None:
    """A digest header edited (or the plain canonical digest put back) breaks the signature;
    a signed record whose digest is not of its view is reported as forged too; a plain digest
    matches no deliver audit record written since."""
    catalog = _catalog()
    msg = _canonical(RECORD)
    out = _enforce(catalog, msg)
    audited = deliveries_from_audit(_entries(out))
    genuine = _egress_in(out)
    assert forged_egress(genuine, KEYS, now=EXAMPLE_NOW) == []
    assert all(digest_wrong(m) is None for m in genuine)
    for wrong in (view_digest("x", b"", b"", "e", 1), record_digest(msg.value or b""),
                  "hmac-sha256/v1:" + "ab" * 32):
        edited = [replace(m, headers=[(k, wrong.encode() if k == DIGEST_HEADER else v)
                                      for k, v in m.headers]) for m in genuine]
        assert len(forged_egress(edited, KEYS, now=EXAMPLE_NOW)) == len(edited)
        assert all((digest_wrong(m) is None) == (digest_scheme(wrong) == DIGEST_PLAIN)
                   for m in edited)
        egress, bad = deliveries_from_egress(edited)
        breaks = completeness(egress, audited, Window())
        assert not bad and len(breaks) == len(edited)
        assert all("without a deliver" in b.what for b in breaks)


def test_old_records_with_the_canonical_digest_still_match() -> None:
    """Audit records written before egress_digest: the egress record's plain digest matches
    their record_digest, as before."""
    catalog = _catalog()
    out = _enforce(catalog, _canonical(RECORD))
    entries = [replace(e, record={k: v for k, v in e.record.items() if k != "egress_digest"})
               for e in _entries(out)]
    audited = deliveries_from_audit(entries)
    plain = [replace(m, headers=[(k, e.record["record_digest"].encode()
                                  if k == DIGEST_HEADER else v) for k, v in m.headers])
             for m, e in zip(_egress_in(out), [x for x in entries
                                               if x.record["decision"] == "deliver"],
                             strict=True)]
    egress, bad = deliveries_from_egress(plain)
    assert not bad and completeness(egress, audited, Window()) == []


def test_replay_rederives_the_audited_view_or_refuses() -> None:
    catalog = _catalog()
    msg = _canonical(RECORD)
    out = _enforce(catalog, msg)
    sl = catalog.current_list
    views = {(sl.version, str(e.id)): ViewSchema(100 + i, parse_schema(
        view_schema(catalog.datasets[e.dataset], catalog.elements, e)))
        for i, e in enumerate(sl.entries) if e.share_type is not ShareType.NONE}
    engines = {sl.version: PolicyEngine(catalog=catalog, sharing_list=sl, master_key=MASTER)}
    audit = _deliver_audit(out)
    where = (msg.topic, msg.partition, msg.offset)
    made = rederive(audit, ("a", 0, 0), canonical={where: msg}, engines=engines, views=views,
                    schemas=_Lookup())
    assert isinstance(made, Rederived)
    assert made.content.digest == audit["egress_digest"] == _header(_egress(out), DIGEST_HEADER)
    edited = audit | {"egress_digest": view_digest("x", b"", b"", "e", 1)}
    refused = rederive(edited, ("a", 0, 0), canonical={where: msg}, engines=engines,
                       views=views, schemas=_Lookup())
    assert isinstance(refused, Refused) and "egress_digest" in refused.why


@pytest.mark.parametrize("field", ["legal_rep_name", "credit_code"])
def test_a_field_the_consumer_sees_still_changes_what_it_receives(field: str) -> None:
    """The control: a difference in a field hrss sees (the name masked to its family name, so
    another family name; the key) does reach it, so the first test can fail."""
    catalog = _catalog()
    changed = RECORD | {field: "李四" if field == "legal_rep_name" else "91440101MA5D99999Y"}
    e1 = _egress(_enforce(catalog, _canonical(RECORD)))
    e2 = _egress(_enforce(catalog, _canonical(changed)))
    assert (e1.key, e1.value) != (e2.key, e2.value)
    assert _header(e1, DIGEST_HEADER) != _header(e2, DIGEST_HEADER)
