"""``replay decisions`` as a service: re-decide a window's canonical records with the list
version and time the audit names, and compare with the audit and the delivered views.

Called by ``shulian replay decisions``, the tests and a future console alike; the comparison
itself is the pure :mod:`shulian.audit.diff`. Kafka is imported inside the functions.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shulian.audit.check import audit_entries, ts_ms
from shulian.audit.diff import Mismatch, compare_decisions, compare_views
from shulian.audit.progress import reading
from shulian.audit.window import Window
from shulian.catalog.models import Catalog, SharingList
from shulian.chain.messages import InMessage, header_str
from shulian.chain.topology import Topology, plan_topics
from shulian.logic.audit import record_digest
from shulian.settings import Settings

__all__ = ["DecisionsResult", "list_versions", "load_catalog", "master_key_of",
           "run_replay_decisions"]


def load_catalog(settings: Settings) -> Catalog:
    """The catalogue the settings name (``SHULIAN_CATALOG_DIR``, ``SHULIAN_SCHEMAS_DIR``)."""
    from shulian.catalog.load import load_catalog as load

    return load(settings.catalog_dir, schemas_dir=settings.schemas_dir)


def master_key_of(settings: Settings) -> bytes | None:
    """The chain's HMAC master key (``SHULIAN_HMAC_MASTER_KEY``), None when unset."""
    k = settings.hmac_master_key
    return None if k is None else k.get_secret_value().encode("utf-8")


def list_versions(settings: Settings, catalog: Catalog,
                  topology: Topology) -> dict[int, SharingList]:
    """The catalogue's list versions plus those published to the control topic that the worker
    accepted (signed, chained to the version before: :func:`shulian.catalog.describe.history`);
    a refused version never decided anything, so it is never replayed."""
    from shulian.catalog.approval import ListAccepted
    from shulian.catalog.describe import history
    from shulian.io.control import published_versions

    items, _ = history(catalog, published_versions(settings, catalog, topology.control),
                       now=None)
    return {i.sharing_list.version: i.sharing_list for i in items
            if isinstance(i.verdict, ListAccepted) and i.sharing_list is not None}


def _decode(schemas: Any, value: bytes | None) -> dict[str, Any] | None:
    # imported here: rederive brings the enforce stage, which `shulian --help` need not load
    from shulian.audit.rederive import decode_value

    return decode_value(schemas, value)


@dataclass
class DecisionsResult:
    records: int = 0
    emissions: int = 0
    decisions: int = 0
    views_compared: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)


def run_replay_decisions(settings: Settings, *, catalog: Catalog, topology: Topology,
                         window: Window, datasets: Sequence[str],
                         master_key: bytes | None) -> DecisionsResult:
    """Re-decide every canonical record of the window with the audited list version and ``ts``
    and compare with the audit (and with the delivered view where one was found)."""
    from shulian.io.reader import read_topics, read_window
    from shulian.logic.policy import PolicyEngine
    from shulian.serde import SchemaCache

    key = master_key if master_key is not None else secrets.token_bytes(32)
    engines = {v: PolicyEngine(catalog=catalog, sharing_list=sl, master_key=key)
               for v, sl in list_versions(settings, catalog, topology).items()}
    schemas = SchemaCache(settings.registry_url, auth=settings.registry_auth_conf())
    with reading("canonical window") as progress:
        canonical = read_window(settings, [topology.canonical(d) for d in datasets], window,
                                progress=progress)
    with reading("audit topics") as progress:
        audit_parts = read_topics(settings, [topology.audit(d) for d in datasets],
                                  progress=progress)
    egress_topics = [t for t in plan_topics(catalog, topology).egress
                     if (topology.parse_egress(t) or ("", ""))[1] in datasets]
    with reading("egress topics") as progress:
        egress_parts = read_topics(settings, egress_topics, progress=progress)
    egress: dict[tuple[str, str, str | None, str | None], list[InMessage]] = {}
    for msgs in egress_parts.values():
        for m in msgs:
            egress.setdefault((m.topic, (m.key or b"").decode("utf-8", "replace"),
                               header_str(m.headers, "shulian.entry"),
                               header_str(m.headers, "shulian.list.version")), []).append(m)
    emissions: dict[tuple[str, int, int], dict[tuple[str, int], list[dict[str, Any]]]] = {}
    for msgs in audit_parts.values():
        for e in audit_entries(msgs):
            r = e.record
            src = r.get("source") or {}
            if r.get("kind") != "decision" or not isinstance(src, dict):
                continue
            where = (str(src.get("topic")), int(src.get("partition", -1)),
                     int(src.get("offset", -1)))
            emissions.setdefault(where, {}).setdefault(
                (str(r["ts"]), int(r.get("list_version", -1))), []).append(r)
    newest = engines[max(engines)]
    result = DecisionsResult()
    total = sum(len(msgs) for msgs in canonical.values())
    with reading("re-deciding", total=total) as progress:
        for msgs in canonical.values():
            for m in msgs:
                result.records += 1
                _replay_one(m, topology, engines, newest, schemas, emissions, egress,
                            compare_masked=master_key is not None, result=result)
                progress(1)
    return result


