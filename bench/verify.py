"""Joint verification: latency of one claim with N keys in the store, memory per million keys,
and the store's rebuild time from its changelog on a real (embedded Tansu) broker.

    python -m shulian.bench.verify --keys 1000000 --requests 20000 --rebuild-keys 1000000 \
        --restore-queries 100000

Latency is measured through the HTTP route (FastAPI TestClient in-process, so no socket), the
service, the store lookup, the answer and the audit record sealed into a hash chain in memory;
the audit's broker round trip is not in it (see docs/BENCHMARKS.md). Memory is the RSS growth
of this process while the store is filled with the projections the chain writes.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from shulian.bench.rss import read_status_kb
from shulian.catalog.elements import citizen_id_check_char
from shulian.clock import FixedClock
from shulian.logic.supersede import StoreFold


class _OrderedStore(StoreFold):
    ready = True

if TYPE_CHECKING:
    from shulian.io.kafka import TopicSpec
    from shulian.io.sender import Sender
    from shulian.settings import Settings


def cid(n: int) -> str:
    first17 = f"440106{1950 + n % 60:04d}0101{n % 1000:03d}"[:14] + f"{n // 1000 % 1000:03d}"
    return first17 + citizen_id_check_char(first17)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--rebuild-keys", type=int, default=200_000)
    ap.add_argument("--restore-queries", type=int, default=0,
                    help="time a starting gateway's rate-limit restore from this many "
                    "answered queries in the day's verification audit")
    args = ap.parse_args()

    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from shulian.connectors.sources.gateway_auth import Authenticator, token_sha256
    from shulian.connectors.sources.verify_api import verify_router
    from shulian.logic.policy import PolicyEngine
    from shulian.verification.service import VerifyService
    from tests.fixtures.verify import IN_FORCE, ChainedAudit, verify_catalog

    tmp = Path(tempfile.mkdtemp(prefix="bench-verify-"))
    catalog = verify_catalog(tmp)
    sl = catalog.sharing_lists[3]
    projection = PolicyEngine(catalog=catalog, sharing_list=sl, master_key=b"k" * 32
                              ).projection("household_change")
    assert projection is not None
    store = _OrderedStore()  # as the gateway's ChangelogTable holds it: value + source order
    gc.collect()
    before = (read_status_kb(__import__("os").getpid(), "VmRSS") or 0) * 1024
    keys: list[str] = []
    for i in range(args.keys):
        # distinct keys: vary the sequence and birth year in the ID
        first17 = f"4401{i % 100:02d}{1950 + (i // 100) % 60:04d}0101" + f"{i // 6000:03d}"
        c = first17[:17] + citizen_id_check_char(first17[:17])
        rec = {"citizen_id": c, "name": f"张{i % 5000}", "serial_no": f"S{i:012d}",
               "birth_date": date(1950 + (i // 100) % 60, 1, 1), "change_type": "01",
               "recorded_at": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=i)}
        p = projection.project(rec)
        assert p is not None
        store.apply(*p, projection.order(rec, fallback_ms=0, stored=p[1]).encode())
        if i % max(1, args.keys // args.requests) == 0:
            keys.append(c)
    gc.collect()
    after = (read_status_kb(__import__("os").getpid(), "VmRSS") or 0) * 1024
    held = len(store)
    audit = ChainedAudit()
    service = VerifyService(catalog=catalog, sharing_list=sl,
                            stores={"household_change": store},
                            audit={"household_change": audit}, master_key=b"k" * 32,
                            worker="bench", clock=FixedClock(IN_FORCE))
    app = FastAPI()
    auth = Authenticator({"bank": token_sha256("t")}, {"bank": frozenset()})
    app.include_router(verify_router(service, auth, max_body_bytes=1 << 20))
    client = TestClient(app)
    headers = {"Authorization": "Bearer t"}
    # the per-minute limit would stop a benchmark: lift it for the measurement only
    service._limiter.admit = lambda **_: None  # type: ignore[method-assign]
    lat: list[float] = []
    for i in range(args.requests):
        body = {"key": {"citizen_id": keys[i % len(keys)]},
                "claims": [{"field": "name", "how": "equals", "value": f"张{i % 5000}"}]}
        t0 = time.perf_counter()
        r = client.post("/v1/verify/household_change", json=body, headers=headers)
        lat.append(time.perf_counter() - t0)
        assert r.status_code == 200, r.text
    lat.sort()
    q = statistics.quantiles(lat, n=100)
    out = {"keys": held, "requests": args.requests,
           "p50_ms": round(q[49] * 1000, 2), "p99_ms": round(q[98] * 1000, 2),
           "max_ms": round(lat[-1] * 1000, 2),
           "rss_mb_per_million_keys": round((after - before) / held * 1e6 / 2**20, 1),
           "audit_records": len(audit.records)}
    out.update(rebuild(args.rebuild_keys, projection))
    out.update(restore(args.restore_queries, service))
    print(json.dumps(out, indent=2))


@contextmanager
def _tansu_with(spec: TopicSpec) -> Iterator[tuple[Settings, Sender]]:
    """An embedded Tansu broker of its own with the topic ``spec``, and a sender to it."""
    from shulian.embedded.net import free_port
    from shulian.embedded.tansu import TansuProcess
    from shulian.io.kafka import admin_client, ensure_topics
    from shulian.io.sender import Sender
    from shulian.settings import load_settings

    logdir = Path(tempfile.mkdtemp(prefix="bench-verify-tansu-"))
    broker = TansuProcess(host="127.0.0.1", port=free_port(), log_file=logdir / "tansu.log")
    broker.start(ready_timeout_s=60)
    try:
        settings = load_settings(bootstrap_servers=broker.bootstrap)
        ensure_topics(admin_client(settings), [spec])
        yield settings, Sender(settings)
    finally:
        broker.stop()


def rebuild(n: int, projection: object) -> dict[str, object]:
    """Produce ``n`` projections to a changelog topic on an embedded Tansu broker and time a
    ChangelogTable's rebuild from offset 0."""
    from shulian.chain.headers import ORDER
    from shulian.io.changelog import ChangelogTable
    from shulian.io.kafka import TopicSpec

    if n <= 0:
        return {}
    topic = "changelog.verify.household_change"
    with _tansu_with(TopicSpec(topic, 3, (("cleanup.policy", "compact"),))) as (settings, sender):
        for i in range(n):
            rec = {"citizen_id": f"K{i:017d}", "name": f"张{i}", "serial_no": f"S{i:012d}",
                   "birth_date": date(1980, 1, 1), "change_type": "01",
                   "recorded_at": datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=i)}
            p = projection.project(rec)  # type: ignore[attr-defined]
            order = projection.order(rec, fallback_ms=0, stored=p[1])  # type: ignore[attr-defined]
            sender.send(topic, p[1], p[0], headers=[(ORDER, order.encode())])
        sender.flush(120)
        table = ChangelogTable(settings, topic)
        table.start(wait_s=600)
        table.stop()
        return {"rebuild_keys": len(table), "rebuild_s": round(table.rebuild_s or 0, 2),
                "rebuild_keys_per_s": round(len(table) / (table.rebuild_s or 1))}


