"""Topic naming and parsing, with and without a drill namespace."""

from __future__ import annotations

from shulian.chain.topology import Topology, subject_of


def test_names_and_parsing() -> None:
    t = Topology()
    assert t.raw("psb", "household_change") == "raw.psb.household_change"
    assert t.parse_raw("raw.psb.household_change") == ("psb", "household_change")
    assert t.parse_raw("canonical.household_change") is None
    assert t.parse_raw("raw.psb") is None
    assert t.parse_canonical("canonical.birth_certificate") == "birth_certificate"
    assert t.parse_egress("egress.tax.business_licence") == ("tax", "business_licence")
    assert t.audit("business_licence") == "audit.business_licence"
    assert t.control == "control.sharing-list"
    assert subject_of("raw.psb.household_change") == "raw.psb.household_change-value"


def test_namespace_prefixes_every_topic_and_parsing_respects_it() -> None:
    t = Topology(namespace="drill1")
    assert t.raw("psb", "x") == "drill1.raw.psb.x"
    assert t.canonical("x") == "drill1.canonical.x"
    assert t.control == "drill1.control.sharing-list"
    assert t.parse_raw("drill1.raw.psb.x") == ("psb", "x")
    # a production topic is not part of the drill namespace
    assert t.parse_raw("raw.psb.x") is None
    assert t.unprefix("drill1.egress.tax.x") == "egress.tax.x"
