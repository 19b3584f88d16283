"""The chain's pure stages alone: microseconds per record, no broker, no registry, no Faust.

``python -m shulian.bench.stages [--records N] [--repeats R]`` runs the ingest stage and then the
enforce stage on the reference workload (bench/catalog) in batches of 1,000, in this process, and
prints the median microseconds per raw record of each. Schemas get local ids (an in-memory lookup
stands in for the registry's cache), so the figures are the stages' own cost: decode, harmonise,
encode, decide, mask, encode views, seal audit records. What the whole chain adds on top
(consuming, producing, acknowledgements) is what ``shulian bench`` measures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastavro import parse_schema

from shulian.bench.data import AGENCY, DATASET, generate_workload, raw_schema, reference_catalog
from shulian.bench.harness import CATALOG_DIR, MASTER_KEY, SCHEMAS_DIR
from shulian.catalog.keys import CHAIN, Keyring, SigningKey
from shulian.catalog.models import DELIVERING, Catalog, PublicKey
from shulian.chain.dedup import AuditResume
from shulian.chain.enforce import AuditPartition, EnforceStage, ViewSchema
from shulian.chain.ingest import CanonicalSchema, IngestStage
from shulian.chain.messages import InMessage, OutMessage, read_back
from shulian.chain.topology import Topology, subject_of
from shulian.clock import DEMO_CLOCK, parse_clock
from shulian.logic.audit import AuditChain
from shulian.logic.audittrail import tail_tagger
from shulian.logic.egress import (
    DIGEST_HEADER,
    ENTRY_HEADER,
    LEAVES_PER_SIGNATURE,
    SIGNATURE_HEADER,
    SIGNATURE_KEY_HEADER,
    VERSION_HEADER,
    egress_message,
    verify_egress,
)
from shulian.logic.harmonise import Harmoniser
from shulian.logic.policy import PolicyEngine
from shulian.logic.views import view_schema

BATCH = 1000
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.thread_time}


@dataclass
class LocalSchemas:
    """Schema id -> parsed schema and subjects; what the stages ask the registry cache."""

    parsed_by_id: dict[int, Any]
    subjects_by_id: dict[int, frozenset[str]]

    def parsed(self, schema_id: int) -> Any | None:
        return self.parsed_by_id.get(schema_id)

    def subjects_of(self, schema_id: int) -> frozenset[str]:
        return self.subjects_by_id.get(schema_id, frozenset())


@dataclass
class Stages:
    ingest: IngestStage
    enforce: EnforceStage
    topology: Topology
    raw_schema_id: int
    signer: SigningKey


def build_stages(catalog: Catalog, *, namespace: str = "stages",
                 leaves_per_signature: int = LEAVES_PER_SIGNATURE) -> Stages:
    topology = Topology(namespace=namespace, partitions=1)
    schemas = LocalSchemas({}, {})
    raw_id = 1
    schemas.parsed_by_id[raw_id] = parse_schema(raw_schema(catalog, SCHEMAS_DIR))
    schemas.subjects_by_id[raw_id] = frozenset({subject_of(f"raw.{AGENCY}.{DATASET}")})
    canonical: dict[str, CanonicalSchema] = {}
    next_id = 2
    for dataset in sorted(catalog.datasets):
        with (SCHEMAS_DIR / "canonical" / f"{dataset}.avsc").open(encoding="utf-8") as fh:
            parsed = parse_schema(json.load(fh))
        schemas.parsed_by_id[next_id] = parsed
        schemas.subjects_by_id[next_id] = frozenset({subject_of(f"canonical.{dataset}")})
        canonical[dataset] = CanonicalSchema(schema_id=next_id, parsed=parsed)
        next_id += 1
    sharing = catalog.current_list
    views: dict[tuple[int, str], ViewSchema] = {}
    for entry in sharing.entries:
        if entry.share_type not in DELIVERING:
            continue
        schema = view_schema(catalog.datasets[entry.dataset], catalog.elements, entry)
        views[(sharing.version, entry.id)] = ViewSchema(next_id, parse_schema(schema))
        next_id += 1

    signer = SigningKey.generate("bench-chain")

    def fresh(partitions: Sequence[AuditPartition]) -> dict[AuditPartition, AuditResume]:
        # tagged as the worker's resumed chains are (shulian.logic.audittrail)
        return {p: AuditResume(chain=AuditChain(tag=tail_tagger(signer, p[0], p[1])))
                for p in partitions}

    engine = PolicyEngine(catalog=catalog, sharing_list=sharing,
                          master_key=MASTER_KEY.encode("utf-8"))
    clock = parse_clock(DEMO_CLOCK)  # the same decisions in any year
    signer = SigningKey.generate("bench-chain")
    return Stages(
        ingest=IngestStage(topology=topology, harmoniser=Harmoniser(catalog, clock=clock),
                           schemas=schemas, canonical=canonical),
        enforce=EnforceStage(topology=topology, schemas=schemas, engine=engine, views=views,
                             resume_loader=fresh, worker="bench-stages", clock=clock,
                             signer=signer, leaves_per_signature=leaves_per_signature),
        topology=topology,
        raw_schema_id=raw_id,
        signer=signer,
    )


def _as_input(out: Sequence[OutMessage], *, first_offset: int) -> list[InMessage]:
    return [read_back(m, offset=first_offset + i) for i, m in enumerate(out)]


@dataclass(frozen=True)
class StageTimes:
    records: int
    canonical: int
    ingest_us: float  # per raw record
    enforce_us: float  # per canonical record
    outputs_per_record: float
    egress: int = 0  # egress records
    egress_header_bytes: int = 0  # their headers: names and values
    egress_sig_bytes: int = 0  # of which the signature's (shulian.sig*, shulian.digest)
    egress_value_bytes: int = 0
    sample: tuple[OutMessage, ...] = ()  # the last batch's egress records
    signer: SigningKey | None = None


def run_once(catalog: Catalog, records: Sequence[tuple[bytes, bytes]],
             leaves_per_signature: int = LEAVES_PER_SIGNATURE,
             clock: Callable[[], float] = time.perf_counter) -> StageTimes:
    stages = build_stages(catalog, leaves_per_signature=leaves_per_signature)
    raw_topic = stages.topology.raw(AGENCY, DATASET)
    canonical_topic = stages.topology.canonical(DATASET)
    msgs = [InMessage(topic=raw_topic, partition=0, offset=i, key=k, value=v, timestamp_ms=0)
            for i, (k, v) in enumerate(records)]
    ingest_s = 0.0
    canonical_out: list[OutMessage] = []
    for i in range(0, len(msgs), BATCH):
        t0 = clock()
        out, _ = stages.ingest.process(msgs[i:i + BATCH])
        ingest_s += clock() - t0
        canonical_out.extend(m for m in out if m.topic == canonical_topic)
    canon = _as_input(canonical_out, first_offset=0)
    enforce_s = 0.0
    outputs = 0
    sizes = [0, 0, 0, 0]  # egress records, header bytes, signature header bytes, value bytes
    egress = stages.topology.prefix("egress")
    sample: list[OutMessage] = []
    for i in range(0, len(canon), BATCH):
        t0 = clock()
        out2, _ = stages.enforce.process(canon[i:i + BATCH])
        enforce_s += clock() - t0
        outputs += len(out2)
        sample = [m for m in out2 if m.topic.startswith(egress)]  # outside the timed part
        for m in sample:
            _add_sizes(sizes, m)
    return StageTimes(records=len(msgs), canonical=len(canon),
                      ingest_us=ingest_s / len(msgs) * 1e6,
                      enforce_us=enforce_s / max(1, len(canon)) * 1e6,
                      outputs_per_record=(len(canon) + outputs) / len(msgs),
                      egress=sizes[0], egress_header_bytes=sizes[1], egress_sig_bytes=sizes[2],
                      egress_value_bytes=sizes[3], sample=tuple(sample),
                      signer=stages.signer)


def verify_costs(sample: Sequence[OutMessage], signer: SigningKey,
                 clock: Callable[[], float]) -> tuple[float, float]:
    """Microseconds per egress record for a sink's check (``verify_egress``): the records as
    signed (a batch's trees), and the same records signed one by one (scheme v1, as before)."""
    keys = Keyring([PublicKey(id=signer.key_id, owner=CHAIN, public_key=signer.public_b64,
                              valid_from=datetime(2026, 1, 1, tzinfo=UTC))])
    at = parse_clock(DEMO_CLOCK).now()
    v1 = []
    for m in sample:
        h = dict(m.headers)
        entry, version, digest = (h[n].decode() for n in (ENTRY_HEADER, VERSION_HEADER,
                                                           DIGEST_HEADER))
        sig = signer.sign(egress_message(m.topic, m.key, m.value, entry, version, digest))
        v1.append([(ENTRY_HEADER, h[ENTRY_HEADER]), (VERSION_HEADER, h[VERSION_HEADER]),
                   (DIGEST_HEADER, h[DIGEST_HEADER]), (SIGNATURE_KEY_HEADER,
                   signer.key_id.encode()), (SIGNATURE_HEADER, sig.encode())])
    costs = []
    for headers in ([m.headers for m in sample], v1):
        t0 = clock()
        bad = sum(verify_egress(topic=m.topic, key=m.key, value=m.value, headers=hs, keys=keys,
                                at=at, now=at) is not None for m, hs in zip(sample, headers,
                                                                           strict=True))
        costs.append((clock() - t0) / len(sample) * 1e6)
        assert bad == 0, f"{bad} records of the sample do not verify"
    return costs[0], costs[1]


def _add_sizes(sizes: list[int], m: OutMessage) -> None:
    sizes[0] += 1
    for k, v in m.headers:
        n = len(k.encode("utf-8")) + len(v or b"")
        sizes[1] += n
        if k.startswith("shulian.sig") or k == "shulian.digest":
            sizes[2] += n
    sizes[3] += len(m.value)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m shulian.bench.stages", description=__doc__)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--leaves-per-signature", type=int, default=LEAVES_PER_SIGNATURE,
                        help="egress records per Ed25519 signature at most (one Merkle tree "
                             "each; 1: one signature per record)")
    parser.add_argument("--verify", action="store_true",
                        help="also time a sink's signature check of one batch's egress records")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall: elapsed time; cpu: CPU time of the measuring thread (steadier "
                             "on a machine shared with other work)")
    args = parser.parse_args(argv)
    catalog = reference_catalog(CATALOG_DIR, SCHEMAS_DIR)
    workload = generate_workload(catalog, SCHEMAS_DIR, schema_id=1, records=args.records,
                                 latency_records=1, warmup_records=1)
    run_once(catalog, workload.throughput.records[:BATCH])  # warm caches
    runs = [run_once(catalog, workload.throughput.records, args.leaves_per_signature,
                     CLOCKS[args.clock]) for _ in range(args.repeats)]
    ingest = statistics.median(r.ingest_us for r in runs)
    enforce = statistics.median(r.enforce_us for r in runs)
    share = runs[0].canonical / runs[0].records
    per_raw = ingest + enforce * share
    print(f"records {args.records} x {args.repeats} runs (medians); "
          f"{runs[0].outputs_per_record:.2f} outputs per raw record")
    print(f"ingest   {ingest:7.1f} us per raw record")
    print(f"enforce  {enforce:7.1f} us per canonical record")
    print(f"together {per_raw:7.1f} us per raw record = {1e6 / per_raw:,.0f} records/s "
          "on one core, stages only")
    r = runs[0]
    if r.egress:
        print(f"egress   {r.egress / r.canonical:7.2f} records per canonical record; per egress "
              f"record: value {r.egress_value_bytes / r.egress:.0f} B, headers "
              f"{r.egress_header_bytes / r.egress:.0f} B (signature and digest "
              f"{r.egress_sig_bytes / r.egress:.0f} B)")
    if args.verify and r.sample and r.signer is not None:
        merkle, single = verify_costs(r.sample, r.signer, CLOCKS[args.clock])
        print(f"verify   {merkle:7.1f} us per egress record as signed (one Ed25519 check per "
              f"tree); {single:.1f} us signed one by one (v1)")


if __name__ == "__main__":
    main()
