"""How long the console's pages take with 100,000 audit records and 10,000 dead letters.

    python -m shulian.bench.console_pages [--audit 100000] [--dead 10000] [--runs 5]

The store is filled with synthetic messages shaped like the chain's (hash-chained audit records
sealed by :class:`shulian.logic.audit.AuditChain`, dead letters with the chain's headers) through
the same ``add_*`` calls the console's reader uses; then every page is requested through the
ASGI app (httpx, in process) as the governance office and as an agency, and the median and
worst time per page are printed. Not a test: figures go to docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from shulian.chain.messages import InMessage
from shulian.logic.audit import AuditChain, encode

__all__ = ["NOW", "audit_messages", "deadletter_messages", "main"]

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
_PAIRS = [("psb", "household_change", "civil", "psb-civil-household"),
          ("psb", "household_change", "hrss", "psb-hrss-household"),
          ("amr", "business_licence", "tax", "amr-tax-licence"),
          ("health_th", "birth_certificate", "psb", "health_th-psb-birth")]
_REASONS = [("element_check_failed", "citizen_id", "check_digit"),
            ("missing_field", "name", ""), ("decode_error", "", ""),
            ("mapping_error", "sex", "")]


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def audit_messages(n: int, *, now_ms: int, partitions: int = 3,
                   span_ms: int = 24 * 3600 * 1000) -> Iterator[tuple[str, int, list[InMessage]]]:
    """(topic, partition, messages) of ``n`` audit records spread over the last ``span_ms``."""
    per: dict[tuple[str, int], list[InMessage]] = {}
    chains: dict[tuple[str, int], AuditChain] = {}
    for i in range(n):
        provider, dataset, consumer, entry = _PAIRS[i % len(_PAIRS)]
        tp = (f"audit.{dataset}", i % partitions)
        chain = chains.setdefault(tp, AuditChain())
        ts = now_ms - span_ms + i * span_ms // max(n, 1)
        deliver = i % 7 != 0
        rec = {"v": 1, "kind": "decision", "dataset": dataset, "provider": provider,
               "consumer": consumer, "entry_id": entry, "list_version": 2,
               "share_type": "unconditional", "decision": "deliver" if deliver else "withhold",
               "reason": None if deliver else "row_filter_false",
               "fields_delivered": ["a", "b"] if deliver else [], "fields_masked": [],
               "egress_topic": f"egress.{consumer}.{dataset}" if deliver else None,
               "worker": "w1", "ts": _iso(ts), "record_key": f"K{i // len(_PAIRS):08d}",
               "record_digest": "0" * 64,
               "source": {"topic": f"canonical.{dataset}", "partition": tp[1], "offset": i}}
        value = chain.seal(rec)
        assert encode(rec) == value
        msgs = per.setdefault(tp, [])
        msgs.append(InMessage(tp[0], tp[1], len(msgs), None, value, ts))
    for (topic, partition), msgs in sorted(per.items()):
        yield topic, partition, msgs


def deadletter_messages(n: int, *, now_ms: int, span_ms: int = 24 * 3600 * 1000
                        ) -> list[InMessage]:
    out: list[InMessage] = []
    for i in range(n):
        agency, dataset = [("psb", "household_change"), ("amr", "business_licence")][i % 2]
        reason, field, check = _REASONS[i % len(_REASONS)]
        headers: list[tuple[str, bytes | None]] = [
            ("shulian.reason", reason.encode()), ("shulian.detail", b"synthetic"),
            ("shulian.source.topic", f"raw.{agency}.{dataset}".encode()),
            ("shulian.source.partition", b"0"), ("shulian.source.offset", str(i).encode())]
        if field:
            headers.append(("shulian.field", field.encode()))
        if check:
            headers.append(("shulian.check", check.encode()))
        out.append(InMessage(f"deadletter.{agency}.{dataset}", 0, i, f"k{i}".encode(),
                             b"\x00\x00\x00\x00\x01" + bytes(20),
                             now_ms - span_ms + i * span_ms // max(n, 1), headers))
    return out


def main() -> None:  # pragma: no cover - a benchmark
    import os

    from fastapi.testclient import TestClient

    from shulian.console.app import create_app
    from shulian.console.auth import Kind, Principal
    from shulian.console.serve import build_console
    from shulian.settings import load_settings

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--audit", type=int, default=100_000)
    ap.add_argument("--dead", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    settings = load_settings(console_governance_token="bench-governance",
                             console_auditor_token="bench-auditor")
    console, _ = build_console(settings, dict(os.environ), namespace=None, clock=lambda: NOW)
    now_ms = int(NOW.timestamp() * 1000)
    t0 = time.perf_counter()
    for topic, partition, msgs in audit_messages(args.audit, now_ms=now_ms):
        console.store.add_audit(topic, partition, msgs)
    console.store.add_deadletters(deadletter_messages(args.dead, now_ms=now_ms))
    print(f"store filled in {time.perf_counter() - t0:.1f} s: {console.store.summary()}")
    pages = ["/", "/catalogue", "/catalogue/mappings/psb/household_change", "/sharing",
             "/sharing/diff?a=1&b=2", "/deadletters", "/deadletters?reason=missing_field&page=3",
             "/audit", "/audit/report", "/audit/report?consumer=civil&decision=deliver&page=40",
             "/audit/report.csv?consumer=tax", "/audit/journey?key=K00012345"]
    app = create_app(console)
    for who in (Principal(Kind.GOVERNANCE), Principal(Kind.AGENCY, "psb")):
        cookie, _ = console.codec.issue(who, now_ms=now_ms)
        with TestClient(app, base_url="http://127.0.0.1") as c:
            c.cookies.set("shulian_console", cookie)
            for path in pages:
                times = []
                for _ in range(args.runs):
                    start = time.perf_counter()
                    r = c.get(path)
                    times.append(time.perf_counter() - start)
                print(f"{who.id:12} {r.status_code} {path:58} median "
                      f"{statistics.median(times) * 1000:7.1f} ms  worst "
                      f"{max(times) * 1000:7.1f} ms  {len(r.content):>9,} bytes")


if __name__ == "__main__":  # pragma: no cover
    main()
