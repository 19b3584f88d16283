"""``shulian replay decisions|deliver|drill``: reproduce decisions, re-deliver a window,
rehearse on a past stream. Windows resolve to offsets by reading record timestamps."""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from shulian.audit.check import audit_entries, ts_ms
from shulian.audit.diff import Mismatch, compare_decisions, compare_views
from shulian.audit.names import require_delivery, require_known
from shulian.audit.produce import Outgoing, produce_all
from shulian.audit.progress import reading
from shulian.audit.redeliver import (
    REPLAY_AUDIT_PARTITIONS,
    replay_audit_record,
    replay_audit_topic,
)
from shulian.audit.window import Window
from shulian.catalog.models import Catalog, SharingList
from shulian.chain.messages import InMessage, header_str
from shulian.chain.topology import Topology, plan_topics
from shulian.cli.audit import window_of
from shulian.cli.common import bootstrap_option, friendly_errors, registry_option, settings_from
from shulian.errors import BrokerError, ConfigError, ConfigIssue
from shulian.log import get_logger
from shulian.logic.audit import AuditChain, record_digest
from shulian.logic.auditseal import build_seal
from shulian.settings import Settings

log = get_logger(__name__)
REPLAY_WORKER = "shulian-replay"


def _load_catalog(settings: Settings) -> Catalog:
    from shulian.catalog.load import load_catalog

    return load_catalog(settings.catalog_dir, schemas_dir=settings.schemas_dir)


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
    from shulian.chain.wire import decode_body, split_wire

    wire = split_wire(value or b"")
    if not isinstance(wire, tuple):
        return None
    parsed = schemas.parsed(wire[0])
    if parsed is None:
        return None
    record = decode_body(parsed, wire[1])
    return record if isinstance(record, dict) else None


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
    with reading("egress topics") as progress:
        egress_parts = read_topics(settings, [t for t in plan_topics(catalog, topology).egress
                                              if topology.parse_egress(t) and
                                              (topology.parse_egress(t) or ("", ""))[1]
                                              in datasets], progress=progress)
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


def _master_key(settings: Settings) -> bytes | None:
    k = settings.hmac_master_key
    return None if k is None else k.get_secret_value().encode("utf-8")


@click.group("replay")
def replay() -> None:
    """Reproduce decisions, re-deliver a window, rehearse on past streams (drills)."""


def _window_options(fn: Any) -> Any:
    fn = click.option("--catalog", "catalog_dir", envvar="SHULIAN_CATALOG_DIR", default=None,
                      type=click.Path(file_okay=False, path_type=Path),
                      help="Catalogue folder [env SHULIAN_CATALOG_DIR, default ./catalog]")(fn)
    fn = click.option("--to", "end", envvar="SHULIAN_REPLAY_TO", required=True, metavar="TIME",
                      help="Window end: ISO 8601 (zone optional, default Asia/Shanghai), 'now' "
                      "or relative (-15m) [env SHULIAN_REPLAY_TO]")(fn)
    fn = click.option("--from", "start", envvar="SHULIAN_REPLAY_FROM", required=True,
                      metavar="TIME", help="Window start [env SHULIAN_REPLAY_FROM]")(fn)
    return registry_option(bootstrap_option(fn))


@replay.command("decisions")
@_window_options
@click.option("--dataset", "datasets", multiple=True, help="Only this dataset (repeatable)")
@click.option("--namespace", envvar="SHULIAN_NAMESPACE", default=None,
              help="Topic prefix [env SHULIAN_NAMESPACE]")
