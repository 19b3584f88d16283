"""Security properties: consumer views and the gateway's tokens.

Covered elsewhere and referenced in docs/RELIABILITY.md: the same view property over a
synthetic dataset with random lists (tests/unit/test_policy.py::
test_property_views_hold_only_allowed_fields_and_masked_values); 401/403 through the gateway app
(tests/integration/test_source_gateway.py::test_auth_limits_and_body_errors); webhook
signatures (tests/unit/test_sink_signature.py, pure; tests/reliability/test_outages.py::
test_webhook_outage_mid_stream, a real receiver that verifies every request and refuses a
tampered body with 401).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import hmac
import os
import random
import types
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from shulian.catalog.load import load_catalog
from shulian.catalog.models import (
    Approval,
    Catalog,
    ListEntry,
    Mask,
    ShareType,
    SharingList,
)
from shulian.catalog.specs import mask_fits
from shulian.connectors.sources.config import GatewayConfig
from shulian.connectors.sources.gateway import build_authenticator, create_app
from shulian.connectors.sources.gateway_auth import Authenticator, AuthOutcome, token_sha256
from shulian.io.publish import load_raw_schemas
from shulian.logic.generate import generators_for
from shulian.logic.harmonise import Harmonised, Harmoniser
from shulian.logic.masking import apply_mask
from shulian.logic.policy import Outcome, PolicyEngine
from shulian.logic.result import Accepted
from shulian.settings import REPO_ROOT
from tests.fixtures.clock import EXAMPLE_CLOCK

KEY = b"security-property-key"
NOW = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)
META = {"_record_key", "_entry_id", "_list_version"}
MASKS: list[dict[str, Any]] = [
    {"type": "keep", "first": 1, "last": 1}, {"type": "keep", "first": 6, "last": 4},
    {"type": "keep"}, {"type": "name"}, {"type": "hmac"},
    {"type": "truncate_date", "to": "year"}, {"type": "truncate_date", "to": "month"},
    {"type": "generalise_region", "to": "city"},
    {"type": "generalise_region", "to": "province"}, {"type": "drop"},
]
FILTERS = [None, "true", "false", 'record.region.startsWith("44")',
           "record.nonexistent_field == 1", "record.citizen_id != null"]


class World:
    def __init__(self) -> None:
        self.catalog: Catalog = load_catalog(REPO_ROOT / "catalog",
                                             schemas_dir=REPO_ROOT / "schemas")
        self.pairs = sorted(self.catalog.mappings)
        self.gens = generators_for(self.catalog, load_raw_schemas(self.catalog,
                                                                  REPO_ROOT / "schemas"))
        self.harmoniser = Harmoniser(self.catalog, clock=EXAMPLE_CLOCK)
        self.masks = [TypeAdapter(Mask).validate_python(m) for m in MASKS]

    def element_type(self, dataset: str, field: str) -> Any:
        ds = self.catalog.datasets[dataset]  # type: ignore[index]
        f = next(f for f in ds.fields if f.name == field)
        return self.catalog.elements[f.element].type


@cache
def world() -> World:
    return World()


@st.composite
def scenario(draw: st.DrawFn) -> tuple[tuple[str, str], list[ListEntry], list[Harmonised]]:
    """A random list of entries for one (provider, dataset) of the example catalogue and a
    few records that agency could send, harmonised."""
    w = world()
    pair = draw(st.sampled_from(w.pairs))
    provider, dataset = pair
    ds = w.catalog.datasets[dataset]
    names = [f.name for f in ds.fields]
    consumers = sorted(a for a in w.catalog.agencies if a != provider)
    entries = []
    for i in range(draw(st.integers(1, 5))):
        # verify entries deliver no view (their answers are tested in test_verify_api)
        share = draw(st.sampled_from([s for s in ShareType if s is not ShareType.VERIFY]))
        fields = ([] if share is ShareType.NONE else
                  draw(st.lists(st.sampled_from(names), min_size=1, unique=True)))
        masks: dict[str, Mask] = {}
        for f in fields:
            fitting = [m for m in w.masks if mask_fits(m, w.element_type(dataset, f)) is None]
            masked = draw(st.booleans())
            if fitting and masked:
                masks[f] = draw(st.sampled_from(fitting))
        h0 = draw(st.integers(-48, 48))
        h1 = draw(st.none() | st.integers(h0 + 1, 49))
        appr = None
        if share is ShareType.CONDITIONAL or draw(st.booleans()):
            a0 = draw(st.integers(-48, 48))
            appr = Approval(ref="穗政数审〔2026〕9号", valid_from=NOW + timedelta(hours=a0),
                            valid_to=NOW + timedelta(hours=draw(st.integers(a0 + 1, 49))))
        entries.append(ListEntry(
            id=f"E{i}", dataset=dataset, provider=provider,  # type: ignore[arg-type]
            consumer=draw(st.sampled_from(consumers)), share_type=share, purpose="p",
            legal_basis="b", fields=fields, masks=masks,
            row_filter=draw(st.sampled_from(FILTERS)),
            valid_from=NOW + timedelta(hours=h0),
            valid_to=None if h1 is None else NOW + timedelta(hours=h1), approval=appr))
    records = []
    for seed in draw(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=3)):
        raw = w.gens[pair].generate(random.Random(seed)).raw
        result = w.harmoniser.harmonise(provider, dataset, raw)
        assert isinstance(result, Accepted), result
        records.append(result.value)
    return pair, entries, records


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(item=scenario(), shift=st.integers(-72, 72))
def test_views_hold_only_allowed_fields_masked_where_required(
        item: tuple[tuple[str, str], list[ListEntry], list[Harmonised]], shift: int) -> None:
    """For random lists over the example catalogue's datasets and records harmonised from the
    agencies' own dialects: a view holds only its entry's fields, every masked field is masked
    (never the clear value), drops never deliver, the record key is pseudonymous unless the
    key fields are delivered in clear, and nothing is delivered outside validity/approval."""
    w = world()
    (provider, dataset), entries, records = item
    sl = SharingList(version=7, published=NOW - timedelta(days=1), entries=entries)
    catalog = w.catalog.model_copy(update={"sharing_lists": {7: sl}})
    engine = PolicyEngine(catalog=catalog, sharing_list=sl, master_key=KEY)
    now = NOW + timedelta(hours=shift)
    key_fields = list(w.catalog.datasets[dataset].key)  # type: ignore[index]
    for h in records:
        decisions = engine.decide(dataset=dataset, provider=provider, record=h.record,
                                  record_key=h.key, now=now)
        assert [d.entry_id for d in decisions] == [e.id for e in entries]
        for d, e in zip(decisions, entries, strict=True):
            assert d.consumer == e.consumer
            if d.outcome is Outcome.WITHHOLD:
                assert d.view is None and not d.fields_delivered
                continue
            assert d.view is not None
            assert e.share_type is not ShareType.NONE
            assert e.valid_from <= now and (e.valid_to is None or now < e.valid_to)
            if e.share_type is ShareType.CONDITIONAL:
                assert e.approval is not None
                assert e.approval.valid_from <= now < e.approval.valid_to
            assert e.row_filter not in ("false", "record.nonexistent_field == 1")
            data = set(d.view) - META
            assert set(d.view) >= META
            assert data <= set(e.fields), "a field outside the entry's allowed set"
            for f in data:
                clear = h.record.get(f)
                m = e.masks.get(f)
                if m is None:
                    assert d.view[f] == clear
                    continue
                if m.type == "drop":
                    assert d.view[f] is None
                    continue
                expected = apply_mask(m, clear, element_type=w.element_type(dataset, f),
                                      consumer=e.consumer, master_key=KEY)
                assert d.view[f] == expected
                if clear is not None and not (m.type == "keep" and _keeps_all(m, clear)):
                    assert d.view[f] != clear, f"{f} delivered unmasked under {m.type}"
            clear_key = all(k in e.fields and k not in e.masks for k in key_fields)
            if not clear_key:
                assert d.view["_record_key"] != h.key, "the record key reveals a masked key"


def _keeps_all(m: Any, clear: object) -> bool:
    """A keep mask whose first+last cover the whole value changes nothing (e.g. a 6+4 keep on
    a 10-character value); the catalogue allows it, the property accepts it."""
    return bool(len(str(clear)) <= m.first + m.last)


# --- the gateway's tokens ------------------------------------------------------------------

TOKENS = {"psb": "psb-secret-token-8c1f", "amr": "amr-secret-token-55d0",
          "health_th": "th-secret-token-0e9a"}


def gateway_config(monkeypatch: pytest.MonkeyPatch) -> GatewayConfig:
    for agency, token in TOKENS.items():
        monkeypatch.setenv(f"H6_{agency.upper()}_TOKEN", token)
    return GatewayConfig.model_validate({
        "name": "gw-sec", "port": 0,
        "agencies": {
            "psb": {"token_env": "H6_PSB_TOKEN", "datasets": ["household_change"]},
            "amr": {"token_env": "H6_AMR_TOKEN", "datasets": ["business_licence"]},
            "health_th": {"token_sha256": token_sha256(TOKENS["health_th"]),
                          "datasets": ["birth_certificate"]},
        }})


def _reachable_strings(root: object, limit: int = 200_000) -> list[str | bytes]:
    """Every str/bytes reachable from ``root`` through the objects it refers to; functions
    are followed through their closures and defaults, not their module globals (modules,
    classes and the process environment are not the gateway's own structures)."""
    seen: set[int] = set()
    out: list[str | bytes] = []
    stack = [root]
    while stack and len(seen) < limit:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, str | bytes):
            out.append(obj)
        elif isinstance(obj, types.FunctionType):
            for cell in obj.__closure__ or ():
                with contextlib.suppress(ValueError):  # an empty cell
                    stack.append(cell.cell_contents)
            stack.extend(obj.__defaults__ or ())
            stack.extend((obj.__kwdefaults__ or {}).values())
        elif not isinstance(obj, type | types.ModuleType | os._Environ):
            stack.extend(gc.get_referents(obj))
    return out