def restore(n: int, service: object) -> dict[str, object]:
    """Write ``n`` answered verification queries (one claim each, 1,000 keys) to an audit topic
    on an embedded Tansu broker, then time what a starting gateway does with them: read the
    day's records by time index and count them again in a fresh limiter."""
    from shulian.io.changelog import read_since
    from shulian.io.kafka import TopicSpec
    from shulian.logic.audit import AuditChain, build_verification, parse_audit
    from shulian.logic.ratelimit import day_start
    from tests.fixtures.verify import IN_FORCE

    if n <= 0:
        return {}
    topic = "audit.verify.household_change"
    with _tansu_with(TopicSpec(topic, 3)) as (settings, sender):
        chain, ts_ms = AuditChain(), int(IN_FORCE.timestamp() * 1000)
        for i in range(n):
            rec = build_verification(
                entry_id="psb-bank-verify", list_version=3, dataset="household_change",
                provider="psb", consumer="bank", ts=IN_FORCE, worker="bench",
                claims=[("name", "equals", "match", f"{i:064x}")],
                key_digest=f"{i % 1000:064x}")
            sender.send(topic, chain.seal(rec), partition=0, timestamp=ts_ms)
        sender.flush(120)
        since = day_start(IN_FORCE)
        t0 = time.perf_counter()
        raw = read_since(settings, topic, int(since.timestamp() * 1000))
        t1 = time.perf_counter()
        records = sorted((r for v in raw if (r := parse_audit(v)) is not None),
                         key=lambda r: str(r.get("ts")))
        counted = service.restore_limits(records, since=since)  # type: ignore[attr-defined]
        t2 = time.perf_counter()
        return {"restore_queries": counted, "restore_read_s": round(t1 - t0, 2),
                "restore_count_s": round(t2 - t1, 2)}


if __name__ == "__main__":
    main()
