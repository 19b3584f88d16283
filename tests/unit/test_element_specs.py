"""One spec per element type: the table is complete, and each row holds together end to end
(its sample passes its check, the canonical value encodes with its Avro type, every mask that
fits applies)."""

from __future__ import annotations

import io
import random
from datetime import UTC, datetime

import fastavro
import pytest
from pydantic import TypeAdapter

from shulian.catalog.models import DataElement, ElementType, KeepMask, Mask
from shulian.catalog.specs import MASK_TYPES, SPECS, mask_fits, normaliser
from shulian.clock import FixedClock
from shulian.logic.masking import masker
from shulian.result import Rejected

CLOCK = FixedClock(datetime(2026, 6, 1, tzinfo=UTC))
REGIONS = {"440106": "天河区", "440100": "广州市", "440000": "广东省"}
MASK_OF: dict[str, dict[str, object]] = {
    "keep": {"type": "keep", "first": 1},
    "name": {"type": "name"},
    "hmac": {"type": "hmac"},
    "truncate_date": {"type": "truncate_date", "to": "month"},
    "generalise_region": {"type": "generalise_region", "to": "city"},
    "drop": {"type": "drop"},
}


def element(t: ElementType) -> DataElement:
    codes = {"01": "出生登记", "02": "迁入"} if t is ElementType.CODE else None
    return DataElement.model_validate({"id": f"sample_{t.value}", "name": t.value,
                                       "type": t, "codes": codes})


def test_every_element_type_has_a_spec() -> None:
    """A new ElementType without a row (check, Avro type, masks, sample) fails here."""
    assert set(SPECS) == set(ElementType)


def test_the_spec_knows_every_mask_type() -> None:
    assert set(MASK_OF) == MASK_TYPES


@pytest.mark.parametrize("t", list(ElementType))
def test_a_row_holds_together(t: ElementType) -> None:
    spec = SPECS[t]
    e = element(t)
    check = normaliser(e, regions=REGIONS, retired_regions={}, clock=CLOCK)
    rng = random.Random(7)
    for _ in range(50):
        value = check(spec.sample(rng, e, ["440106"]))
        assert not isinstance(value, Rejected), (t, value)
        schema = fastavro.parse_schema({"type": "record", "name": "R",
                                        "fields": [{"name": "v", "type": spec.avro}]})
        fastavro.schemaless_writer(io.BytesIO(), schema, {"v": value})
        assert isinstance(value, str) == spec.is_string
        for mask_type in spec.masks:
            mask: Mask = TypeAdapter(Mask).validate_python(MASK_OF[mask_type])
            assert mask_fits(mask, t) is None
            masked = masker(mask, consumer="c", master_key=b"k" * 32)(value)
            assert masked is None or isinstance(masked, str), (t, mask_type)


def test_keep_fits_exactly_the_string_types_sex_included() -> None:
    keep = KeepMask(type="keep", first=1)
    fits = {t for t in ElementType if mask_fits(keep, t) is None}
    assert fits == {t for t, s in SPECS.items() if s.avro == "string"}
    assert ElementType.SEX in fits
    assert masker(keep, consumer="c", master_key=b"k" * 32)("1") == "*"
