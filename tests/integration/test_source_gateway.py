"""HTTP ingest gateway against the real broker and registry: auth, limits, per-record
reasons, idempotency, and records landing decodable on raw.<agency>.<dataset>."""

from __future__ import annotations

import asyncio
import json
import select
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from shulian.connectors.metrics import ConnectorMetrics
from shulian.connectors.sources.config import GatewayConfig
from shulian.connectors.sources.gateway import (
    AsyncDelivery,
    GatewaySource,
    build_authenticator,
    create_app,
)
from shulian.connectors.sources.gateway_auth import token_sha256
from shulian.connectors.sources.plumbing import RawProducer, RawSchemas
from shulian.embedded.net import wait_until
from shulian.settings import Settings, load_settings
from tests.fixtures.registry import RegistryProcess
from tests.fixtures.sources import household, read_topic, setup_dataset

pytestmark = pytest.mark.integration


@pytest.fixture
def gw(bootstrap: str, registry: RegistryProcess, unique: str
       ) -> Iterator[tuple[GatewayConfig, Settings]]:
    settings = load_settings(bootstrap_servers=bootstrap, registry_url=registry.url)
    a, b = f"a{unique}", f"b{unique}"
    setup_dataset(settings, a)
    setup_dataset(settings, b)
    config = GatewayConfig.model_validate({
        "name": f"gw-{unique}", "port": 0, "max_body_bytes": 4096, "max_records": 50,
        "agencies": {
            a: {"token_sha256": token_sha256("token-a"),
                "datasets": [{"dataset": "household_change", "key_fields": ["LSH"]}]},
            b: {"token_sha256": token_sha256("token-b"), "datasets": ["household_change"]},
        }})
    yield config, settings


def run_asgi(config: GatewayConfig, settings: Settings, calls: Any) -> Any:
    """Run ``calls(client)`` against the ASGI app (no server), with a real producer."""
    producer = RawProducer(settings, timeout_s=10)
    delivery = AsyncDelivery(producer)
    app = create_app(config, auth=build_authenticator(config),
                     schemas=RawSchemas(settings.registry_url), delivery=delivery,
                     metrics=ConnectorMetrics.create(CollectorRegistry()))

    async def main() -> Any:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            return await calls(client)

    delivery.start()
    try:
        return asyncio.run(main())
    finally:
        delivery.stop()


def url(agency: str) -> str:
    return f"/v1/agencies/{agency}/datasets/household_change/records"