def test_tokens_are_held_hashed_never_in_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    config = gateway_config(monkeypatch)
    auth = build_authenticator(config)
    # every secret resolves to its own agency; the authenticator holds digests only
    for agency, token in TOKENS.items():
        assert auth.identify(f"Bearer {token}") == agency
    held = _reachable_strings(auth)
    for token in TOKENS.values():
        assert not any(token in s if isinstance(s, str) else token.encode() in s for s in held)
    digests = {hashlib.sha256(t.encode()).digest() for t in TOKENS.values()}
    assert digests <= {s for s in held if isinstance(s, bytes)}
    # the config names variables or digests, never a token
    dumped = config.model_dump_json()
    assert not any(token in dumped for token in TOKENS.values())


def test_the_gateway_app_holds_no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """Walk the whole app the gateway serves (routes, closures, config, authenticator)."""
    from prometheus_client import CollectorRegistry

    from shulian.connectors.metrics import ConnectorMetrics

    config = gateway_config(monkeypatch)

    class NoDelivery:  # the app is only built here, never called
        pass

    class NoSchemas:
        pass

    app = create_app(config, auth=build_authenticator(config), schemas=NoSchemas(),  # type: ignore[arg-type]
                     delivery=NoDelivery(),  # type: ignore[arg-type]
                     metrics=ConnectorMetrics.create(CollectorRegistry()))
    held = _reachable_strings(app)
    digests = {hashlib.sha256(t.encode()).digest() for t in TOKENS.values()}
    assert digests <= {s for s in held if isinstance(s, bytes)}  # the walk reached the auth
    for token in TOKENS.values():
        assert not any(token in s if isinstance(s, str) else token.encode() in s for s in held)


