"""Load and cross-check the catalogue (files described in docs/CHAIN.md).

:func:`load_catalog` returns a :class:`~shulian.catalog.models.Catalog` or raises
:class:`~shulian.errors.ConfigError` with *every* issue found; :func:`check_catalog` returns
the issues. Each issue names the file (``catalog/...`` or ``schemas/...``), the field (the
pydantic error location joined with ``.``, e.g. ``entries.3.masks.birth_date``) and why.

Sharing-list entries are cross-checked by one function, :func:`check_sharing_list`, used both
for the list files on disk and for a list version arriving as text on the control topic
(:func:`load_sharing_list_text`).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import fastavro
import jsonschema
import jsonschema.validators

from shulian.catalog.avro import canonical_schema
from shulian.catalog.files import WHOLE_FILE, Ctx, first_line, read_model
from shulian.catalog.keys import Keyring
from shulian.catalog.models import (
    Agency,
    AgencyCatalog,
    AgencyId,
    Catalog,
    DataElement,
    Dataset,
    DatasetId,
    ElementCatalog,
    ElementId,
    ElementType,
)
from shulian.catalog.models import (
    Mapping as AgencyMapping,
)
from shulian.catalog.sharing import (
    check_approvals,
    check_sharing_list,
    load_keys,
    load_lists,
    load_sharing_list_text,
)
from shulian.catalog.specs import is_string_type, normaliser
from shulian.clock import SYSTEM_CLOCK
from shulian.errors import ConfigError, ConfigIssue
from shulian.result import Rejected

__all__ = [
    "build_canonical_schemas",
    "check_catalog",
    "check_sharing_list",
    "load_catalog",
    "load_sharing_list_text",
]

_MAPPING_FILE = re.compile(r"^(?P<dataset>[a-z][a-z0-9_]*)\.v(?P<version>[1-9][0-9]*)\.yaml$")
_SAMPLE_TIME = datetime(2001, 2, 3, 4, 5, 6)


# --- code tables ---------------------------------------------------------------------------


def _read_csv(ctx: Ctx, path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    name = ctx.name(path)
    if not path.is_file():
        ctx.issue(name, WHOLE_FILE, "file not found")
        return []
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != columns:
            ctx.issue(name, "header", f"expected columns {','.join(columns)}")
            return []
        return [(i + 2, {k: (v or "").strip() for k, v in row.items()}) for i, row in
                enumerate(reader)]


def _load_regions(ctx: Ctx) -> tuple[dict[str, str], dict[str, str]]:
    path = ctx.root / "codes" / "gb2260.csv"
    regions: dict[str, str] = {}
    for line, row in _read_csv(ctx, path, ("code", "name")):
        code, name = row["code"], row["name"]
        if not re.fullmatch(r"\d{6}", code) or not name:
            ctx.issue(ctx.name(path), f"line {line}", "needs a 6-digit code and a name")
        elif code in regions:
            ctx.issue(ctx.name(path), f"line {line}", f"duplicate code {code}")
        else:
            regions[code] = name
    path = ctx.root / "codes" / "gb2260_retired.csv"
    retired: dict[str, str] = {}
    for line, row in _read_csv(ctx, path, ("retired_code", "retired_name", "current_code")):
        old, new = row["retired_code"], row["current_code"]
        if not re.fullmatch(r"\d{6}", old) or old in regions:
            ctx.issue(ctx.name(path), f"line {line}.retired_code",
                      "must be a 6-digit code not in gb2260.csv")
        elif new not in regions:
            ctx.issue(ctx.name(path), f"line {line}.current_code", "not in gb2260.csv")
        else:
            retired[old] = new
    return regions, retired


# --- elements, agencies, datasets ----------------------------------------------------------


def _load_elements(ctx: Ctx) -> dict[ElementId, DataElement]:
    path = ctx.root / "elements.yaml"
    file = ctx.name(path)
    model = read_model(ctx, path, ElementCatalog)
    elements: dict[ElementId, DataElement] = {}
    for i, el in enumerate(model.elements if model else []):
        if el.id in elements:
            ctx.issue(file, f"elements.{i}.id", f"duplicate element id '{el.id}'")
        try:
            ZoneInfo(el.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            ctx.issue(file, f"elements.{i}.timezone", "unknown timezone")
            continue
        elements[el.id] = el
    return elements


def _load_agencies(ctx: Ctx, regions: Mapping[str, str]) -> dict[AgencyId, Agency]:
    path = ctx.root / "agencies.yaml"
    file = ctx.name(path)
    model = read_model(ctx, path, AgencyCatalog)
    agencies: dict[AgencyId, Agency] = {}
    for i, ag in enumerate(model.agencies if model else []):
        if ag.id in agencies:
            ctx.issue(file, f"agencies.{i}.id", f"duplicate agency id '{ag.id}'")
        if regions and ag.region_code not in regions:
            ctx.issue(file, f"agencies.{i}.region_code", "not a current GB/T 2260 code")
        agencies[ag.id] = ag
    return agencies


def _load_datasets(
    ctx: Ctx, elements: Mapping[ElementId, DataElement]
) -> dict[DatasetId, Dataset]:
    datasets: dict[DatasetId, Dataset] = {}
    for path in sorted((ctx.root / "datasets").glob("*.yaml")):
        file = ctx.name(path)
        ds = read_model(ctx, path, Dataset)
        if ds is None:
            continue
        ok = True
        if ds.id != path.stem:
            ctx.issue(file, "id", f"dataset id '{ds.id}' differs from the file name")
            ok = False
        seen: set[str] = set()
        for i, f in enumerate(ds.fields):
            if f.name in seen:
                ctx.issue(file, f"fields.{i}.name", f"duplicate field '{f.name}'")
                ok = False
            seen.add(f.name)
            if f.element not in elements:
                ctx.issue(file, f"fields.{i}.element", f"unknown element '{f.element}'")
                ok = False
        for i, k in enumerate(ds.key):
            kf = ds.field(k)
            if kf is None:
                ctx.issue(file, f"key.{i}", f"key names unknown field '{k}'")
                ok = False
            elif not kf.required:
                ctx.issue(file, f"key.{i}", f"key field '{k}' must be required")
                ok = False
        if ok:
            datasets[ds.id] = ds
    return datasets


def _check_canonical_files(
    ctx: Ctx, datasets: Mapping[DatasetId, Dataset], elements: Mapping[ElementId, DataElement]
) -> None:
    for ds in datasets.values():
        path = ctx.schemas_dir / "canonical" / f"{ds.id}.avsc"
        file = ctx.name(path)
        try:
            committed = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            committed = None
        if committed != canonical_schema(ds, elements):
            ctx.issue(file, WHOLE_FILE, f"missing or out of date with datasets/{ds.id}.yaml; "
                      "run `shulian catalog schemas --write`")


# --- mappings ------------------------------------------------------------------------------


def _raw_fields(ctx: Ctx, mapping: AgencyMapping, file: str) -> set[str] | None:
    path = (ctx.schemas_dir / mapping.raw_schema).resolve()
    if not path.is_relative_to(ctx.schemas_dir.resolve()) or not path.is_file():
        ctx.issue(file, "raw_schema", f"no schema file '{mapping.raw_schema}' under schemas/")
        return None
    raw_file = ctx.name(ctx.schemas_dir / mapping.raw_schema)
    if mapping.raw_schema_type == "JSON":
        return _json_raw_fields(ctx, raw_file, path)
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
        fastavro.parse_schema(schema, _write_hint=False)
    except Exception as exc:  # fastavro raises assorted types for a bad schema
        ctx.issue(raw_file, WHOLE_FILE, f"not a valid Avro schema: {first_line(exc)}")
        return None
    if not isinstance(schema, dict) or schema.get("type") != "record":
        ctx.issue(raw_file, "type", "a raw schema is an Avro record")
        return None
    if schema.get("namespace") != f"gov.{mapping.agency}.raw":
        ctx.issue(raw_file, "namespace", f"expected 'gov.{mapping.agency}.raw'")
    return {f["name"] for f in schema.get("fields", [])}


def _json_raw_fields(ctx: Ctx, raw_file: str, path: Path) -> set[str] | None:
    """The properties of a JSON Schema raw schema (an object schema, valid for its draft)."""
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
        cls.check_schema(schema)
    except Exception as exc:  # JSON errors and jsonschema's SchemaError
        ctx.issue(raw_file, WHOLE_FILE, f"not a valid JSON Schema: {first_line(exc)}")
        return None
    if not isinstance(schema, dict) or schema.get("type") != "object":
        ctx.issue(raw_file, "type", "a raw JSON Schema is an object schema (type: object)")
        return None
    properties = schema.get("properties")
    if not isinstance(properties, dict) or not properties:
        ctx.issue(raw_file, "properties", "a raw JSON Schema names its fields in properties")
        return None
    return set(properties)


def _check_date_format(fmt: str) -> str | None:
    if fmt in ("epoch_millis", "epoch_seconds"):
        return None
    if "%" not in fmt:
        return "a date format is a strptime pattern, 'epoch_millis' or 'epoch_seconds'"
    try:
        datetime.strptime(_SAMPLE_TIME.strftime(fmt), fmt)
    except ValueError as exc:
        return f"strptime pattern does not round-trip: {first_line(exc)}"
    return None


def _check_mapping(
    ctx: Ctx,
    mapping: AgencyMapping,
    file: str,
    dataset: Dataset,
    elements: Mapping[ElementId, DataElement],
    regions: Mapping[str, str],
    retired: Mapping[str, str],
) -> None:
    raw_fields = _raw_fields(ctx, mapping, file)
    for name, fm in mapping.fields.items():
        where = f"fields.{name}"
        df = dataset.field(name)
        if df is None:
            ctx.issue(file, where, f"dataset '{dataset.id}' has no field '{name}'")
            continue
        element = elements[df.element]
        # the catalogue's own code values, checked at load time: not a decision on a record
        check = normaliser(element, regions=regions, retired_regions=retired,
                           clock=SYSTEM_CLOCK)
        t = element.type
        if fm.source is not None and raw_fields is not None and fm.source not in raw_fields:
            ctx.issue(file, f"{where}.from", f"raw schema {mapping.raw_schema} has no field "
                      f"'{fm.source}'")
        if fm.codes:
            if not is_string_type(t):
                ctx.issue(file, f"{where}.codes", f"a code map does not fit element type {t}")
            for code, value in fm.codes.items():
                r = check(value)
                if isinstance(r, Rejected):
                    ctx.issue(file, f"{where}.codes.{code}",
                              f"maps to a value element '{element.id}' rejects ({r.check})")
        if fm.date_formats is not None:
            if t not in (ElementType.DATE, ElementType.TIMESTAMP):
                ctx.issue(file, f"{where}.date_formats",
                          f"date formats do not fit element type {t}")
            for i, fmt in enumerate(fm.date_formats):
                why = _check_date_format(fmt)
                if why:
                    ctx.issue(file, f"{where}.date_formats.{i}", why)
        if fm.unit is not None and t is not ElementType.MONEY_FEN:
            ctx.issue(file, f"{where}.unit", f"a money unit does not fit element type {t}")
        if fm.region is not None and t is not ElementType.REGION_CODE:
            ctx.issue(file, f"{where}.region", f"a region option does not fit element type {t}")
        if fm.default is not None:
            r = check(fm.default)
            if isinstance(r, Rejected):
                ctx.issue(file, f"{where}.default",
                          f"default is not a valid canonical '{element.id}' ({r.check})")
    for df in dataset.fields:
        if df.required and df.name not in mapping.fields:
            ctx.issue(file, "fields", f"required canonical field '{df.name}' is not mapped")


def _load_mappings(
    ctx: Ctx,
    agencies: Mapping[AgencyId, Agency],
    datasets: Mapping[DatasetId, Dataset],
    elements: Mapping[ElementId, DataElement],
    regions: Mapping[str, str],
    retired: Mapping[str, str],
) -> dict[tuple[AgencyId, DatasetId], AgencyMapping]:
    newest: dict[tuple[AgencyId, DatasetId], AgencyMapping] = {}
    for path in sorted((ctx.root / "mappings").glob("*/*.yaml")):
        file = ctx.name(path)
        named = _MAPPING_FILE.match(path.name)
        if named is None:
            ctx.issue(file, WHOLE_FILE, "a mapping file is named <dataset>.v<N>.yaml")
            continue
        m = read_model(ctx, path, AgencyMapping)
        if m is None:
            continue
        ok = True
        for attr, expected in (("agency", path.parent.name), ("dataset", named["dataset"]),
                               ("version", int(named["version"]))):
            if getattr(m, attr) != expected:
                ctx.issue(file, attr, f"differs from the file path ({expected})")
                ok = False
        if m.agency not in agencies:
            ctx.issue(file, "agency", f"unknown agency '{m.agency}'")
            ok = False
        dataset = datasets.get(m.dataset)
        if dataset is None:
            ctx.issue(file, "dataset", f"unknown dataset '{m.dataset}'")
            continue
        before = len(ctx.issues)
        _check_mapping(ctx, m, file, dataset, elements, regions, retired)
        if ok and len(ctx.issues) == before:
            key = (m.agency, m.dataset)
            if key not in newest or newest[key].version < m.version:
                newest[key] = m
    return newest


# --- the whole catalogue -------------------------------------------------------------------


def _load(root: Path, schemas_dir: Path) -> tuple[Catalog | None, list[ConfigIssue]]:
    ctx = Ctx(root=root, schemas_dir=schemas_dir)
    regions, retired = _load_regions(ctx)
    elements = _load_elements(ctx)
    agencies = _load_agencies(ctx, regions)
    datasets = _load_datasets(ctx, elements)
    _check_canonical_files(ctx, datasets, elements)
    mappings = _load_mappings(ctx, agencies, datasets, elements, regions, retired)
    lists = load_lists(ctx, elements=elements, agencies=agencies, datasets=datasets,
                        mappings=mappings)
    keys = load_keys(ctx, agencies)
    check_approvals(ctx, lists, Keyring(keys))
    if ctx.issues:
        return None, ctx.issues
    catalog = Catalog(elements=elements, agencies=agencies, datasets=datasets, mappings=mappings,
                      sharing_lists=lists, regions=regions, retired_regions=retired, keys=keys)
    return catalog, []


def check_catalog(root: Path, *, schemas_dir: Path) -> list[ConfigIssue]:
    """Every issue in the catalogue under ``root`` (empty when clean)."""
    return _load(root, schemas_dir)[1]


def load_catalog(root: Path, *, schemas_dir: Path) -> Catalog:
    """The checked catalogue; raises :class:`ConfigError` listing every issue."""
    catalog, issues = _load(root, schemas_dir)
    if catalog is None:
        raise ConfigError(issues)
    return catalog


def build_canonical_schemas(root: Path, *, schemas_dir: Path) -> dict[DatasetId, dict[str, Any]]:
    """Canonical schemas generated from elements and datasets alone (for ``catalog schemas``)."""
    ctx = Ctx(root=root, schemas_dir=schemas_dir)
    elements = _load_elements(ctx)
    datasets = _load_datasets(ctx, elements)
    if ctx.issues:
        raise ConfigError(ctx.issues)
    return {d.id: canonical_schema(d, elements) for d in datasets.values()}