@click.pass_context
@friendly_errors
def decisions(ctx: click.Context, bootstrap_servers: str | None, registry_url: str | None,
              start: str, end: str, catalog_dir: Path | None, datasets: tuple[str, ...],
              namespace: str | None) -> None:
    """Re-evaluate the window's canonical records with the list version the audit names and
    the audit's ts as now; report every difference. Exit 1 on any mismatch, 2 for an unknown
    dataset, 3 when the window holds no canonical record (nothing was compared).

    Masked values are compared only when SHULIAN_HMAC_MASTER_KEY is set.
    """
    settings = settings_from(ctx, bootstrap_servers=bootstrap_servers, registry_url=registry_url,
                             catalog_dir=catalog_dir)
    catalog = _load_catalog(settings)
    require_known("--dataset", "dataset", datasets, catalog.datasets)
    window = window_of(start, end)
    res = run_replay_decisions(settings, catalog=catalog, topology=Topology(namespace=namespace),
                               window=window, datasets=list(datasets) or sorted(catalog.datasets),
                               master_key=_master_key(settings))
    out = Console(soft_wrap=False, width=200 if not sys.stdout.isatty() else None)
    out.print(f"window {window.describe()}: {res.records} canonical records, {res.emissions} "
              f"audited emissions, {res.decisions} decisions replayed, {res.views_compared} "
              f"delivered views compared (masked values "
              f"{'compared' if settings.hmac_master_key else 'not compared: no master key'})")
    if res.records == 0 and not res.mismatches:
        out.print("NOTHING REPLAYED: no canonical record in the window; nothing was compared")
        sys.exit(3)
    if not res.mismatches:
        out.print("OK: every replayed decision matches the audit")
        return
    t = Table(title=f"{len(res.mismatches)} mismatch(es)")
    for c in ("canonical", "record key", "entry", "what", "audited", "replayed"):
        t.add_column(c)
    for mm in res.mismatches:
        t.add_row(mm.canonical, mm.record_key, mm.entry_id, mm.what,
                  json.dumps(mm.audited, ensure_ascii=False) if mm.audited else "",
                  json.dumps(mm.replayed, ensure_ascii=False) if mm.replayed else "")
    out.print(t)
    sys.exit(1)


# ---------------------------------------------------------------- deliver


@dataclass
class DeliverResult:
    candidates: int  # live deliver audit records of the window
    refused: int  # of them, those that did not re-derive to a delivery (logged with why)
    delivered: int
    target: str
    replay_audit_topic: str
    unaudited: int = 0  # egress records of the window without a deliver audit record


def _sink_write(config_path: Path, settings: Settings, msgs: Sequence[InMessage], *,
                egress_topic: str) -> str:
    """Write straight into the sink a connector config describes (PostgreSQL sinks): the
    same upsert on ``_record_key`` the sink connector does, so a row it already has stays one."""
    import yaml

    from connectors.sinks.config import PostgresSinkConfig
    from connectors.sinks.postgres import PostgresSink
    from connectors.sinks.records import SinkRecord
    from shulian.serde import SchemaCache

    try:
        data = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        config = PostgresSinkConfig.model_validate(data)
    except Exception as exc:
        raise ConfigError([ConfigIssue(str(config_path), "(file)",
                                       f"not a PostgreSQL sink config: {exc}")]) from exc
    if egress_topic not in config.topics:
        raise ConfigError([ConfigIssue(str(config_path), "topics",
                                       f"the sink does not consume {egress_topic}")])
    schemas = SchemaCache(settings.registry_url, auth=settings.registry_auth_conf())
    records = []
    for m in msgs:
        value = _decode(schemas, m.value)
        sid = int.from_bytes((m.value or b"\0\0\0\0\0")[1:5], "big")
        schema_str = schemas.schema_str(sid)
        if value is None or schema_str is None:
            raise BrokerError(f"egress record {m.topic}[{m.partition}]@{m.offset} cannot be "
                              "decoded")
        records.append(SinkRecord(m.topic, m.partition, m.offset, m.key, m.value, m.headers,
                                  m.timestamp_ms).decoded(schema_id=sid, value=value,
                                                          schema=json.loads(schema_str)))
    sink = PostgresSink(config)
    try:
        sink.setup()
        with reading(f"writing to sink {config.name}", total=len(records)) as progress:
            for i in range(0, len(records), config.batch_size):
                batch = records[i:i + config.batch_size]
                sink.write_batch(batch)
                progress(len(batch))
    finally:
        sink.close()
    return f"sink:{config.name}"


