"""Synthetic records in an agency's own dialect, for the demo, benchmarks and fault tests.

The generator walks an agency mapping backwards: it draws a valid canonical value per data
element (real check digits, real region codes), then writes it the way that agency does (its
field names, code list, date format, money unit, region names), typed as its raw schema says.
Invalid records fail one element check on purpose (a wrong check digit, an unknown region).
Deterministic for a given ``random.Random`` seed. Pure: no I/O.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from shulian.catalog.elements import CREDIT_CHARSET
from shulian.catalog.models import (
    Catalog,
    DataElement,
    ElementType,
    FieldMapping,
    Mapping,
    MoneyUnit,
    RegionInput,
)
from shulian.catalog.specs import SPECS

SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True, slots=True)
class Generated:
    raw: dict[str, Any]  # the record in the agency's dialect, as its raw schema types it
    valid: bool  # False when one element check was broken on purpose
    broken_field: str | None = None


class DialectGenerator:
    """Records for one (agency, dataset) in that agency's dialect."""

    def __init__(self, *, catalog: Catalog, mapping: Mapping, raw_schema: dict[str, Any]) -> None:
        self._catalog = catalog
        self._mapping = mapping
        self._dataset = catalog.datasets[mapping.dataset]
        fields = record_fields(raw_schema)
        self._raw_types = {f["name"]: _base_type(f["type"]) for f in fields}
        self._raw_fields = fields
        districts = sorted(c for c in catalog.regions if not c.endswith("00"))
        self._districts = districts or sorted(catalog.regions)

    def generate(self, rng: random.Random, *, invalid_rate: float = 0.0) -> Generated:
        raw: dict[str, Any] = {}
        canonical: dict[str, Any] = {}
        for field in self._dataset.fields:
            fm = self._mapping.fields.get(field.name)
            if fm is None or fm.source is None:
                continue
            element = self._catalog.elements[field.element]
            if field.name in self._dataset.key and element.type is ElementType.TEXT:
                value: Any = _identifier(element, rng)  # a key is an id, not prose: unique
            else:
                value = self._canonical_value(element, rng)
            canonical[field.name] = value
            raw[fm.source] = self._dialect(value, element, fm, rng)
        broken: str | None = None
        if invalid_rate and rng.random() < invalid_rate:
            broken = self._break(raw, rng)
        for f in self._raw_fields:  # raw fields the mapping does not use still need a value
            if f["name"] not in raw and "default" not in f:
                raw[f["name"]] = 0 if self._raw_types[f["name"]] in ("int", "long") else ""
        for name, value in list(raw.items()):
            raw[name] = _as_raw_type(value, self._raw_types.get(name, "string"))
        return Generated(raw=raw, valid=broken is None, broken_field=broken)

    # --- canonical values ---------------------------------------------------------------

    def _canonical_value(self, element: DataElement, rng: random.Random) -> Any:
        return SPECS[element.type].sample(rng, element, self._districts)

    # --- the agency's dialect -------------------------------------------------------------

    def _dialect(self, value: Any, element: DataElement, fm: FieldMapping,
                 rng: random.Random) -> Any:
        if fm.codes:
            sources = sorted(k for k, v in fm.codes.items() if v == str(value))
            if sources:
                return rng.choice(sources)
        if isinstance(value, datetime) or (isinstance(value, date) and fm.date_formats):
            return _format_time(value, (fm.date_formats or ["%Y-%m-%d"])[0])
        if element.type is ElementType.MONEY_FEN and fm.unit is not None:
            return _money(int(value), fm.unit)
        if element.type is ElementType.REGION_CODE and fm.region is RegionInput.NAME:
            return self._catalog.regions.get(str(value), str(value))
        if isinstance(value, date):
            return value.isoformat()
        return value

    def _break(self, raw: dict[str, Any], rng: random.Random) -> str | None:
        """Break one element check: a citizen ID or credit code check digit, or a region."""
        for field in self._dataset.fields:
            fm = self._mapping.fields.get(field.name)
            if fm is None or fm.source is None or fm.source not in raw:
                continue
            et = self._catalog.elements[field.element].type
            current = str(raw[fm.source])
            if et in (ElementType.CITIZEN_ID, ElementType.CREDIT_CODE) and len(current) == 18:
                charset = "0123456789X" if et is ElementType.CITIZEN_ID else CREDIT_CHARSET
                wrong = rng.choice([c for c in charset if c != current[-1]])
                raw[fm.source] = current[:-1] + wrong
                return field.name
        for field in self._dataset.fields:
            fm = self._mapping.fields.get(field.name)
            et = self._catalog.elements[field.element].type
            if fm is not None and fm.source in raw and et is ElementType.REGION_CODE:
                raw[fm.source] = "999999"
                return field.name
        return None


