"""The registry's authorisation table (pure): what each principal may do on which subject,
including paths with trailing slashes and percent-encoded subjects."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr

from shulian.perimeter.identities import Principal, Role
from shulian.registry.auth import Action, authenticate, authorize, classify

PSB = Principal(Role.AGENCY, "psb")
CHAIN = Principal(Role.CHAIN)
GOV = Principal(Role.GOVERNANCE)
SINK = Principal(Role.SINK, "tax-pg")
RAW = "raw.psb.household_change-value"


@pytest.mark.parametrize(("method", "path", "action", "subject"), [
    ("GET", "/subjects", Action.READ, None),
    ("GET", "/schemas/ids/3", Action.READ, None),
    ("POST", f"/subjects/{RAW}", Action.READ, RAW),
    ("POST", f"/subjects/{RAW}/versions", Action.REGISTER, RAW),
    ("POST", f"/subjects/{RAW}/versions/", Action.REGISTER, RAW),
    ("POST", "/subjects/raw.psb.x%2Fy-value/versions", Action.REGISTER, "raw.psb.x/y-value"),
    ("POST", f"/compatibility/subjects/{RAW}/versions/latest", Action.READ, RAW),
    ("DELETE", f"/subjects/{RAW}", Action.DELETE, RAW),
    ("DELETE", f"/subjects/{RAW}/versions/1", Action.DELETE, RAW),
    ("PUT", f"/config/{RAW}", Action.CONFIG, RAW),
    ("PUT", "/config", Action.CONFIG, None),
    ("PUT", "/mode", Action.MODE, None),
    ("DELETE", f"/mode/{RAW}/", Action.MODE, RAW),
    # the endpoints registry fidelity added: DELETE /mode is governance's, the reads anyone's
    ("DELETE", "/mode", Action.MODE, None),
    ("DELETE", "/config/", Action.CONFIG, None),
    ("GET", "/schemas?subjectPrefix=raw.", Action.READ, None),
    ("GET", "/contexts", Action.READ, None),
    ("GET", "/v1/metadata/id", Action.READ, None),
    ("POST", "/exporters", Action.OTHER, None),
])
def test_classify(method: str, path: str, action: Action, subject: str | None) -> None:
    assert classify(method, path) == (action, subject)


def test_agency_registers_only_its_own_raw_subjects() -> None:
    assert authorize(PSB, Action.REGISTER, RAW).allowed
    assert authorize(PSB, Action.REGISTER, "raw.psb.household_change-key").allowed
    for subject in ("raw.amr.business_licence-value", "raw.psbx.household_change-value",
                    "canonical.household_change-value", "egress.psb.birth_certificate-value",
                    "raw.psb.household_change", "raw.psb.x/y-value", None):
        assert not authorize(PSB, Action.REGISTER, subject).allowed, subject


def test_the_registry_attacks_are_refused_to_everyone_but_governance() -> None:
    for p in (PSB, CHAIN, SINK, Principal(Role.AUDITOR), Principal(Role.SOURCE, "gw")):
        assert not authorize(p, Action.CONFIG, RAW).allowed  # compatibility NONE
        assert not authorize(p, Action.DELETE, RAW).allowed
        assert not authorize(p, Action.MODE, None).allowed  # READONLY
        assert not authorize(p, Action.OTHER, None).allowed
        assert authorize(p, Action.READ, RAW).allowed
    for a in (Action.CONFIG, Action.DELETE, Action.MODE, Action.OTHER, Action.REGISTER):
        assert authorize(GOV, a, RAW).allowed


def test_chain_registers_chain_subjects_and_sets_only_view_compatibility() -> None:
    assert authorize(CHAIN, Action.REGISTER, "canonical.household_change-value").allowed
    assert authorize(CHAIN, Action.REGISTER, "egress.tax.business_licence-value").allowed
    assert authorize(CHAIN, Action.CONFIG, "egress.tax.business_licence-value", "PUT").allowed
    assert not authorize(CHAIN, Action.CONFIG, "egress.tax.business_licence-value",
                         "DELETE").allowed
    assert not authorize(CHAIN, Action.CONFIG, "canonical.household_change-value").allowed
    assert not authorize(CHAIN, Action.REGISTER, "_schemas-value").allowed
    assert not authorize(SINK, Action.REGISTER, "egress.tax.business_licence-value").allowed


def _basic(user: str, pw: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", b"Basic " + base64.b64encode(f"{user}:{pw}".encode()))]


def test_authenticate() -> None:
    secrets = {"agency.psb": SecretStr("s3cret"), "admin": SecretStr("x")}
    assert authenticate(_basic("agency.psb", "s3cret"), secrets) == PSB
    assert authenticate(_basic("agency.psb", "wrong"), secrets) is None
    assert authenticate(_basic("agency.amr", "s3cret"), secrets) is None
    assert authenticate(_basic("admin", "x"), secrets) is None  # not a Shulian principal
    assert authenticate([(b"authorization", b"Basic !!!")], secrets) is None
    assert authenticate([(b"authorization", b"Bearer abc")], secrets) is None
    assert authenticate([], secrets) is None
