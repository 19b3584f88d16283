"""Slow clients against the gateway: N sockets dribble their headers or their body a byte at a
time for ``--seconds``; meanwhile a normal client polls /healthz. Reports how long each kind
of slow socket lasted before the server cut it and the worst /healthz answer time.

    python -m shulian.bench.gateway_slowloris --sockets 300 --seconds 30

HTTP layer only (uvicorn with the gateway's header deadline, the app's body deadline): no
broker is needed, since no slow request ever gets to produce. Loopback, a free port.
"""

from __future__ import annotations

import argparse
import asyncio
import select
import socket
import statistics
import threading
import time

import httpx
import uvicorn
from prometheus_client import CollectorRegistry

from shulian.connectors.metrics import ConnectorMetrics
from shulian.connectors.sources.config import GatewayConfig
from shulian.connectors.sources.gateway import AsyncDelivery, build_authenticator, create_app
from shulian.connectors.sources.gateway_auth import token_sha256
from shulian.connectors.sources.gateway_server import server_config
from shulian.connectors.sources.plumbing import RawProducer, RawSchemas
from shulian.embedded.net import free_port
from shulian.settings import load_settings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sockets", type=int, default=300)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--header-timeout", type=float, default=10.0)
    ap.add_argument("--body-timeout", type=float, default=30.0)
    args = ap.parse_args()
    port = free_port()
    config = GatewayConfig.model_validate({
        "name": "bench", "host": "127.0.0.1", "port": port,
        "header_timeout_s": args.header_timeout, "body_timeout_s": args.body_timeout,
        "agencies": {"psb": {"token_sha256": token_sha256("t"),
                             "datasets": ["household_change"]}}})
    settings = load_settings(bootstrap_servers="127.0.0.1:9", registry_url="http://127.0.0.1:9")
    app = create_app(config, auth=build_authenticator(config),
                     schemas=RawSchemas(settings.registry_url),
                     delivery=AsyncDelivery(RawProducer(settings)),
                     metrics=ConnectorMetrics.create(CollectorRegistry()))
    server = uvicorn.Server(server_config(app, host="127.0.0.1", port=port,
                                          header_timeout_s=args.header_timeout,
                                          connector="bench"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    head = (b"POST /v1/agencies/psb/datasets/household_change/records HTTP/1.1\r\nHost: b\r\n"
            b"Authorization: Bearer t\r\nContent-Type: application/json\r\n")
    socks: dict[int, socket.socket] = {}
    opened: dict[int, float] = {}
    for i in range(args.sockets):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(head + (b"X-Pad: " if i % 2 == 0 else b"Content-Length: 100000\r\n\r\n["))
        socks[i], opened[i] = s, time.monotonic()
    lasted: dict[int, float] = {}
    health: list[float] = []
    end = time.monotonic() + args.seconds + max(args.header_timeout, args.body_timeout) + 5
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        while len(lasted) < len(socks) and time.monotonic() < end:
            for i, s in socks.items():
                if i in lasted:
                    continue
                try:
                    s.send(b"a" if i % 2 == 0 else b" ")
                except OSError:
                    lasted[i] = time.monotonic() - opened[i]
            live = [s for i, s in socks.items() if i not in lasted]
            for s in select.select(live, [], [], 0)[0]:
                i = next(k for k, v in socks.items() if v is s)
                if not s.recv(65536) or i % 2:  # EOF, or the 408
                    lasted.setdefault(i, time.monotonic() - opened[i])
            t0 = time.monotonic()
            assert client.get("/healthz").status_code == 200
            health.append(time.monotonic() - t0)
            time.sleep(0.2)
    for s in socks.values():
        s.close()
    server.should_exit = True
    thread.join(15)
    for kind, parity in (("headers", 0), ("body", 1)):
        got = [v for i, v in lasted.items() if i % 2 == parity]
        total = sum(1 for i in socks if i % 2 == parity)
        print(f"{kind} dribblers: {len(got)} of {total} cut, lasted median "
              f"{statistics.median(got):.1f} s, max {max(got):.1f} s"
              if got else f"{kind} dribblers: none of {total} cut")
    print(f"/healthz while under attack: {len(health)} answers, worst {max(health) * 1000:.0f} ms,"
          f" median {statistics.median(health) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
