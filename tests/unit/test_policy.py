"""The sharing decision: decision table (each reason), who gets nothing, several entries per
consumer, catalogue errors, and hypothesis properties over random lists and records."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import cel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shulian.catalog.models import (
    Approval,
    ElementType,
    ListEntry,
    Mask,
    ShareType,
    SharingList,
)
from shulian.catalog.specs import mask_fits
from shulian.errors import ConfigError
from shulian.logic.masking import apply_mask
from shulian.logic.policy import (
    Decision,
    Outcome,
    PolicyEngine,
    WithholdReason,
    cel_record,
    filter_fields,
)
from tests.fixtures.policy import (
    DS,
    ELEMENTS,
    FIELD_NAMES,
    FIELDS,
    KEY,
    NOW,
    PROVIDER,
    H,
    decide,
    engine,
    entry,
    make_catalog,
    make_record,
    mask,
)

META = {"_record_key", "_entry_id", "_list_version"}

FIELD_TYPE = {name: ELEMENTS[el] for name, el, _ in FIELDS}


def approval(start: datetime, end: datetime) -> Approval:
    return Approval(ref="粤政数审〔2026〕12号", valid_from=start, valid_to=end)


def one(eng: PolicyEngine, **kw: Any) -> Decision:
    ds = decide(eng, **kw)
    assert len(ds) == 1
    return ds[0]


# --- delivery ------------------------------------------------------------------------------


def test_unconditional_delivers_only_entry_fields_with_masks_in_dataset_order() -> None:
    e = entry(
        fields=["region", "phone", "citizen_id", "name", "birth_date"],
        masks={
            "citizen_id": mask(type="keep", first=6, last=4),
            "name": mask(type="name"),
            "phone": mask(type="drop"),
            "birth_date": mask(type="truncate_date", to="year"),
        },
    )
    d = one(engine(e))
    assert d.outcome is Outcome.DELIVER and d.reason is None
    assert d.view == {
        "citizen_id": "440106********1234",
        "name": "张**",
        "birth_date": "1990",
        "region": "440106",
        "_record_key": pseudonym("health", "440106199001011234"),  # citizen_id is masked
        "_entry_id": "E1",
        "_list_version": 3,
    }
    assert list(d.view) == [
        "citizen_id",
        "name",
        "birth_date",
        "region",
        "_record_key",
        "_entry_id",
        "_list_version",
    ]
    assert d.fields_delivered == ("citizen_id", "name", "birth_date", "region")
    assert d.fields_masked == (
        ("citizen_id", "keep"),
        ("name", "name"),
        ("birth_date", "truncate_date"),
        ("phone", "drop"),
    )
    assert (d.entry_id, d.consumer, d.provider, d.dataset, d.list_version) == (
        "E1",
        "health",
        PROVIDER,
        DS,
        3,
    )
    assert d.share_type is ShareType.UNCONDITIONAL
    assert d.record_key == "440106199001011234"


def pseudonym(consumer: str, key: str) -> str:
    out = apply_mask(
        mask(type="hmac"), key, element_type=ElementType.TEXT, consumer=consumer, master_key=KEY
    )
    assert isinstance(out, str)
    return out


@pytest.mark.parametrize(
    ("fields", "masks", "clear"),
    [
        (["citizen_id", "name"], {}, True),
        (["citizen_id"], {"citizen_id": mask(type="keep", first=1)}, False),
        (["citizen_id"], {"citizen_id": mask(type="drop")}, False),
        (["name"], {}, False),  # the key field is not delivered at all
    ],
)


def test_record_key_never_reveals_a_masked_or_withheld_key_field(
    fields: list[str], masks: dict[str, Mask], clear: bool
) -> None:
    d = one(engine(entry(fields=fields, masks=masks)))
    assert d.view is not None and d.record_key == "440106199001011234"
    expected = "440106199001011234" if clear else pseudonym("health", "440106199001011234")
    assert d.view["_record_key"] == expected


def test_hmac_masked_key_field_equals_the_pseudonymous_record_key() -> None:
    d = one(engine(entry(fields=["citizen_id"], masks={"citizen_id": mask(type="hmac")})))
    assert d.view is not None
    assert d.view["_record_key"] == d.view["citizen_id"] != "440106199001011234"


def test_conditional_with_valid_approval_delivers() -> None:
    e = entry(
        share_type=ShareType.CONDITIONAL,
        approval=approval(NOW - timedelta(days=1), NOW + timedelta(days=1)),
    )
    d = one(engine(e))
    assert d.outcome is Outcome.DELIVER
    assert d.share_type is ShareType.CONDITIONAL


def test_unmasked_null_and_timestamp_pass_through() -> None:
    e = entry(fields=["remark", "changed_at", "subsidy"])
    d = one(engine(e))
    assert d.view is not None
    assert d.view["remark"] is None
    assert d.view["changed_at"] == datetime(2026, 2, 28, 16, 30, tzinfo=UTC)
    assert d.view["subsidy"] == 123456


# --- the decision table --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"share_type": ShareType.NONE, "fields": []}, WithholdReason.SHARE_TYPE_NONE),
        ({"valid_from": NOW + H}, WithholdReason.NOT_YET_VALID),
        ({"valid_from": NOW - 2 * H, "valid_to": NOW}, WithholdReason.EXPIRED),
        ({"valid_from": NOW - 2 * H, "valid_to": NOW - H}, WithholdReason.EXPIRED),
        (
            {"share_type": ShareType.CONDITIONAL, "approval": approval(NOW + H, NOW + 2 * H)},
            WithholdReason.APPROVAL_NOT_YET_VALID,
        ),
        (
            {"share_type": ShareType.CONDITIONAL, "approval": approval(NOW - 2 * H, NOW)},
            WithholdReason.APPROVAL_EXPIRED,
        ),
        ({"row_filter": "record.region.startsWith('3205')"}, WithholdReason.ROW_FILTER_FALSE),
        ({"row_filter": "record.no_such_field == 1"}, WithholdReason.ROW_FILTER_ERROR),
        ({"row_filter": "record.household_size"}, WithholdReason.ROW_FILTER_ERROR),  # non-bool
        ({"row_filter": "record.region / 2 == 1"}, WithholdReason.ROW_FILTER_ERROR),
    ],
)


def test_withhold_reasons(overrides: dict[str, Any], reason: WithholdReason) -> None:
    d = one(engine(entry(**overrides)))
    assert d.outcome is Outcome.WITHHOLD
    assert d.reason is reason
    assert d.view is None
    assert d.fields_delivered == () and d.fields_masked == ()
    assert d.record_key == "440106199001011234"


def test_no_approval_branch() -> None:
    # the model forbids it; built unchecked to reach the defensive branch
    good = entry(share_type=ShareType.CONDITIONAL, approval=approval(NOW - H, NOW + H))
    bad = good.model_copy(update={"approval": None})
    unchecked = SharingList.model_construct(version=3, published=NOW, note="", entries=[bad])
    eng = PolicyEngine(catalog=make_catalog([]), sharing_list=unchecked, master_key=KEY)
    assert one(eng).reason is WithholdReason.NO_APPROVAL


def test_order_of_checks() -> None:
    # none wins over an expired window; a window wins over the approval; approval over filter
    assert (
        one(engine(entry(share_type=ShareType.NONE, fields=[], valid_to=NOW - H))).reason
        is WithholdReason.SHARE_TYPE_NONE
    )
    e = entry(
        share_type=ShareType.CONDITIONAL,
        valid_from=NOW + H,
        approval=approval(NOW - 3 * H, NOW - 2 * H),
        row_filter="false",
    )
    assert one(engine(e)).reason is WithholdReason.NOT_YET_VALID
    e = entry(
        share_type=ShareType.CONDITIONAL,
        approval=approval(NOW - 3 * H, NOW - 2 * H),
        row_filter="false",
    )
    assert one(engine(e)).reason is WithholdReason.APPROVAL_EXPIRED


def test_window_boundaries() -> None:
    eng = engine(entry(valid_from=NOW, valid_to=NOW + H))
    assert one(eng).outcome is Outcome.DELIVER  # valid_from is inclusive
    assert one(eng, now=NOW + H).reason is WithholdReason.EXPIRED  # valid_to is exclusive
    assert one(eng, now=NOW - timedelta(milliseconds=1)).reason is WithholdReason.NOT_YET_VALID


def test_unconditional_entry_is_not_bound_by_an_approval() -> None:
    e = entry(approval=approval(NOW - 3 * H, NOW - 2 * H))
    assert one(engine(e)).outcome is Outcome.DELIVER


def test_catalogue_times_need_an_offset_and_now_must_be_aware() -> None:
    # the one list validation (catalog.sharing) refuses a naive time, as the loader does
    with pytest.raises(ConfigError) as info:
        engine(entry(valid_from=datetime(2026, 3, 1, 12, 0)))
    assert [(i.field, i.why) for i in info.value.issues] == [
        ("entries.0.valid_from", "needs a timezone offset (e.g. +08:00)")]
    # valid_from 2026-03-01 12:00 Shanghai == 04:00 UTC == NOW
    eng = engine(entry(valid_from=datetime(2026, 3, 1, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))))
    assert one(eng).outcome is Outcome.DELIVER
    assert one(eng, now=NOW - timedelta(seconds=1)).reason is WithholdReason.NOT_YET_VALID
    shanghai_now = NOW.astimezone(ZoneInfo("Asia/Shanghai"))
    assert one(eng, now=shanghai_now).outcome is Outcome.DELIVER
    with pytest.raises(ValueError, match="timezone"):
        decide(eng, now=datetime(2026, 3, 1, 12, 0))


# --- row filters ---------------------------------------------------------------------------


def test_cel_record_conversion() -> None:
    rec = make_record(changed_at=datetime(2026, 2, 28, 16, 30, 0, 250000, tzinfo=UTC))
    c = cel_record(rec)
    assert c["birth_date"] == "1990-01-01"
    assert c["changed_at"] == "2026-02-28T16:30:00.250Z"
    assert c["remark"] is None
    assert c["subsidy"] == 123456 and c["region"] == "440106"


@pytest.mark.parametrize(
    ("expr", "delivered"),
    [
        ("record.region.startsWith('4401')", True),
        ("record.subsidy > 100000 && record.sex == '1'", True),
        ("record.birth_date < '1980-01-01'", False),
        ("timestamp(record.changed_at) >= timestamp('2026-02-28T16:00:00Z')", True),
        ("record.remark == null", True),
        ("has(record.phone) && record.phone != null", True),
        ("record.household_size in [1, 2]", False),
    ],
)


def test_row_filter_expressions(expr: str, delivered: bool) -> None:
    d = one(engine(entry(row_filter=expr)))
    assert (d.outcome is Outcome.DELIVER) is delivered
    if not delivered:
        assert d.reason is WithholdReason.ROW_FILTER_FALSE


@pytest.mark.parametrize(
    ("expr", "fields"),
    [
        ("record.status == '1' && record.region.startsWith('4401')", ("status", "region")),
        ("has(record.x) || record . y > 2", ("x", "y")),
        ("record.a.b == 1 && record.a.c == 2", ("a",)),
        ("my_record.a == 1 && record.b", ("b",)),
        ("true", ()),
        ("record['a'] == 1", None),  # index: any key
        ("size(record) > 1", None),  # the whole map
        ("record.all(k, k != '')", None),  # a macro over the map
        ("[1].exists(record, record > 0)", None),  # a variable named record
        ("'record' == record.a", None),  # the word in a literal: conservative
        ("record.?a == 1", None),  # optional selection
        ("record.a // record", None),  # the word in a comment
    ],
)


def test_filter_fields_is_exact_or_gives_the_whole_record(
    expr: str, fields: tuple[str, ...] | None
) -> None:
    assert filter_fields(expr) == fields


_FILTERS = [
    "record.region.startsWith('4401')",
    "record.subsidy > 100000 && record.sex == '1'",
    "record.birth_date < '1980-01-01'",
    "has(record.phone) && record.phone != null",
    "has(record.nope)",
    "record.nope == 1",
    "record.remark.startsWith('x')",
    "record.household_size in [1, 2] || record.region == '440106'",
    "timestamp(record.changed_at) >= timestamp('2026-02-28T16:00:00Z')",
]


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(region=st.sampled_from(["440106", "320500", ""]),
       subsidy=st.integers(min_value=0, max_value=10**7),
       remark=st.none() | st.text(max_size=3),
       drop=st.sets(st.sampled_from(["phone", "remark", "sex"])))


def test_narrowed_record_gives_the_same_verdict_as_the_whole(
    region: str, subsidy: int, remark: str | None, drop: set[str]
) -> None:
    rec = make_record(region=region, subsidy=subsidy, remark=remark)
    for name in drop:
        rec.pop(name, None)
    for expr in _FILTERS:
        program = cel.compile(expr)
        fields = filter_fields(expr)
        assert fields is not None

        def verdict(ctx: dict[str, Any], program: Any = program) -> object:
            try:
                return program.execute(ctx)
            except Exception as exc:  # the engine withholds on any error: compare kinds
                return type(exc)

        assert verdict({"record": cel_record(rec, fields)}) == verdict(
            {"record": cel_record(rec)}), expr


def test_row_filter_error_on_a_null_field_never_raises() -> None:
    eng = engine(entry(row_filter="record.remark.startsWith('x')"))
    assert one(eng).reason is WithholdReason.ROW_FILTER_ERROR
    assert one(eng, record=make_record(remark="xyz")).outcome is Outcome.DELIVER


# --- who gets what -------------------------------------------------------------------------


def test_consumers_without_entries_get_nothing() -> None:
    eng = engine(
        entry(id="E1", consumer="health"),
        entry(id="E2", consumer="civil_affairs", provider="market"),
        entry(id="E3", consumer="tax", dataset=DS),
    )
    consumers = [d.consumer for d in decide(eng)]
    assert consumers == ["health", "tax"]  # civil_affairs only has an entry for another provider
    assert decide(eng, provider="tax") == []
    assert decide(eng, dataset="no_such_dataset") == []
    assert [d.consumer for d in decide(eng, provider="market")] == ["civil_affairs"]


def test_several_entries_for_one_consumer() -> None:
    eng = engine(
        entry(id="E1", fields=["citizen_id", "region"], row_filter="record.sex == '1'"),
        entry(id="E2", fields=["name"], masks={"name": mask(type="name")}),
        entry(id="E3", fields=["subsidy"], valid_to=NOW - H, valid_from=NOW - 2 * H),
    )
    ds = decide(eng)
    assert [(d.entry_id, d.outcome, d.reason) for d in ds] == [
        ("E1", Outcome.DELIVER, None),
        ("E2", Outcome.DELIVER, None),
        ("E3", Outcome.WITHHOLD, WithholdReason.EXPIRED),
    ]
    assert ds[0].view is not None and set(ds[0].view) - META == {"citizen_id", "region"}
    assert ds[1].view is not None and ds[1].view["name"] == "张**"
    assert ds[1].view["_entry_id"] == "E2"
    ds = decide(eng, record=make_record(sex="2"))
    assert [d.reason for d in ds] == [
        WithholdReason.ROW_FILTER_FALSE,
        None,
        WithholdReason.EXPIRED,
    ]
    assert [e.id for e in eng.entries_for(dataset=DS, provider=PROVIDER)] == ["E1", "E2", "E3"]


def test_hmac_in_views_differs_per_consumer() -> None:
    masks = {"citizen_id": mask(type="hmac")}
    eng = engine(
        entry(id="E1", consumer="health", masks=masks),
        entry(id="E2", consumer="tax", masks=masks),
    )
    a, b = decide(eng)
    assert a.view is not None and b.view is not None
    assert a.view["citizen_id"] != b.view["citizen_id"]
    again = decide(eng)[0].view
    assert again is not None and again["citizen_id"] == a.view["citizen_id"]


def test_decisions_are_reproducible() -> None:
    eng = engine(entry(masks={"citizen_id": mask(type="hmac")}, row_filter="record.sex == '1'"))
    assert decide(eng) == decide(eng)
    assert decide(eng) == decide(
        engine(entry(masks={"citizen_id": mask(type="hmac")}, row_filter="record.sex == '1'"))
    )


def test_list_version_property() -> None:
    assert engine(entry()).list_version == 3


# --- catalogue errors caught at engine build -----------------------------------------------


def test_bad_entries_raise_config_error_naming_file_and_field() -> None:
    with pytest.raises(ConfigError) as info:
        engine(
            entry(id="E1", row_filter="record.region >"),
            entry(id="E2", fields=["nope"]),
            entry(id="E3", fields=["region"], masks={"region": mask(type="name")}),
            entry(id="E4", dataset="no_such_dataset"),
        )
    where = {(i.file, i.field) for i in info.value.issues}
    assert where == {
        ("sharing/list.v3.yaml", "entries.0.row_filter"),
        ("sharing/list.v3.yaml", "entries.1.fields.0"),
        ("sharing/list.v3.yaml", "entries.2.masks.region"),
        ("sharing/list.v3.yaml", "entries.3.dataset"),
    }


# --- properties ----------------------------------------------------------------------------

CONSUMERS = ["health", "civil_affairs", "tax", "market"]
REGIONS = ["440106", "110105", "320583", "440305"]  # none is already generalised


def _fitting_masks(field: str) -> list[Mask]:
    candidates = [
        mask(type="keep", first=1, last=1),
        mask(type="keep", first=3, last=4),
        mask(type="name"),
        mask(type="hmac"),
        mask(type="truncate_date", to="year"),
        mask(type="truncate_date", to="month"),
        mask(type="generalise_region", to="city"),
        mask(type="generalise_region", to="province"),
        mask(type="drop"),
    ]
    return [m for m in candidates if mask_fits(m, FIELD_TYPE[field]) is None]


@st.composite
def entries_st(draw: st.DrawFn, n_max: int = 5) -> list[ListEntry]:
    out = []
    for i in range(draw(st.integers(1, n_max))):
        share = draw(st.sampled_from([t for t in ShareType if t is not ShareType.VERIFY]))
        fields = (
            []
            if share is ShareType.NONE
            else draw(st.lists(st.sampled_from(FIELD_NAMES), min_size=1, unique=True))
        )
        masks: dict[str, Mask] = {}
        for f in fields:
            if draw(st.booleans()):
                masks[f] = draw(st.sampled_from(_fitting_masks(f)))
        h0 = draw(st.integers(-48, 48))
        start = NOW + timedelta(hours=h0)
        h1 = draw(st.none() | st.integers(h0 + 1, 49))
        end = None if h1 is None else NOW + timedelta(hours=h1)
        appr = None
        if share is ShareType.CONDITIONAL or draw(st.booleans()):
            a0 = draw(st.integers(-48, 48))
            a1 = draw(st.integers(a0 + 1, 49))
            appr = approval(NOW + timedelta(hours=a0), NOW + timedelta(hours=a1))
        out.append(
            entry(
                id=f"E{i}",
                consumer=draw(st.sampled_from(CONSUMERS)),
                share_type=share,
                fields=fields,
                masks=masks,
                valid_from=start,
                valid_to=end,
                approval=appr,
                row_filter=draw(st.sampled_from([None, "true", "record.household_size > 2"])),
            )
        )
    return out


digits = st.text(alphabet="0123456789", min_size=18, max_size=18)
records_st = st.builds(
    make_record,
    citizen_id=digits,
    name=st.text(alphabet="张王李赵欧阳三丰四五", min_size=1, max_size=4),
    birth_date=st.dates(min_value=date(1900, 1, 1), max_value=date(2030, 1, 1)),
    region=st.sampled_from(REGIONS),
    changed_at=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
    ),
    subsidy=st.integers(0, 10**9),
    phone=st.none() | st.text(alphabet="0123456789", min_size=11, max_size=11),
    remark=st.none() | st.text(alphabet="abc备注", min_size=3, max_size=10),
    household_size=st.integers(1, 6),
    employer_code=st.none()
    | st.text(alphabet="0123456789ABCDEFGHJKLMNPQRTUWXY", min_size=18, max_size=18),
)

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(entries=entries_st(), records=st.lists(records_st, min_size=1, max_size=3))


def test_property_views_hold_only_allowed_fields_and_masked_values(
    entries: list[ListEntry], records: list[dict[str, Any]]
) -> None:
    eng = engine(*entries)
    for rec in records:
        ds = decide(eng, record=rec)
        assert [d.entry_id for d in ds] == [e.id for e in entries]
        for d, e in zip(ds, entries, strict=True):
            assert d.consumer == e.consumer
            if d.view is None:
                assert d.outcome is Outcome.WITHHOLD
                continue
            dropped = {f for f, m in e.masks.items() if m.type == "drop"}
            key_clear = "citizen_id" in e.fields and "citizen_id" not in e.masks
            assert (d.view["_record_key"] == "440106199001011234") is key_clear
            data = set(d.view) - META
            assert data <= set(e.fields) - dropped
            assert data == set(e.fields) - dropped
            for f in data:
                m = e.masks.get(f)
                if m is None:
                    assert d.view[f] == rec[f]
                    continue
                expected = apply_mask(
                    m, rec[f], element_type=FIELD_TYPE[f], consumer=e.consumer, master_key=KEY
                )
                assert d.view[f] == expected
                if rec[f] is not None:
                    assert d.view[f] != rec[f]  # never unmasked
                    assert isinstance(d.view[f], str)


@PROPS
@given(entries=entries_st(), rec=records_st, shift=st.integers(-72, 72))


def test_property_none_expired_unapproved_never_deliver(
    entries: list[ListEntry], rec: dict[str, Any], shift: int
) -> None:
    now = NOW + timedelta(hours=shift)
    for d, e in zip(decide(engine(*entries), record=rec, now=now), entries, strict=True):
        if d.outcome is not Outcome.DELIVER:
            continue
        assert e.share_type is not ShareType.NONE
        assert e.valid_from <= now
        assert e.valid_to is None or now < e.valid_to
        if e.share_type is ShareType.CONDITIONAL:
            assert e.approval is not None
            assert e.approval.valid_from <= now < e.approval.valid_to
