"""HTTP ingest gateway: agencies POST JSON records; each is checked against the latest raw
schema and produced as Avro to ``raw.<agency>.<dataset>``.

``POST /v1/agencies/{agency}/datasets/{dataset}/records`` with ``Authorization: Bearer
<token>`` and a JSON object (one record) or array (a batch). The reply lists, per record,
``accepted`` (with partition and offset: durable on the broker, ``acks=all``) or ``rejected``
(reason, field, why; never the value). Status: 200 all accepted, 207 some, 422 none.
Errors: 401 no/unknown token, 403 another agency's dataset, 413 body over ``max_body_bytes``
(refused while reading), 400 invalid UTF-8 / JSON / too deep, 409 same Idempotency-Key still
in flight, 422 same key with another body, 503 broker or registry unavailable (retry).
``Idempotency-Key``: a retried POST with the same key and body gets the stored reply and
nothing is produced twice (keys live in memory for ``idempotency_ttl_s``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import time
from typing import Any

import uvicorn
from confluent_kafka import KafkaError, Message
from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from connectors.coerce import RawSchema, encode_checked, record_key
from connectors.config import env_secret
from connectors.metrics import ConnectorMetrics
from connectors.sources.config import GatewayConfig
from connectors.sources.gateway_auth import (
    Authenticator,
    AuthOutcome,
    IdempotencyStore,
    token_sha256,
)
from connectors.sources.plumbing import RawProducer, RawSchemas, raw_subject, raw_topic
from connectors.sources.verify_api import VerifyRuntime, verify_router
from shulian.errors import BrokerError, InfrastructureError, RegistryError
from shulian.log import get_logger
from shulian.logic.result import Rejected
from shulian.perimeter.tls import uvicorn_ssl
from shulian.settings import Settings
from shulian.verification.service import VerifyService

__all__ = ["GatewaySource", "create_app", "json_depth"]

log = get_logger(__name__)


class RecordResult(BaseModel):
    index: int
    status: str  # "accepted" | "rejected"
    partition: int | None = None
    offset: int | None = None
    reason: str | None = None
    field: str | None = None
    detail: str | None = None


class IngestReply(BaseModel):
    agency: str
    dataset: str
    topic: str
    schema_id: int
    accepted: int
    rejected: int
    results: list[RecordResult]


class ErrorReply(BaseModel):
    error: str
    detail: str


def json_depth(obj: Any, *, limit: int) -> int:
    """Nesting depth of a parsed JSON value, counting stops just past ``limit``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        node, d = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, d)
            if deepest > limit:
                return deepest
            children = node.values() if isinstance(node, dict) else node
            stack.extend((c, d + 1) for c in children if isinstance(c, dict | list))
    return deepest


def _error(status: int, error: str, detail: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status,
                        headers=headers or None)


class AsyncDelivery:
    """Produce and await the broker's acknowledgement from asyncio (a poll thread runs the
    producer's callbacks)."""

    def __init__(self, producer: RawProducer) -> None:
        self.producer = producer
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._poll, name="gateway-producer", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.05)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.producer.flush()

    async def send(self, topic: str, key: bytes | None, value: bytes) -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[int, int]] = loop.create_future()

        def done(err: KafkaError | None, msg: Message) -> None:
            def settle() -> None:
                if fut.done():
                    return
                if err is not None:
                    fut.set_exception(BrokerError(f"produce to {topic} failed: {err.str()}"))
                else:
                    fut.set_result((msg.partition() or 0, msg.offset() or 0))
            loop.call_soon_threadsafe(settle)

        self.producer.produce(topic, key=key, value=value, on_delivery=done)
        return await fut