def run_redeliver(settings: Settings, *, topology: Topology, consumer: str, dataset: str,
                  window: Window, sink_config: Path | None,
                  master_key: bytes | None = None) -> DeliverResult:
    """Re-derive and re-send what ``consumer`` was delivered of ``dataset`` in the window.

    The egress records of the window (by Kafka timestamp) only *select* the live deliver
    audit records they match; what is sent is re-derived from the canonical record and that
    audit record and signed like the worker (:func:`shulian.audit.rederive.rederive`). No
    egress record is ever copied, so a forgery on the egress topic cannot be re-sent."""
    from shulian.audit.rederive import (
        Rederived,
        rederive,
        select_deliveries,
        sign_rederived,
    )
    from shulian.io.kafka import TopicSpec, admin_client, ensure_topics
    from shulian.io.reader import read_topics, read_window
    from shulian.io.setup import register_views, registry_client
    from shulian.io.trust import chain_trust
    from shulian.logic.policy import PolicyEngine
    from shulian.serde import SchemaCache
    from streams.runtime import read_tail

    catalog = _load_catalog(settings)
    # refused before anything is read or created: a misspelt name must not make a topic
    egress_topic = require_delivery(catalog, topology, consumer, dataset)
    key = master_key if master_key is not None else _master_key(settings)
    if key is None:
        raise ConfigError([ConfigIssue("environment", "SHULIAN_HMAC_MASTER_KEY", "not set: "
                                       "re-delivery re-derives masked views with the chain's "
                                       "master key")])
    signer = chain_trust(settings, catalog).signer
    versions = list_versions(settings, catalog, topology)
    client = registry_client(settings)
    engines = {v: PolicyEngine(catalog=catalog, sharing_list=sl, master_key=key)
               for v, sl in versions.items()}
    views = {k: vs for sl in versions.values()
             for k, vs in register_views(catalog, sl, client).items()}
    replay_topic = replay_audit_topic(topology, dataset)
    ensure_topics(admin_client(settings), [TopicSpec(replay_topic, REPLAY_AUDIT_PARTITIONS)],
                  replication_factor=settings.replication_factor)
    with reading("audit topics") as progress:
        parts = read_topics(settings, [topology.audit(dataset)], progress=progress)
    with reading("egress window") as progress:
        sent = [m for msgs in read_window(settings, [egress_topic], window,
                                          progress=progress).values() for m in msgs]
    delivers, unaudited = select_deliveries(
        sent, (e for msgs in parts.values() for e in audit_entries(msgs)))
    for m in unaudited:
        log.warning("replay.unaudited_egress_record", topic=m.topic, partition=m.partition,
                    offset=m.offset)
    with reading("canonical topic") as progress:
        canonical = {(m.topic, m.partition, m.offset): m for msgs in read_topics(
            settings, [topology.canonical(dataset)], progress=progress).values() for m in msgs}
    schemas = SchemaCache(settings.registry_url, auth=settings.registry_auth_conf())
    now = settings.decision_clock().now()
    signed = sign_rederived([rederive(e.record, (e.topic, e.partition, e.offset),
                                      canonical=canonical, engines=engines, views=views,
                                      schemas=schemas) for e, _ in delivers], signer, at=now)
    made = list(zip(signed, (m for _, m in delivers), strict=True))
    sends = [(r, m) for r, m in made if isinstance(r, Rederived)]
    for r, _ in made:
        if not isinstance(r, Rederived):
            log.warning("replay.refused", audit=f"{r.audit_position[0]}[{r.audit_position[1]}]"
                        f"@{r.audit_position[2]}", why=r.why)
    if sink_config is not None:  # the row names the original delivery's position
        msgs = [InMessage(r.topic, m.partition, m.offset, r.key, r.value, m.timestamp_ms,
                          list(r.headers)) for r, m in sends]
        target = _sink_write(sink_config, settings, msgs, egress_topic=egress_topic)
        audit_egress = None
    else:
        target = egress_topic
        audit_egress = egress_topic
        produce_all(settings, [(r.topic, m.partition, r.key, r.value, list(r.headers))
                               for r, m in sends])
    # replay audit: one chain on the single partition of audit.replay.<dataset>
    chain = AuditChain.resume(read_tail(settings, replay_topic, 0))
    sealed: list[Outgoing] = [
              (replay_topic, 0, str(r.audit.get("record_key")).encode("utf-8"),
               chain.seal(replay_audit_record(r.audit, original_position=r.audit_position,
                                              target=target, egress_topic=audit_egress, ts=now,
                                              worker=REPLAY_WORKER)), [])
              for r, _ in sends]
    if sealed:  # signed like the worker's batches (shulian.logic.auditseal)
        sealed.append((replay_topic, 0, b"", build_seal(chain, signer, topic=replay_topic,
                                                         partition=0, ts=now,
                                                         worker=REPLAY_WORKER), []))
    produce_all(settings, sealed)
    refused = len(made) - len(sends)
    log.info("replay.delivered", target=target, records=len(sends), refused=refused,
             unaudited=len(unaudited))
    return DeliverResult(len(made), refused, len(sends), target, replay_topic, len(unaudited))


@replay.command("deliver")
@_window_options
@click.option("--consumer", required=True, help="Consumer agency to re-deliver to")
@click.option("--dataset", required=True, help="Dataset to re-deliver")
@click.option("--to-sink", "to_sink", type=click.Path(dir_okay=False, exists=True,
                                                      path_type=Path), default=None,
              help="Write straight into the sink this connector config describes (PostgreSQL) "
              "instead of producing to egress.<consumer>.<dataset>")
