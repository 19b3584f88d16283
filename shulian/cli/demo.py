"""``shulian demo``: the whole embedded stack, a small realistic scenario, a measured table."""

from __future__ import annotations

import json
import random
import tempfile
import time
from collections import Counter
from pathlib import Path

import click

from shulian.cli.common import engine_option, friendly_errors, settings_from
from shulian.cli.up import initialise
from shulian.embedded.net import free_port
from shulian.embedded.stack import Endpoints, stack_children, stack_master_key
from shulian.embedded.supervisor import ChildDied, Supervisor
from shulian.settings import Settings

DEMO_CHILDREN = ("broker", "registry", "worker")


@click.command("demo")
@click.option("--records", type=int, default=60, show_default=True,
              help="Records each agency publishes per dataset")
@click.option("--invalid-rate", type=float, default=0.05, show_default=True,
              help="Share of records that fail an element check on purpose")
@click.option("--seed", type=int, default=2026, show_default=True, help="Random seed")
@click.option("--timeout", "timeout_s", type=float, default=180.0, show_default=True,
              help="Seconds to wait for the chain to process everything")
@engine_option
@click.pass_context
@friendly_errors
def demo(ctx: click.Context, records: int, invalid_rate: float, seed: int,
         timeout_s: float, engine: str | None) -> None:
    """Start the stack, play a scenario of several agencies, print what happened, exit.

    Agencies publish Avro with confluent-kafka's serializer in their own dialects (field
    names, code lists, date formats, units, region names), including invalid records and
    wire-level garbage. The table is measured by reading the chain's topics, not predicted.
    """
    settings = settings_from(ctx, broker_port=free_port(), registry_port=free_port(),
                             gateway_port=free_port(), metrics_port=0, broker_engine=engine)
    settings, _ = stack_master_key(settings, state_dir=None)  # fresh per demo run
    endpoints = Endpoints.from_settings(settings)
    settings = settings.model_copy(update={
        "bootstrap_servers": endpoints.bootstrap, "registry_url": endpoints.registry_url})
    root = ctx.find_root().command
    commands = set(root.commands) if isinstance(root, click.Group) else set()
    children = [c for c in stack_children(settings, endpoints, commands=commands)
                if c.name in DEMO_CHILDREN]
    log_dir = Path(tempfile.mkdtemp(prefix="shulian-demo-"))
    click.echo(f"starting broker, registry and chain worker (logs in {log_dir}) ...")
    sup = Supervisor(log_dir=log_dir)
    code = 1
    try:
        sup.start_all(c for c in children if not c.needs_init)
        initialise(settings)
        sup.start_all(c for c in children if c.needs_init)
        code = _play(settings, records=records, invalid_rate=invalid_rate, seed=seed,
                     timeout_s=timeout_s, sup=sup)
    except ChildDied as exc:
        click.echo(f"error: {exc}", err=True)
    finally:
        sup.stop_all()
    ctx.exit(code)


def _play(settings: Settings, *, records: int, invalid_rate: float, seed: int,
          timeout_s: float, sup: Supervisor) -> int:
    from rich.console import Console
    from rich.table import Table

    from shulian.catalog.load import load_catalog
    from shulian.chain.topology import Topology, plan_topics
    from shulian.io.publish import AgencyPublisher, PublishTally
    from shulian.io.reader import read_topics
    from shulian.logic.audit import verify_chain

    catalog = load_catalog(settings.catalog_dir, schemas_dir=settings.schemas_dir)
    topology = Topology(partitions=settings.default_partitions)
    plan = plan_topics(catalog, topology)
    publisher = AgencyPublisher(settings, catalog, topology)
    rng = random.Random(seed)
    tally = PublishTally()
    for pair in publisher.pairs:
        t = publisher.publish(pair, records, rng=rng, invalid_rate=invalid_rate, garbage=5)
        tally.valid.update(t.valid)
        tally.invalid.update(t.invalid)
        tally.garbage.update(t.garbage)
    publisher.flush()
    click.echo(f"published {tally.total} records from {len(publisher.pairs)} agency datasets; "
               "waiting for the chain ...")

    sl = catalog.current_list
    want_decisions = sum(n * sum(1 for e in sl.entries if (e.provider, e.dataset) == pair)
                         for pair, n in tally.valid.items())
    want_dead = sum(tally.invalid.values()) + sum(tally.garbage.values())
    deadline = time.monotonic() + timeout_s
    while True:
        audit = read_topics(settings, plan.audit)
        dead = read_topics(settings, plan.deadletter)
        decisions = {(json.loads(m.value or b"{}")["source"]["topic"],
                      json.loads(m.value or b"{}")["source"]["partition"],
                      json.loads(m.value or b"{}")["source"]["offset"],
                      json.loads(m.value or b"{}")["entry_id"])
                     for ms in audit.values() for m in ms}
        dead_origins = {(dict(m.headers).get("shulian.source.topic"),
                         dict(m.headers).get("shulian.source.partition"),
                         dict(m.headers).get("shulian.source.offset"))
                        for ms in dead.values() for m in ms}
        if len(decisions) >= want_decisions and len(dead_origins) >= want_dead:
            break
        if sup.died is not None or time.monotonic() > deadline:
            click.echo(f"error: the chain processed {len(decisions)}/{want_decisions} decisions "
                       f"and {len(dead_origins)}/{want_dead} dead letters", err=True)
            return 1
        time.sleep(1.0)

    records_by_decision = [json.loads(m.value or b"{}") for ms in audit.values() for m in ms]
    breaks = sum(len(verify_chain([(m.offset, m.value or b"") for m in ms]))
                 for ms in audit.values())
    console = Console()
    pub = Table(title="Published by agencies (Avro via confluent-kafka AvroSerializer)")
    for col in ("agency", "dataset", "valid", "invalid (element check)", "wire garbage"):
        pub.add_column(col)
    for pair in publisher.pairs:
        pub.add_row(pair[0], pair[1], str(tally.valid[pair]), str(tally.invalid[pair]),
                    str(tally.garbage[pair]))
    console.print(pub)

    delivered = Counter((r["consumer"], r["dataset"]) for r in records_by_decision
                        if r["decision"] == "deliver")
    withheld = Counter((r["consumer"], r["dataset"], r["reason"]) for r in records_by_decision
                       if r["decision"] == "withhold")
    out = Table(title=f"Decisions under sharing list v{sl.version} (from the audit log)")
    for col in ("consumer", "dataset", "delivered", "withheld (reason)"):
        out.add_column(col)
    consumers = sorted({(r["consumer"], r["dataset"]) for r in records_by_decision})
    for consumer, dataset in consumers:
        reasons = ", ".join(f"{n} {reason}" for (c, d, reason), n in sorted(withheld.items())
                            if (c, d) == (consumer, dataset))
        out.add_row(consumer, dataset, str(delivered[(consumer, dataset)]), reasons or "-")
    console.print(out)

    dl = Counter(dict(m.headers).get("shulian.reason", b"?").decode()  # type: ignore[union-attr]
                 for ms in dead.values() for m in ms)
    dlt = Table(title="Dead letters by reason (original bytes kept)")
    dlt.add_column("reason")
    dlt.add_column("records")
    for reason, n in sorted(dl.items()):
        dlt.add_row(reason, str(n))
    console.print(dlt)
    console.print(f"audit: {len(records_by_decision)} decisions in "
                  f"{sum(1 for ms in audit.values() if ms)} hash-chained partitions, "
                  f"{breaks} breaks")
    return 0 if breaks == 0 else 1
