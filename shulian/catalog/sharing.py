"""The sharing-responsibility list (共享责任清单): cross-checks of one list version, used both for
the list files on disk and for a version arriving as text on the control topic."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from typing import Any

import cel
import yaml

from shulian.catalog.approval import ListLedger, ListRefused, verify_version
from shulian.catalog.files import WHOLE_FILE, Ctx, first_line, read_model, validate_into
from shulian.catalog.keys import CHAIN, GOVERNANCE, Keyring, parse_public_key
from shulian.catalog.models import (
    Agency,
    AgencyId,
    Catalog,
    ClaimHow,
    DataElement,
    Dataset,
    DatasetId,
    ElementId,
    KeyCatalog,
    PublicKey,
    SharingList,
    VerifySpec,
)
from shulian.catalog.models import (
    Mapping as AgencyMapping,
)
from shulian.catalog.specs import SPECS, mask_fits
from shulian.errors import ConfigError, ConfigIssue

_LIST_FILE = re.compile(r"^list\.v(?P<version>[1-9][0-9]*)\.yaml$")


def check_sharing_list(
    sharing_list: SharingList,
    *,
    source: str,
    elements: Mapping[ElementId, DataElement],
    agencies: Mapping[AgencyId, Agency],
    datasets: Mapping[DatasetId, Dataset],
    mappings: Mapping[tuple[AgencyId, DatasetId], AgencyMapping],
) -> list[ConfigIssue]:
    """Cross-references of one list version: datasets, agencies, fields, masks, CEL, dates."""
    issues: list[ConfigIssue] = []

    def issue(where: str, why: str) -> None:
        issues.append(ConfigIssue(source, where, why))

    if sharing_list.published.tzinfo is None:
        issue("published", "needs a timezone offset (e.g. +08:00)")
    seen: set[str] = set()
    verify_keys: dict[str, list[str]] = {}
    for i, e in enumerate(sharing_list.entries):
        at = f"entries.{i}"
        if e.id in seen:
            issue(f"{at}.id", f"duplicate entry id '{e.id}'")
        seen.add(e.id)
        if e.provider not in agencies:
            issue(f"{at}.provider", f"unknown agency '{e.provider}'")
        elif e.dataset in datasets and (e.provider, e.dataset) not in mappings:
            issue(f"{at}.provider", f"agency '{e.provider}' publishes no '{e.dataset}' mapping")
        if e.consumer not in agencies:
            issue(f"{at}.consumer", f"unknown agency '{e.consumer}'")
        for name, when in (("valid_from", e.valid_from), ("valid_to", e.valid_to)):
            if when is not None and when.tzinfo is None:
                issue(f"{at}.{name}", "needs a timezone offset (e.g. +08:00)")
        if e.valid_to is not None and e.valid_to <= e.valid_from:
            issue(f"{at}.valid_to", "must be after valid_from")
        if e.approval is not None and e.approval.valid_to <= e.approval.valid_from:
            issue(f"{at}.approval.valid_to", "must be after approval.valid_from")
        if e.row_filter is not None:
            try:
                cel.compile(e.row_filter)
            except Exception as exc:  # cel raises ValueError; be safe with its Rust core
                issue(f"{at}.row_filter", f"not a valid CEL expression: {first_line(exc)}")
        dataset = datasets.get(e.dataset)
        if dataset is None:
            issue(f"{at}.dataset", f"unknown dataset '{e.dataset}'")
            continue
        for j, name in enumerate(e.fields):
            if dataset.field(name) is None:
                issue(f"{at}.fields.{j}", f"dataset '{dataset.id}' has no field '{name}'")
        for name, mask in e.masks.items():
            df = dataset.field(name)
            if df is None or df.element not in elements:
                continue
            why = mask_fits(mask, elements[df.element].type)
            if why:
                issue(f"{at}.masks.{name}", why)
        if e.verify is not None:
            key = check_verify(e.verify, dataset, elements, functools.partial(_at, issue, at))
            first = verify_keys.setdefault(e.dataset, key)
            if key != first:
                issue(f"{at}.verify.key", f"verify entries of '{e.dataset}' share one lookup key "
                      f"({', '.join(first)}): its store holds one record per key")
    return issues


def _at(issue: Callable[[str, str], None], at: str, where: str, why: str) -> None:
    issue(f"{at}.{where}", why)


RANGE_TYPES = frozenset(t for t, spec in SPECS.items() if spec.ordered)
"""Element types a ``range`` claim compares (dates, times, money, integers)."""


def check_verify(spec: VerifySpec, dataset: Dataset, elements: Mapping[ElementId, DataElement],
                 issue: Callable[[str, str], None]) -> list[str]:
    """A verify entry's key and claims against its dataset; returns the lookup key."""
    key = list(spec.key) or list(dataset.key)
    for j, name in enumerate(spec.key):
        if dataset.field(name) is None:
            issue(f"verify.key.{j}", f"dataset '{dataset.id}' has no field '{name}'")
    for name, hows in spec.claims.items():
        df = dataset.field(name)
        if df is None:
            issue(f"verify.claims.{name}", f"dataset '{dataset.id}' has no field '{name}'")
            continue
        if not hows:
            issue(f"verify.claims.{name}", "name at least one of equals, normalised, range, "
                  "exists")
        element = elements.get(df.element)
        if ClaimHow.RANGE in hows and element is not None and element.type not in RANGE_TYPES:
            issue(f"verify.claims.{name}", f"a range claim needs a date, timestamp, money or "
                  f"integer element; '{df.element}' is {element.type.value}")
    return key