def test_tokens_are_compared_with_compare_digest_against_every_agency(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Timing itself cannot be asserted on a shared machine; what can be: the comparison is
    ``hmac.compare_digest`` on fixed-length digests, made against every agency whatever the
    token (no early exit on a match, none on a mismatch), never ``==`` on the token."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    auth = build_authenticator(gateway_config(monkeypatch))
    n = len(TOKENS)
    for header in ("Bearer psb-secret-token-8c1f", "Bearer th-secret-token-0e9a",
                   "Bearer wrong", "Bearer " + "x" * 4000):
        calls.clear()
        auth.identify(header)
        assert len(calls) == n, header
        assert all(len(a) == len(b) == 32 for a, b in calls)
        presented = hashlib.sha256(header.split(" ", 1)[1].encode()).digest()
        assert all(a == presented for a, _ in calls)
    calls.clear()
    malformed: list[str | None] = [None, "", "Basic abc", "Bearer ", "Bearer " + "x" * 5000]
    for bad in malformed:
        assert auth.identify(bad) is None
    assert calls == []  # malformed headers are refused before any comparison


def test_no_token_401_another_agencys_dataset_403() -> None:
    """The pure decision (the HTTP codes are asserted through the app in
    tests/integration/test_source_gateway.py::test_auth_limits_and_body_errors)."""
    auth = Authenticator({"psb": token_sha256("a"), "amr": token_sha256("b")},
                         {"psb": frozenset({"household_change"}),
                          "amr": frozenset({"business_licence"})})
    check = auth.check
    assert check(None, agency="psb", dataset="household_change") is AuthOutcome.UNAUTHENTICATED
    assert check("Bearer nope", agency="psb",
                 dataset="household_change") is AuthOutcome.UNAUTHENTICATED
    assert check("Bearer a", agency="psb", dataset="household_change") is AuthOutcome.OK
    assert check("Bearer b", agency="psb", dataset="household_change") is AuthOutcome.FORBIDDEN
    assert check("Bearer a", agency="psb", dataset="business_licence") is AuthOutcome.FORBIDDEN
    assert check("Bearer a", agency="amr", dataset="business_licence") is AuthOutcome.FORBIDDEN