def _replay_one(m: InMessage, topology: Topology, engines: dict[int, Any], newest: Any,
                schemas: Any, emissions: dict[tuple[str, int, int],
                                              dict[tuple[str, int], list[dict[str, Any]]]],
                egress: dict[tuple[str, str, str | None, str | None], list[InMessage]],
                *,
                compare_masked: bool, result: DecisionsResult) -> None:
    where = f"{m.topic}[{m.partition}]@{m.offset}"
    key = (m.key or b"").decode("utf-8", "replace")
    dataset = topology.parse_canonical(m.topic) or ""
    provider = header_str(m.headers, "shulian.provider") or ""
    record = _decode(schemas, m.value)
    groups = emissions.get((m.topic, m.partition, m.offset), {})
    if record is None:
        result.mismatches.append(Mismatch(where, key, "", "canonical record cannot be decoded",
                                          None, None))
        return
    if not groups:
        if newest.entries_for(dataset=dataset, provider=provider):
            result.mismatches.append(Mismatch(where, key, "", "no audit decision for this "
                                              "canonical record", None, None))
        return
    digest = record_digest(m.value or b"")
    for (ts, version), audited in sorted(groups.items()):
        result.emissions += 1
        engine = engines.get(version)
        if engine is None:
            result.mismatches.append(Mismatch(where, key, "", f"list version {version} named "
                                              "by the audit is unknown", None, None))
            continue
        now = datetime.fromtimestamp(ts_ms(ts) / 1000, UTC)
        replayed = engine.decide(dataset=dataset, provider=provider, record=record,
                                 record_key=key, now=now)
        result.decisions += len(replayed)
        result.mismatches.extend(compare_decisions(canonical=where, record_key=key,
                                                   audited=audited, replayed=replayed,
                                                   digest=digest))
        for d in replayed:
            if d.view is None:
                continue
            egress_key = str(d.view.get("_record_key", key))  # pseudonymised if masked
            sent = egress.get((topology.egress(d.consumer, d.dataset), egress_key, d.entry_id,
                               str(d.list_version)), [])
            # keys can repeat across records (and redelivery duplicates): one must match
            views = [v for v in (_decode(schemas, s.value) for s in sent) if v is not None]
            if not views:
                continue
            result.views_compared += 1
            masked = frozenset(f for f, _ in d.fields_masked)
            tried = [compare_views(d.view, v, masked=masked, compare_masked=compare_masked)
                     for v in views]
            diffs = min(tried, key=len)
            if diffs:
                result.mismatches.append(Mismatch(where, key, d.entry_id, "delivered view "
                                                  f"differs in {', '.join(diffs)}", None, None))