@click.option("--namespace", envvar="SHULIAN_NAMESPACE", default=None,
              help="Topic prefix [env SHULIAN_NAMESPACE]")
@click.pass_context
@friendly_errors
def deliver(ctx: click.Context, bootstrap_servers: str | None, registry_url: str | None,
            start: str, end: str, catalog_dir: Path | None, consumer: str, dataset: str,
            to_sink: Path | None, namespace: str | None) -> None:
    """Re-deliver what the consumer was delivered in the window (by the egress records' time),
    idempotently (same keys; a sink upserts on _record_key), audited as kind=replay in
    audit.replay.<dataset>. Each record is re-derived from its canonical record and its deliver
    audit record (the audited list version and time, the chain's master key and signing key),
    never copied from the egress topic: a forged egress record is never re-sent. Exit 1 when
    an audited delivery does not re-derive (its canonical record changed or is gone) or an
    egress record of the window has no deliver audit record.
    """
    settings = settings_from(ctx, bootstrap_servers=bootstrap_servers, registry_url=registry_url,
                             catalog_dir=catalog_dir)
    res = run_redeliver(settings, topology=Topology(namespace=namespace), consumer=consumer,
                        dataset=dataset, window=window_of(start, end), sink_config=to_sink)
    click.echo(f"re-delivered {res.delivered} record(s) to {res.target}; audited in "
               f"{res.replay_audit_topic}; {res.refused} of {res.candidates} audited "
               "deliveries refused (they do not re-derive from their canonical record); "
               f"{res.unaudited} egress record(s) without a deliver audit record ignored")
    if res.refused or res.unaudited:
        sys.exit(1)


# ---------------------------------------------------------------- drill


@replay.command("drill")
@_window_options
@click.option("--speed", type=float, default=1.0, show_default=True,
              envvar="SHULIAN_DRILL_SPEED", help="Pace multiplier [env SHULIAN_DRILL_SPEED]")
@click.option("--namespace", required=True, envvar="SHULIAN_DRILL_NAMESPACE",
              help="Isolated namespace for the drill's topics [env SHULIAN_DRILL_NAMESPACE]")
@click.option("--source-namespace", envvar="SHULIAN_NAMESPACE", default=None,
              help="Namespace to replay from (default: production) [env SHULIAN_NAMESPACE]")
@click.option("--worker-log", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File for the drill worker's log (default: discarded)")
@click.option("--timeout", "timeout_s", type=float, default=600.0, show_default=True,
              help="Give up when the drill is not processed after this many seconds")
@click.pass_context
@friendly_errors
def drill(ctx: click.Context, bootstrap_servers: str | None, registry_url: str | None,
          start: str, end: str, catalog_dir: Path | None, speed: float, namespace: str,
          source_namespace: str | None, worker_log: Path | None, timeout_s: float) -> None:
    """Rehearse on a past stream: replay the window's raw records into NAMESPACE at SPEED times
    the original pace, through a separate chain worker, without touching production topics
    or consumer groups. Prints a summary."""
    settings = settings_from(ctx, bootstrap_servers=bootstrap_servers, registry_url=registry_url,
                             catalog_dir=catalog_dir)
    if speed <= 0:
        raise click.BadParameter("must be > 0", param_hint="--speed")
    from shulian.audit.drill import run_drill

    res = run_drill(settings, catalog=_load_catalog(settings),
                    source=Topology(namespace=source_namespace), namespace=namespace,
                    window=window_of(start, end), speed=speed, timeout_s=timeout_s,
                    log_file=worker_log)
    out = Console(soft_wrap=False, width=160 if not sys.stdout.isatty() else None)
    t = Table(title=f"drill {res.namespace}: {sum(res.produced.values())} raw records "
              f"({res.window_span_s:.1f} s of stream) in {res.elapsed_s:.1f} s")
    t.add_column("what")
    t.add_column("count", justify="right")
    for topic, n in sorted(res.produced.items()):
        t.add_row(f"replayed into {topic}", str(n))
    t.add_row("canonical records", str(res.canonical))
    for why, n in sorted(res.deadletters.items()):
        t.add_row(f"dead letters: {why}", str(n))
    for (consumer, decision), n in sorted(res.decisions.items()):
        t.add_row(f"{consumer}: {decision}", str(n))
    out.print(t)
