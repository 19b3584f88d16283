"""How long the registry takes to answer "not found" against "found" (issue 23, item 6).

Starts its own Tansu broker and two ``shulian registry`` instances on one fresh ``_schemas``
topic (all on loopback, free ports), registers one schema, then times on instance one, each
request ``--requests`` times with one keep-alive HTTP client: hits (the latest version, the
schema by id) and misses (an absent subject's versions, an absent id, deleting an absent
subject, a look-up of an unregistered schema). Then, ``--pairs`` times, it registers a new
subject through instance one and immediately asks instance two for it (it must be found: the
consistency docs/REGISTRY.md promises). Prints one JSON object; exits 1 when a check fails.

    python -m shulian.bench.registry_misses [--requests 500] [--pairs 100]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from shulian.embedded.net import free_port, wait_until
from shulian.embedded.tansu import TansuProcess

SCHEMA = json.dumps({"type": "record", "name": "B", "namespace": "bench",
                     "fields": [{"name": "a", "type": "int"}]})


def start_registry(bootstrap: str, topic: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [sys.executable, "-m", "shulian.cli.main", "registry", "--bootstrap", bootstrap,
           "--host", "127.0.0.1", "--port", str(port), "--topic", topic]
    proc = subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/subjects", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    if not wait_until(up, timeout_s=60, interval_s=0.1):
        proc.terminate()
        raise SystemExit(f"registry did not start; see {log}")
    return proc, url


def timed(n: int, call: Callable[[], httpx.Response], status: int) -> dict[str, float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = call()
        times.append((time.perf_counter() - t0) * 1000)
        if r.status_code != status:
            raise SystemExit(f"expected {status}, got {r.status_code} {r.text}")
    times.sort()
    return {"p50_ms": round(statistics.median(times), 2),
            "p99_ms": round(times[max(0, int(len(times) * 0.99) - 1)], 2),
            "max_ms": round(times[-1], 2)}


def measure(one: str, two: str, requests: int, pairs: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with httpx.Client(base_url=one) as http:
        sid = http.post("/subjects/hit/versions", json={"schema": SCHEMA}).json()["id"]
        for _ in range(20):  # warm up
            http.get("/subjects/hit/versions/latest")
            http.get("/subjects/absent/versions")
        other = json.dumps({"type": "record", "name": "Other", "fields": []})
        cases: dict[str, tuple[Callable[[], httpx.Response], int]] = {
            "hit: GET /subjects/s/versions/latest":
                (lambda: http.get("/subjects/hit/versions/latest"), 200),
            "hit: GET /schemas/ids/id": (lambda: http.get(f"/schemas/ids/{sid}"), 200),
            "miss: GET /subjects/absent/versions":
                (lambda: http.get("/subjects/absent/versions"), 404),
            "miss: GET /schemas/ids/absent": (lambda: http.get("/schemas/ids/999999"), 404),
            "miss: DELETE /subjects/absent": (lambda: http.delete("/subjects/absent"), 404),
            "miss: POST /subjects/hit (unregistered schema)":
                (lambda: http.post("/subjects/hit", json={"schema": other}), 404),
        }
        for name, (call, status) in cases.items():
            out[name] = timed(requests, call, status)
    lost = 0
    with httpx.Client(base_url=one) as w, httpx.Client(base_url=two) as r:
        for i in range(pairs):
            subj = f"pair-{i}"
            new_id = w.post(f"/subjects/{subj}/versions", json={"schema": SCHEMA}).json()["id"]
            got = r.get(f"/subjects/{subj}/versions/latest")
            if got.status_code != 200 or got.json()["id"] != new_id:
                lost += 1
    out["read-after-write on the other instance"] = {"pairs": pairs, "not_found": lost}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=500, help="timed requests per case")
    ap.add_argument("--pairs", type=int, default=100, help="cross-instance write/read pairs")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp:
        logs = Path(tmp)
        broker = TansuProcess(host="127.0.0.1", port=free_port(), log_file=logs / "tansu.log")
        broker.start(ready_timeout_s=60)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            topic = f"_schemas.bench.{uuid.uuid4().hex[:8]}"
            p1, one = start_registry(broker.bootstrap, topic, logs / "one.log")
            procs.append(p1)
            p2, two = start_registry(broker.bootstrap, topic, logs / "two.log")
            procs.append(p2)
            result = measure(one, two, args.requests, args.pairs)
        finally:
            for p in procs:
                p.terminate()
                p.wait(timeout=15)
            broker.stop()
    print(json.dumps(result, indent=2))
    return 1 if result["read-after-write on the other instance"]["not_found"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