def test_auth_limits_and_body_errors(gw: tuple[GatewayConfig, Settings]) -> None:
    config, settings = gw
    a, b = list(config.agencies)
    ok_auth = {"Authorization": "Bearer token-a", "Content-Type": "application/json"}
    digits = b'[{"LSH": ' + b"9" * 4000 + b"}]"  # under max_body_bytes here

    async def calls(client: httpx.AsyncClient) -> dict[str, httpx.Response]:
        async def too_big() -> Any:
            for _ in range(10):  # streamed without Content-Length
                yield b"[" + b" " * 1000
        return {
            "none": await client.post(url(a), json=household(1)),
            "wrong": await client.post(url(a), json=household(1),
                                       headers={"Authorization": "Bearer nope"}),
            "cross": await client.post(url(b), json=household(1), headers=ok_auth),
            "other_ds": await client.post(f"/v1/agencies/{a}/datasets/business_licence/records",
                                          json=household(1), headers=ok_auth),
            "big": await client.post(url(a), content=b"[" + b" " * 5000 + b"]",
                                     headers=ok_auth),
            "big_stream": await client.post(url(a), content=too_big(), headers=ok_auth),
            "utf8": await client.post(url(a), content=b'{"XM": "\xff\xfe"}', headers=ok_auth),
            "json": await client.post(url(a), content=b'{"XM": ', headers=ok_auth),
            "deep": await client.post(url(a), content=b"[" * 20 + b"]" * 20, headers=ok_auth),
            "deeper": await client.post(url(a), content=b"[" * 2000 + b"]" * 2000,
                                        headers=ok_auth),
            "misspelt": await client.post(f"/v1/agencies/{a}/datasets/househld_change/records",
                                          json=household(1), headers=ok_auth),
            "misspelt_anon": await client.post(
                f"/v1/agencies/{a}/datasets/househld_change/records", json=household(1)),
            "no_type": await client.post(url(a), content=b"{}",
                                         headers={"Authorization": "Bearer token-a"}),
            "csv": await client.post(url(a), content=b"LSH\n1\n", headers={
                **ok_auth, "Content-Type": "text/csv"}),
            "typed": await client.post(url(a), content=json.dumps(household(1)), headers={
                **ok_auth, "Content-Type": "Application/JSON; charset=utf-8"}),
            "digits": await client.post(url(a), content=digits, headers=ok_auth),
            "dup": await client.post(url(a), content=b'{"LSH": "a", "LSH": "b"}',
                                     headers=ok_auth),
            "nan": await client.post(url(a), content=b'{"LSH": NaN}', headers=ok_auth),
            "health": await client.get("/healthz"),
            "openapi": await client.get("/openapi.json"),
            "docs": await client.get("/docs"),
        }

    r = run_asgi(config, settings, calls)
    assert r["none"].status_code == 401
    assert r["none"].headers["www-authenticate"] == "Bearer"
    assert r["wrong"].status_code == 401
    assert r["cross"].status_code == 403
    assert r["other_ds"].status_code == 404  # no agency publishes it through this gateway
    assert r["misspelt"].status_code == 404
    assert r["misspelt"].json()["error"] == "no_such_dataset"
    assert "househld_change" in r["misspelt"].json()["detail"]
    assert r["misspelt_anon"].status_code == 401  # names are checked for a valid token only
    assert r["no_type"].status_code == 415 and r["csv"].status_code == 415
    assert r["typed"].status_code == 200, r["typed"].text
    assert r["digits"].status_code == 400 and r["digits"].json()["error"] == "number_too_long"
    assert r["dup"].status_code == 400 and r["dup"].json()["error"] == "duplicate_key"
    assert r["nan"].status_code == 400 and r["nan"].json()["error"] == "invalid_json"
    assert r["openapi"].status_code == 404 and r["docs"].status_code == 404  # off by default
    assert r["big"].status_code == 413
    assert r["big_stream"].status_code == 413
    assert r["utf8"].status_code == 400 and r["utf8"].json()["error"] == "invalid_utf8"
    assert r["json"].status_code == 400 and r["json"].json()["error"] == "invalid_json"
    assert r["deep"].status_code == 400 and r["deep"].json()["error"] == "too_deep"
    assert r["deeper"].status_code == 400  # past the size limit or too deep, never a crash
    assert r["health"].json() == {"status": "ok"}

    async def docs(client: httpx.AsyncClient) -> list[httpx.Response]:
        return [await client.get("/openapi.json"), await client.get("/docs")]

    spec, page = run_asgi(config.model_copy(update={"openapi": True}), settings, docs)
    assert "/v1/agencies/{agency}/datasets/{dataset}/records" in spec.json()["paths"]
    assert page.status_code == 404  # its page would load from a CDN: never served


def test_per_record_reasons_and_idempotency(gw: tuple[GatewayConfig, Settings]) -> None:
    config, settings = gw
    a = next(iter(config.agencies))
    auth = {"Authorization": "Bearer token-a"}
    bad_type = {**household(2), "XM": 12.5}
    missing = {k: v for k, v in household(3).items() if k != "SFZH"}
    batch = [household(1), bad_type, missing, household(4)]

    async def calls(client: httpx.AsyncClient) -> list[httpx.Response]:
        key = {**auth, "Idempotency-Key": "batch-1"}
        first = await client.post(url(a), json=batch, headers=key)
        again = await client.post(url(a), json=batch, headers=key)
        changed = await client.post(url(a), json=batch[:1], headers=key)
        none_ok = await client.post(url(a), json=[bad_type], headers=auth)
        return [first, again, changed, none_ok]

    first, again, changed, none_ok = run_asgi(config, settings, calls)
    assert first.status_code == 207, first.text
    body = first.json()
    assert (body["accepted"], body["rejected"]) == (2, 2)
    res = body["results"]
    assert [x["status"] for x in res] == ["accepted", "rejected", "rejected", "accepted"]
    assert (res[1]["reason"], res[1]["field"]) == ("decode_error", "XM")
    assert (res[2]["reason"], res[2]["field"]) == ("missing_field", "SFZH")
    assert "12.5" not in first.text and "440106199001011234" not in first.text
    assert again.status_code == 207 and again.json() == body
    assert again.headers["idempotent-replayed"] == "true"
    assert changed.status_code == 422
    assert changed.json()["error"] == "idempotency_key_reused"
    assert none_ok.status_code == 422
    # produced once despite the retry: exactly the two accepted records, keyed by LSH
    got = read_topic(settings, f"raw.{a}.household_change", 2)
    assert sorted(k or b"" for k, _ in got) == [b"L000001", b"L000004"]
    assert sorted(v["LSH"] for _, v in got) == ["L000001", "L000004"]
    assert {(x["partition"], x["offset"]) for x in res if x["status"] == "accepted"}


