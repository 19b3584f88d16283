"""The gateway's body rules, pure: media types and strict JSON."""

from __future__ import annotations

from shulian.connectors.sources.gateway_auth import Authenticator, AuthOutcome, token_sha256
from shulian.connectors.sources.gateway_body import (
    MAX_INT_DIGITS,
    BodyError,
    is_json_media_type,
    parse_records,
)


def parse(body: bytes) -> list[object] | BodyError:
    return parse_records(body, max_depth=8, max_records=10)


def test_media_types() -> None:
    assert is_json_media_type("application/json")
    assert is_json_media_type("Application/JSON; charset=utf-8")
    for other in (None, "", "text/csv", "application/jsonx", "text/json", "multipart/form-data"):
        assert not is_json_media_type(other), other


def test_strict_json() -> None:
    assert parse(b'{"a": 1}') == [{"a": 1}]
    assert parse(b'[{"a": -' + b"9" * MAX_INT_DIGITS + b"}]") == [{"a": -int("9" * 40)}]
    cases = {
        b'{"a": ' + b"9" * 5000 + b"}": (400, "number_too_long"),
        b'{"a": -' + b"9" * (MAX_INT_DIGITS + 1) + b"}": (400, "number_too_long"),
        b'{"a": 1, "a": 2}': (400, "duplicate_key"),
        b'[{"x": {"b": 1, "b": 1}}]': (400, "duplicate_key"),
        b'{"a": NaN}': (400, "invalid_json"),
        b'{"a": -Infinity}': (400, "invalid_json"),
        b'{"a": ': (400, "invalid_json"),
        b'"\xff"': (400, "invalid_utf8"),
        b"[" * 9 + b"]" * 9: (400, "too_deep"),
        b"[]": (422, "empty"),
        b"[" + b"{}," * 10 + b"{}]": (413, "too_many_records"),
    }
    for body, (status, error) in cases.items():
        got = parse(body)
        assert isinstance(got, BodyError) and (got.status, got.error) == (status, error), body
    dup = parse(b'{"LSH": 1, "LSH": 2}')
    assert isinstance(dup, BodyError) and "'LSH'" in dup.detail


def test_misspelt_dataset_is_not_found_for_a_valid_token_only() -> None:
    auth = Authenticator({"psb": token_sha256("a"), "amr": token_sha256("b")},
                         {"psb": frozenset({"household_change"}),
                          "amr": frozenset({"business_licence"})})
    assert auth.check("Bearer a", agency="psb", dataset="househld_change") is (
        AuthOutcome.NOT_FOUND)
    assert auth.check("Bearer a", agency="pbs", dataset="household_change") is (
        AuthOutcome.NOT_FOUND)
    assert auth.check(None, agency="psb", dataset="househld_change") is (
        AuthOutcome.UNAUTHENTICATED)
    # exists, but not this token's: forbidden, never "not found"
    assert auth.check("Bearer b", agency="psb", dataset="household_change") is (
        AuthOutcome.FORBIDDEN)
    assert auth.check("Bearer a", agency="psb", dataset="business_licence") is (
        AuthOutcome.FORBIDDEN)
