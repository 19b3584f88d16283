"""Signed checkpoints of the chain heads outside Kafka: truncation back to a seal, a replaced
partition and a forged checkpoint are caught; the file store only appends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from shulian.catalog.keys import CHAIN, Keyring, SigningKey
from shulian.catalog.models import PublicKey
from shulian.io.checkpoints import FileStore, open_store
from shulian.logic.audit import AuditChain
from shulian.logic.auditseal import build_seal
from shulian.logic.checkpoint import Checkpoint, build_checkpoint, checkpoint_breaks

T0 = datetime(2026, 3, 1, tzinfo=UTC)
SIGNER = SigningKey.generate("chain-1")
KEYS = Keyring([PublicKey(id="chain-1", owner=CHAIN, public_key=SIGNER.public_b64,
                          valid_from=T0 - timedelta(days=1))])
TOPIC = "audit.d"


def _partition(n_batches: int, tag: str = "k") -> tuple[list[tuple[int, bytes]], AuditChain]:
    chain = AuditChain()
    values: list[bytes] = []
    for b in range(n_batches):
        for i in range(2):
            values.append(chain.seal({"v": 1, "kind": "decision", "ts": "2026-03-01T00:00:00Z",
                                      "record_key": f"{tag}{b}.{i}"}))
        values.append(build_seal(chain, SIGNER, topic=TOPIC, partition=0, ts=T0, worker="w"))
    return list(enumerate(values)), chain


def _checkpoint(chain: AuditChain) -> list[Checkpoint]:
    return [build_checkpoint([(TOPIC, 0, chain.next_seq - 1, chain.head)], SIGNER, ts=T0,
                             worker="w")]


def test_intact_partition_holds_its_checkpoint() -> None:
    items, chain = _partition(3)
    assert checkpoint_breaks(_checkpoint(chain), {(TOPIC, 0): items}, KEYS) == []


def test_truncated_back_to_an_earlier_seal_is_caught() -> None:
    items, chain = _partition(3)
    cps = _checkpoint(chain)
    short = items[:6]  # ends with the second batch's seal: verifies on its own
    found = checkpoint_breaks(cps, {(TOPIC, 0): short}, KEYS)
    assert len(found) == 1 and found[0][2] == 5 and "truncated" in found[0][3]


def test_replaced_partition_is_caught() -> None:
    _, chain = _partition(3)
    other, _ = _partition(3, tag="x")  # a wholly different, self-consistent chain
    found = checkpoint_breaks(_checkpoint(chain), {(TOPIC, 0): other}, KEYS)
    assert len(found) == 1 and "replaced" in found[0][3] and found[0][2] == 8


def test_forged_checkpoint_is_refused() -> None:
    items, _ = _partition(1)
    forger = SigningKey.generate("chain-1")  # the same id, another key
    cp = build_checkpoint([(TOPIC, 0, 99, "f" * 64)], forger, ts=T0, worker="w")
    found = checkpoint_breaks([cp], {(TOPIC, 0): items}, KEYS)
    assert len(found) == 1 and "does not hold" in found[0][3]


def test_file_store_appends_and_reads(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints.jsonl"
    store = open_store(str(path))
    assert isinstance(store, FileStore)
    _, chain = _partition(2)
    for cp in _checkpoint(chain) * 2:
        store.append(cp)
    with path.open("a") as f:
        f.write("not json\n")  # junk in the file hides nothing else
    got = list(store.read())
    assert len(got) == 2
    assert got[0].heads == ((TOPIC, 0, chain.next_seq - 1, chain.head),)
    assert open_store(None) is None and open_store("") is None


def test_worker_checkpoints_every_n_records_or_t_seconds(tmp_path: Path) -> None:
    from shulian.clock import FixedClock
    from shulian.io.checkpointer import Checkpointer

    heads: list[tuple[str, int, int, str]] = []
    t = [0.0]
    store = FileStore(tmp_path / "cp.jsonl")
    cp = Checkpointer(store, SIGNER, lambda: list(heads), clock=FixedClock(T0), worker="w",
                      every_records=100, every_s=10.0, monotonic=lambda: t[0])
    cp.maybe()
    assert list(store.read()) == []  # nothing written yet: nothing to sign
    heads[:] = [(TOPIC, 0, 50, "a" * 64)]
    cp.maybe()
    assert list(store.read()) == []  # 50 records, 0 s: not yet
    heads[:] = [(TOPIC, 0, 120, "b" * 64)]
    cp.maybe()
    assert [c.heads[0][2] for c in store.read()] == [120]  # 100 records reached
    heads[:] = [(TOPIC, 0, 130, "c" * 64)]
    t[0] = 11.0
    cp.maybe()
    cp.maybe()  # unchanged heads: not again
    got = list(store.read())
    assert [c.heads[0][2] for c in got] == [120, 130]  # 10 s reached
    assert all(c.why_invalid(KEYS) is None for c in got)