def test_real_server_end_to_end(gw: tuple[GatewayConfig, Settings]) -> None:
    config, settings = gw
    b = list(config.agencies)[1]
    config = config.model_copy(update={"max_body_bytes": 65536})
    source = GatewaySource(config, settings=settings,
                           metrics=ConnectorMetrics.create(CollectorRegistry()))
    source.setup()
    source.start()
    try:
        records = [household(i) for i in range(10, 30)]
        r = httpx.post(f"{source.url}{url(b)}", content=json.dumps(records),
                       headers={"Authorization": "Bearer token-b",
                                "Content-Type": "application/json"}, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["accepted"] == 20
        assert httpx.get(f"{source.url}/healthz", timeout=5).status_code == 200
    finally:
        source.stop()
    assert source.failure() is None
    got = read_topic(settings, f"raw.{b}.household_change", 20)
    assert sorted(v["LSH"] for _, v in got) == sorted(x["LSH"] for x in records)
    assert all(k is None for k, _ in got)  # agency b has no key fields


def _cut(socks: dict[int, socket.socket], received: dict[int, bytes]) -> set[int]:
    """Which sockets the server closed (EOF read, or a send refused); what each received."""
    closed: set[int] = set()
    readable, _, _ = select.select(list(socks.values()), [], [], 0)
    for i, s in socks.items():
        if s in readable:
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            received[i] = received.get(i, b"") + data
            if not data:
                closed.add(i)
    return closed


def test_slow_clients_are_cut_and_others_answered(
    gw: tuple[GatewayConfig, Settings], caplog: pytest.LogCaptureFixture
) -> None:
    """Real sockets against a real uvicorn on a free loopback port: 40 clients dribble their
    headers or their body a byte at a time; each is cut at its deadline (headers: closed; body:
    408) while a normal client is answered; one that hangs up mid-body is one log line. The
    300-socket, 30-second version is bench/gateway_slowloris.py."""
    config, settings = gw
    b = list(config.agencies)[1]
    config = config.model_copy(update={"header_timeout_s": 1.0, "body_timeout_s": 1.0})
    source = GatewaySource(config, settings=settings,
                           metrics=ConnectorMetrics.create(CollectorRegistry()))
    source.setup()
    source.start()
    head = (f"POST {url(b)} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer token-b\r\n"
            f"Content-Type: application/json\r\n").encode()
    socks: dict[int, socket.socket] = {}
    received: dict[int, bytes] = {}
    try:
        with capture_logs() as logs:
            for i in range(40):
                s = socket.create_connection((source.host, source.port), timeout=5)
                s.sendall(head + b"X-Pad: " if i % 2 == 0
                          else head + b"Content-Length: 4000\r\n\r\n[")
                socks[i] = s
            answered = httpx.post(f"{source.url}{url(b)}", json=[household(1)], timeout=10,
                                  headers={"Authorization": "Bearer token-b"})
            assert answered.status_code == 200, answered.text
            cut: set[int] = set()
            for _ in range(150):  # at most ~15 s; the deadlines are 1 s
                for i, s in socks.items():
                    if i not in cut:
                        try:
                            s.send(b"a" if i % 2 == 0 else b" ")
                        except OSError:
                            cut.add(i)
                cut |= _cut({i: s for i, s in socks.items() if i not in cut}, received)
                if len(cut) == len(socks):
                    break
                time.sleep(0.1)
            assert cut == set(socks)
            assert all(received.get(i, b"") == b"" for i in socks if i % 2 == 0)
            assert all(received.get(i, b"").startswith(b"HTTP/1.1 408") for i in socks if i % 2)
            # still answering after the storm
            assert httpx.get(f"{source.url}/healthz", timeout=5).status_code == 200
            # a client that hangs up in the middle of its body
            s = socket.create_connection((source.host, source.port), timeout=5)
            s.sendall(head + b"Content-Length: 1000\r\n\r\n[{")
            s.close()
            assert wait_until(lambda: any(e["event"] == "gateway.client_disconnected"
                                          for e in logs), timeout_s=10)
    finally:
        for s in socks.values():
            s.close()
        source.stop()
    assert source.failure() is None
    events = [e["event"] for e in logs]
    assert events.count("gateway.client_disconnected") == 1
    assert events.count("gateway.header_timeout") == 20
    assert events.count("gateway.body_timeout") == 20
    assert not [r for r in caplog.records if r.exc_info]  # no traceback anywhere