def _identifier(element: DataElement, rng: random.Random) -> str:
    """A business number such as a certificate or serial number: a letter and digits."""
    digits = min(14, (element.max_length or 20) - 1)
    return f"{element.id[0].upper()}{rng.randrange(10 ** digits):0{digits}d}"


_JSON_TO_AVRO = {"string": "string", "integer": "long", "number": "double", "boolean": "boolean",
                 "null": "null"}


def record_fields(raw_schema: dict[str, Any]) -> list[dict[str, Any]]:
    """An Avro record's fields; for a JSON Schema object, its properties as Avro-typed fields
    (a property outside ``required`` may be absent: it gets a null default)."""
    if "fields" in raw_schema:
        return list(raw_schema["fields"])
    required = set(raw_schema.get("required") or [])
    out: list[dict[str, Any]] = []
    for name, prop in (raw_schema.get("properties") or {}).items():
        types = prop.get("type", "string") if isinstance(prop, dict) else "string"
        names = [types] if isinstance(types, str) else list(types)
        avro = [_JSON_TO_AVRO.get(t, "string") for t in names]
        field: dict[str, Any] = {"name": name, "type": avro[0] if len(avro) == 1 else avro}
        if name not in required:
            field["default"] = None
        out.append(field)
    return out


def _base_type(avro_type: Any) -> str:
    if isinstance(avro_type, list):
        non_null = [t for t in avro_type if t != "null"]
        return _base_type(non_null[0]) if non_null else "null"
    if isinstance(avro_type, dict):
        return str(avro_type.get("type", "string"))
    return str(avro_type)


def _as_raw_type(value: Any, raw_type: str) -> Any:
    if raw_type in ("int", "long"):
        if isinstance(value, int):
            return value
        try:
            return int(Decimal(str(value)))
        except ArithmeticError:
            return 0
    if raw_type in ("float", "double"):
        return float(value)
    if raw_type == "boolean":
        return bool(value)
    return str(value)


def _format_time(value: date, fmt: str) -> Any:
    if isinstance(value, datetime):
        moment = value.astimezone(SHANGHAI)
    else:
        moment = datetime(value.year, value.month, value.day, tzinfo=SHANGHAI)
    if fmt == "epoch_millis":
        return int(moment.timestamp() * 1000)
    if fmt == "epoch_seconds":
        return int(moment.timestamp())
    return moment.strftime(fmt)


def _money(fen: int, unit: MoneyUnit) -> str | int:
    if unit is MoneyUnit.FEN:
        return fen
    if unit is MoneyUnit.JIAO:
        return str(Decimal(fen) / 10)
    if unit is MoneyUnit.YUAN:
        return str((Decimal(fen) / 100).quantize(Decimal("0.01")))
    return str((Decimal(fen) / 1_000_000).normalize())


def generators_for(
    catalog: Catalog, raw_schemas: dict[tuple[str, str], dict[str, Any]]
) -> dict[tuple[str, str], DialectGenerator]:
    """One generator per (agency, dataset) mapping of the catalogue."""
    return {
        pair: DialectGenerator(catalog=catalog, mapping=m, raw_schema=raw_schemas[pair])
        for pair, m in sorted(catalog.mappings.items())
    }