def create_app(
    config: GatewayConfig,
    *,
    auth: Authenticator,
    schemas: RawSchemas,
    delivery: AsyncDelivery,
    metrics: ConnectorMetrics,
    verify: VerifyService | None = None,
) -> FastAPI:
    """The gateway's ASGI app (OpenAPI at /openapi.json, docs at /docs)."""
    app = FastAPI(title="Shulian ingest gateway", version="1",
                  description="Agencies publish JSON records to the data chain.")
    idem = IdempotencyStore(ttl_s=config.idempotency_ttl_s,
                            max_keys=config.idempotency_max_keys)
    m = metrics.source
    name = config.name
    keys = {(a, r.dataset): r.key_fields for a, acc in config.agencies.items()
            for r in acc.datasets}

    if verify is not None:  # POST /v1/verify/{dataset}: docs/VERIFY.md
        app.include_router(verify_router(verify, auth, max_body_bytes=config.max_body_bytes))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(
        "/v1/agencies/{agency}/datasets/{dataset}/records",
        response_model=IngestReply,
        responses={207: {"model": IngestReply}, 400: {"model": ErrorReply},
                   401: {"model": ErrorReply}, 403: {"model": ErrorReply},
                   409: {"model": ErrorReply}, 413: {"model": ErrorReply},
                   422: {"model": IngestReply}, 503: {"model": ErrorReply}},
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
            "schema": {"oneOf": [{"type": "object"},
                                 {"type": "array", "items": {"type": "object"}}]}}}}},
    )
    async def post_records(
        agency: str,
        dataset: str,
        request: Request,
        authorization: str | None = Header(default=None),
        idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
    ) -> Response:
        outcome = auth.check(authorization, agency=agency, dataset=dataset)
        if outcome is AuthOutcome.UNAUTHENTICATED:
            m.rejected.labels(name, "unauthenticated").inc()
            return _error(401, "unauthenticated", "a valid bearer token is required",
                          **{"WWW-Authenticate": "Bearer"})
        if outcome is AuthOutcome.FORBIDDEN:
            m.rejected.labels(name, "forbidden").inc()
            log.warning("gateway.forbidden", connector=name, agency=agency, dataset=dataset)
            return _error(403, "forbidden", "this token may not publish to this dataset")
        # --- the body, refused as soon as it is too large
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > config.max_body_bytes:
            return _error(413, "too_large", f"body exceeds {config.max_body_bytes} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > config.max_body_bytes:
                return _error(413, "too_large", f"body exceeds {config.max_body_bytes} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
        # --- idempotency
        idem_key: tuple[str, str, str] | None = None
        if idempotency_key is not None:
            if not 1 <= len(idempotency_key) <= 200:
                return _error(400, "bad_idempotency_key", "Idempotency-Key must be 1-200 chars")
            idem_key = (agency, dataset, idempotency_key)
            digest = hashlib.sha256(body).hexdigest()
            seen = idem.begin(idem_key, digest)
            if seen is not None:
                if seen.body_sha256 != digest:
                    return _error(422, "idempotency_key_reused",
                                  "this Idempotency-Key was used with a different body")
                if seen.status is None:
                    return _error(409, "in_progress",
                                  "a request with this Idempotency-Key is still in progress")
                return Response(seen.reply, status_code=seen.status,
                                media_type="application/json",
                                headers={"Idempotent-Replayed": "true"})
        try:
            status, reply = await _ingest(agency, dataset, body)
        except InfrastructureError as exc:
            if idem_key is not None:
                idem.abandon(idem_key)
            kind = "registry" if isinstance(exc, RegistryError) else "broker"
            m.errors.labels(name, kind).inc()
            log.error("gateway.unavailable", connector=name, kind=kind, error=str(exc))
            return _error(503, f"{kind}_unavailable", str(exc), **{"Retry-After": "5"})
        except BaseException:
            if idem_key is not None:
                idem.abandon(idem_key)
            raise
        if idem_key is not None and status in (200, 207, 400, 422):
            idem.finish(idem_key, status=status, reply=reply)
        return Response(reply, status_code=status, media_type="application/json")

    async def _ingest(agency: str, dataset: str, body: bytes) -> tuple[int, bytes]:
        def err(status: int, error: str, detail: str) -> tuple[int, bytes]:
            return status, json.dumps({"error": error, "detail": detail}).encode()

        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            return err(400, "invalid_utf8", f"body is not valid UTF-8 (byte {exc.start})")
        try:
            doc = json.loads(text)
        except RecursionError:
            return err(400, "too_deep", f"JSON nested deeper than {config.max_depth}")
        except json.JSONDecodeError as exc:
            return err(400, "invalid_json",
                       f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
        if json_depth(doc, limit=config.max_depth) > config.max_depth:
            return err(400, "too_deep", f"JSON nested deeper than {config.max_depth}")
        records = doc if isinstance(doc, list) else [doc]
        if not records:
            return err(422, "empty", "no records in the body")
        if len(records) > config.max_records:
            return err(413, "too_many_records",
                       f"{len(records)} records; at most {config.max_records} per request")
        started = time.monotonic()
        m.records_in.labels(name).inc(len(records))
        schema: RawSchema = await asyncio.to_thread(schemas.get, agency, dataset)
        topic = raw_topic(agency, dataset)
        key_fields = keys.get((agency, dataset), ())
        results: list[RecordResult | None] = [None] * len(records)
        pending: list[tuple[int, asyncio.Future[tuple[int, int]]]] = []
        for i, rec in enumerate(records):
            encoded = encode_checked(schema, rec)
            if isinstance(encoded, Rejected):
                results[i] = RecordResult(index=i, status="rejected", reason=str(encoded.reason),
                                          field=encoded.field, detail=encoded.detail)
                m.rejected.labels(name, str(encoded.reason)).inc()
                continue
            key = record_key(rec, key_fields) if isinstance(rec, dict) else None
            pending.append((i, asyncio.ensure_future(delivery.send(topic, key, encoded.value))))
        if pending:
            m.lag.labels(name).inc(len(pending))
            try:
                acks = await asyncio.gather(*(f for _, f in pending), return_exceptions=True)
            finally:
                m.lag.labels(name).dec(len(pending))
            failed = [a for a in acks if isinstance(a, BaseException)]
            for (i, _), ack in zip(pending, acks, strict=True):
                if not isinstance(ack, BaseException):
                    results[i] = RecordResult(index=i, status="accepted", partition=ack[0],
                                              offset=ack[1])
            ok = len(pending) - len(failed)
            m.records_out.labels(name, topic).inc(ok)
            m.delivery_latency.labels(name).observe(time.monotonic() - started)
            if failed:
                raise BrokerError(f"{len(failed)} of {len(pending)} records not acknowledged "
                                  f"({ok} were): {failed[0]}")
        done = [r for r in results if r is not None]
        accepted = sum(1 for r in done if r.status == "accepted")
        reply = IngestReply(agency=agency, dataset=dataset, topic=topic,
                            schema_id=schema.schema_id, accepted=accepted,
                            rejected=len(done) - accepted, results=done)
        status = 200 if accepted == len(done) else 207 if accepted else 422
        log.info("gateway.ingested", connector=name, agency=agency, dataset=dataset,
                 accepted=accepted, rejected=len(done) - accepted, status=status)
        return status, reply.model_dump_json(exclude_none=True).encode()

    return app


def build_authenticator(config: GatewayConfig) -> Authenticator:
    """Token hashes from the config (env-held tokens are hashed as soon as they are read)."""
    hashes: dict[str, str] = {}
    for agency, acc in config.agencies.items():
        if acc.token_sha256 is not None:
            hashes[agency] = acc.token_sha256
        else:
            assert acc.token_env is not None
            secret = env_secret(acc.token_env, field=f"agencies.{agency}.token_env")
            hashes[agency] = token_sha256(secret.get_secret_value())
    datasets = {a: frozenset(r.dataset for r in acc.datasets)
                for a, acc in config.agencies.items()}
    return Authenticator(hashes, datasets)


class GatewaySource:
    """The gateway as a connector: uvicorn in a thread, one producer, graceful stop."""

    def __init__(self, config: GatewayConfig, *, settings: Settings,
                 metrics: ConnectorMetrics) -> None:
        self.name = config.name
        self.config = config
        self.settings = settings
        self.host = config.host or settings.gateway_host
        self.port = config.port if config.port is not None else settings.gateway_port
        self.producer = RawProducer(settings, timeout_s=config.produce_timeout_s)
        self.schemas = RawSchemas(settings.registry_url, ttl_s=config.schema_ttl_s,
                                  auth=settings.registry_auth_conf())
        self.delivery = AsyncDelivery(self.producer)
        self.verify = (VerifyRuntime(settings=settings, name=config.name,
                                     datasets=config.verify_datasets)
                       if config.verify_datasets else None)
        self.app = create_app(config, auth=build_authenticator(config), schemas=self.schemas,
                              delivery=self.delivery, metrics=metrics,
                              verify=None if self.verify is None else self.verify.service)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    def _pairs(self) -> list[tuple[str, str]]:
        return [(a, r.dataset) for a, acc in self.config.agencies.items() for r in acc.datasets]

    def setup(self) -> None:
        """Broker reachable with every raw topic; registry reachable with every raw subject."""
        self.producer.check(raw_topic(a, d) for a, d in self._pairs())
        for a, d in self._pairs():
            self.schemas.get(a, d)
        if self.verify is not None:
            self.verify.start()
        log.info("gateway.ready", connector=self.name, subjects=[raw_subject(a, d)
                                                                  for a, d in self._pairs()])

    def start(self) -> None:
        self.delivery.start()
        cfg = uvicorn.Config(self.app, host=self.host, port=self.port, log_config=None,
                             access_log=False, lifespan="off", timeout_graceful_shutdown=10,
                             **uvicorn_ssl(self.settings))
        server = uvicorn.Server(cfg)
        self._server = server

        def serve() -> None:
            try:
                asyncio.run(server.serve())
            except BaseException as exc:  # SystemExit from a failed bind, among others
                self._failure = exc

        self._thread = threading.Thread(target=serve, name=f"gateway-{self.name}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not server.started:
            server.should_exit = True
            raise InfrastructureError(f"gateway {self.name} cannot listen on "
                                      f"{self.host}:{self.port}")
        if self.port == 0:  # an ephemeral port (tests): report the real one
            self.port = server.servers[0].sockets[0].getsockname()[1]
        log.info("gateway.listening", connector=self.name, url=self.url,
                 pid=os.getpid())

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout_s: float = 30.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.delivery.stop()
        if self.verify is not None:
            self.verify.stop()
        log.info("gateway.stopped", connector=self.name)

    def failure(self) -> BaseException | None:
        if self._failure is not None:
            return self._failure
        if self._thread is not None and not self._thread.is_alive() and (
                self._server is not None and not self._server.should_exit):
            return InfrastructureError(f"gateway {self.name} stopped serving")
        return None