def load_lists(ctx: Ctx, **refs: Any) -> dict[int, SharingList]:
    lists: dict[int, SharingList] = {}
    for path in sorted((ctx.root / "sharing").glob("*.yaml")):
        file = ctx.name(path)
        named = _LIST_FILE.match(path.name)
        if named is None:
            ctx.issue(file, WHOLE_FILE, "a list file is named list.v<N>.yaml")
            continue
        sl = read_model(ctx, path, SharingList)
        if sl is None:
            continue
        if sl.version != int(named["version"]):
            ctx.issue(file, "version", f"differs from the file name ({named['version']})")
            continue
        found = check_sharing_list(sl, source=file, **refs)
        ctx.issues.extend(found)
        if not found:
            lists[sl.version] = sl
    if not lists and not any(i.file.startswith(f"{ctx.root.name}/sharing") for i in ctx.issues):
        ctx.issue(f"{ctx.root.name}/sharing", WHOLE_FILE, "no list.v<N>.yaml found")
    return lists


def load_keys(ctx: Ctx, agencies: Mapping[AgencyId, Agency]) -> dict[str, PublicKey]:
    """``keys.yaml``: the public keys, each checked (owner, key bytes, validity)."""
    path = ctx.root / "keys.yaml"
    file = ctx.name(path)
    model = read_model(ctx, path, KeyCatalog)
    keys: dict[str, PublicKey] = {}
    for i, k in enumerate(model.keys if model else []):
        at = f"keys.{i}"
        bad = len(ctx.issues)
        if k.id in keys:
            ctx.issue(file, f"{at}.id", f"duplicate key id '{k.id}'")
        if k.owner not in (GOVERNANCE, CHAIN) and k.owner not in agencies:
            ctx.issue(file, f"{at}.owner", f"'{k.owner}' is not 'governance', 'chain' or an "
                      "agency id")
        if parse_public_key(k.public_key) is None:
            ctx.issue(file, f"{at}.public_key", "not base64 of a 32-byte Ed25519 public key")
        times = [("valid_from", k.valid_from), ("valid_to", k.valid_to),
                 ("revoked.at", k.revoked.at if k.revoked else None)]
        for name, when in times:
            if when is not None and when.tzinfo is None:
                ctx.issue(file, f"{at}.{name}", "needs a timezone offset (e.g. +08:00)")
        if len(ctx.issues) == bad and k.valid_to is not None and k.valid_to <= k.valid_from:
            ctx.issue(file, f"{at}.valid_to", "must be after valid_from")
        if len(ctx.issues) == bad:
            keys[k.id] = k
    return keys


def check_approvals(ctx: Ctx, lists: dict[int, SharingList], keys: Keyring) -> None:
    """Every list version on disk must be signed and chained to the one before it (the oldest
    on disk is taken as the start: older versions may have been archived). Refused versions
    are reported and dropped."""
    ledger: ListLedger | None = None
    for version in sorted(lists):
        sl = lists[version]
        file = f"{ctx.root.name}/sharing/list.v{version}.yaml"
        if ledger is None:
            why = verify_version(sl, keys, predecessor=sl.supersedes)
            if why and sl.version != 1 and sl.supersedes is None:
                why.append("names no predecessor (only version 1 may)")
            if not why:
                ledger = ListLedger.starting_at(keys, [sl])
        else:
            verdict = ledger.offer(sl, now=None)
            why = list(verdict.reasons) if isinstance(verdict, ListRefused) else []
        for reason in why:
            ctx.issue(file, "signatures", reason)
        if why:
            del lists[version]


def load_sharing_list_text(text: str, *, source: str, catalog: Catalog) -> SharingList:
    """A list version from YAML or JSON text (e.g. from the control topic), fully checked."""
    issues: list[ConfigIssue] = []
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue(source, WHOLE_FILE, f"not valid YAML/JSON: "
                                       f"{first_line(exc)}")]) from exc
    sl = validate_into(issues, SharingList, data, source)
    if sl is None:
        raise ConfigError(issues)
    require_valid_list(sl, catalog=catalog, source=source)
    return sl


def require_valid_list(sharing_list: SharingList, *, catalog: Catalog, source: str) -> None:
    """The one validation of a list version against a catalogue (whoever holds the version:
    the loader, the control topic, a policy engine): ConfigError with every issue."""
    issues = check_sharing_list(
        sharing_list, source=source, elements=catalog.elements, agencies=catalog.agencies,
        datasets=catalog.datasets, mappings=catalog.mappings,
    )
    if issues:
        raise ConfigError(issues)
