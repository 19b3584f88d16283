"""HTTP ingest gateway: agencies POST JSON records; each is checked against the latest raw
schema and produced as Avro to ``raw.<agency>.<dataset>``.

``POST /v1/agencies/{agency}/datasets/{dataset}/records`` with ``Authorization: Bearer
<token>`` and a JSON object (one record) or array (a batch). The reply lists, per record,
``accepted`` (with partition and offset: durable on the broker, ``acks=all``) or ``rejected``
(reason, field, why; never the value). Status: 200 all accepted, 207 some, 422 none.
Errors: 401 no/unknown token; 404 ``no_such_dataset`` (to a valid token) for an agency or
dataset this gateway does not take (a misspelt URL), 403 an existing dataset the token may not
publish to; 415 a body that is not ``application/json``; 413 body over ``max_body_bytes``
(refused while reading) or too many records; 408 a body slower than ``body_timeout_s``; 400
invalid UTF-8 / JSON, a duplicate key, an over-long integer, too deep
(:mod:`shulian.connectors.sources.gateway_body`); 409 same Idempotency-Key still in flight, 422
same key with another body, 503 broker or registry unavailable (retry).
``Idempotency-Key``: a retried POST with the same key and body gets the stored reply and
nothing is produced twice (keys live in memory for ``idempotency_ttl_s``).

Slow clients: request headers must arrive within ``header_timeout_s``
(:mod:`shulian.connectors.sources.gateway_server`), the body within ``body_timeout_s``; a client
that hangs up is one log line. ``/docs`` is never served (FastAPI's page loads its scripts from a
CDN, unreachable on an offline government network); ``/openapi.json`` only with ``openapi:
true`` (then to anyone who can reach the port: it holds the routes, no agencies or datasets).
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
from starlette.requests import ClientDisconnect

from shulian.connectors.coerce import RawSchema, encode_checked, record_key
from shulian.connectors.config import env_secret
from shulian.connectors.metrics import ConnectorMetrics
from shulian.connectors.sources.config import GatewayConfig
from shulian.connectors.sources.gateway_auth import (
    Authenticator,
    AuthOutcome,
    IdempotencyStore,
    token_sha256,
)
from shulian.connectors.sources.gateway_body import (
    BodyError,
    is_json_media_type,
    json_depth,
    parse_records,
)
from shulian.connectors.sources.gateway_server import server_config
from shulian.connectors.sources.plumbing import RawProducer, RawSchemas, raw_subject, raw_topic
from shulian.connectors.sources.verify_api import VerifyRuntime, verify_router
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


_RECORDS_PATH = "/v1/agencies/{agency}/datasets/{dataset}/records"
_RESPONSES: dict[int | str, dict[str, Any]] = {
    207: {"model": IngestReply}, 422: {"model": IngestReply},
    **{s: {"model": ErrorReply} for s in (400, 401, 403, 404, 408, 409, 413, 415, 503)}}
_BODY_SCHEMA = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]}}}}}


def create_app(
    config: GatewayConfig,
    *,
    auth: Authenticator,
    schemas: RawSchemas,
    delivery: AsyncDelivery,
    metrics: ConnectorMetrics,
    verify: VerifyService | None = None,
) -> FastAPI:
    """The gateway's ASGI app. ``/docs`` is never served (its page loads from a CDN);
    ``/openapi.json`` only when ``config.openapi`` is set."""
    app = FastAPI(title="Shulian ingest gateway", version="1",
                  description="Agencies publish JSON records to the data chain.",
                  docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json" if config.openapi else None)
    gateway = _Gateway(config, auth=auth, schemas=schemas, delivery=delivery, metrics=metrics)
    app.get("/healthz")(_healthz)
    app.post(_RECORDS_PATH, response_model=IngestReply, responses=_RESPONSES,
             openapi_extra=_BODY_SCHEMA)(gateway.post_records)
    if verify is not None:  # POST /v1/verify/{dataset}: docs/VERIFY.md
        app.include_router(verify_router(verify, auth, max_body_bytes=config.max_body_bytes))
    return app


async def _healthz() -> dict[str, str]:
    return {"status": "ok"}


class _Gateway:
    """One request's path: who (auth), what (media type, body), once (idempotency), then
    check and produce each record."""

    def __init__(self, config: GatewayConfig, *, auth: Authenticator, schemas: RawSchemas,
                 delivery: AsyncDelivery, metrics: ConnectorMetrics) -> None:
        self.config = config
        self.auth = auth
        self.producer = _Producer(config, schemas=schemas, delivery=delivery, metrics=metrics)
        self.idem = IdempotencyStore(ttl_s=config.idempotency_ttl_s,
                                     max_keys=config.idempotency_max_keys)
        self.m = metrics.source
        self.name = config.name

    async def post_records(
        self,
        agency: str,
        dataset: str,
        request: Request,
        authorization: str | None = Header(default=None),
        idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
    ) -> Response:
        refused = self._authorise(authorization, agency, dataset)
        if refused is not None:
            return refused
        if not is_json_media_type(request.headers.get("content-type")):
            self.m.rejected.labels(self.name, "media_type").inc()
            return _error(415, "unsupported_media_type", "the body must be application/json")
        body = await self._read_body(request)
        if isinstance(body, Response):
            return body
        if idempotency_key is None:
            return await self._answer(agency, dataset, body, None)
        if not 1 <= len(idempotency_key) <= 200:
            return _error(400, "bad_idempotency_key", "Idempotency-Key must be 1-200 chars")
        key = (agency, dataset, idempotency_key)
        digest = hashlib.sha256(body).hexdigest()
        seen = self.idem.begin(key, digest)
        if seen is None:
            return await self._answer(agency, dataset, body, key)
        if seen.body_sha256 != digest:
            return _error(422, "idempotency_key_reused",
                          "this Idempotency-Key was used with a different body")
        if seen.status is None:
            return _error(409, "in_progress",
                          "a request with this Idempotency-Key is still in progress")
        return Response(seen.reply, status_code=seen.status, media_type="application/json",
                        headers={"Idempotent-Replayed": "true"})

    def _authorise(self, authorization: str | None, agency: str, dataset: str
                   ) -> JSONResponse | None:
        outcome = self.auth.check(authorization, agency=agency, dataset=dataset)
        if outcome is AuthOutcome.OK:
            return None
        self.m.rejected.labels(self.name, str(outcome)).inc()
        if outcome is AuthOutcome.UNAUTHENTICATED:
            return _error(401, "unauthenticated", "a valid bearer token is required",
                          **{"WWW-Authenticate": "Bearer"})
        if outcome is AuthOutcome.NOT_FOUND:
            return _error(404, "no_such_dataset",
                          f"no such dataset: this gateway takes no records for agency "
                          f"{agency!r}, dataset {dataset!r} (check the spelling)")
        log.warning("gateway.forbidden", connector=self.name, agency=agency, dataset=dataset)
        return _error(403, "forbidden", "this token may not publish to this dataset")

    async def _read_body(self, request: Request) -> bytes | Response:
        """The body, refused as soon as it is too large or too slow; a client that hangs up
        is logged in one line."""
        limit = self.config.max_body_bytes
        too_large = _error(413, "too_large", f"body exceeds {limit} bytes")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return too_large
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.config.body_timeout_s):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        return too_large
                    chunks.append(chunk)
        except TimeoutError:
            self.m.rejected.labels(self.name, "body_timeout").inc()
            log.warning("gateway.body_timeout", connector=self.name,
                     timeout_s=self.config.body_timeout_s, bytes_read=size)
            return _error(408, "body_timeout",
                          f"the body did not arrive within {self.config.body_timeout_s:g} s",
                          Connection="close")
        except ClientDisconnect:
            log.warning("gateway.client_disconnected", connector=self.name, bytes_read=size)
            return Response(status_code=400)  # nobody is there to read it
        return b"".join(chunks)

    async def _answer(self, agency: str, dataset: str, body: bytes,
                      idem_key: tuple[str, str, str] | None) -> Response:
        try:
            parsed = parse_records(body, max_depth=self.config.max_depth,
                                   max_records=self.config.max_records)
            if isinstance(parsed, BodyError):
                status, reply = parsed.status, json.dumps(
                    {"error": parsed.error, "detail": parsed.detail}).encode()
            else:
                status, reply = await self.producer.ingest(agency, dataset, parsed)
        except InfrastructureError as exc:
            if idem_key is not None:
                self.idem.abandon(idem_key)
            kind = "registry" if isinstance(exc, RegistryError) else "broker"
            self.m.errors.labels(self.name, kind).inc()
            log.error("gateway.unavailable", connector=self.name, kind=kind, error=str(exc))
            return _error(503, f"{kind}_unavailable", str(exc), **{"Retry-After": "5"})
        except BaseException:
            if idem_key is not None:
                self.idem.abandon(idem_key)
            raise
        if idem_key is not None and status in (200, 207, 400, 422):
            self.idem.finish(idem_key, status=status, reply=reply)
        return Response(reply, status_code=status, media_type="application/json")


class _Producer:
    """Checks each record against the latest raw schema and produces the valid ones."""

    def __init__(self, config: GatewayConfig, *, schemas: RawSchemas, delivery: AsyncDelivery,
                 metrics: ConnectorMetrics) -> None:
        self.schemas = schemas
        self.delivery = delivery
        self.m = metrics.source
        self.name = config.name
        self.keys = {(a, r.dataset): r.key_fields for a, acc in config.agencies.items()
                     for r in acc.datasets}

    async def ingest(self, agency: str, dataset: str, records: list[Any]) -> tuple[int, bytes]:
        started = time.monotonic()
        self.m.records_in.labels(self.name).inc(len(records))
        schema: RawSchema = await asyncio.to_thread(self.schemas.get, agency, dataset)
        topic = raw_topic(agency, dataset)
        key_fields = self.keys.get((agency, dataset), ())
        results: list[RecordResult | None] = [None] * len(records)
        pending: list[tuple[int, asyncio.Future[tuple[int, int]]]] = []
        for i, rec in enumerate(records):
            encoded = encode_checked(schema, rec)
            if isinstance(encoded, Rejected):
                results[i] = RecordResult(index=i, status="rejected", reason=str(encoded.reason),
                                          field=encoded.field, detail=encoded.detail)
                self.m.rejected.labels(self.name, str(encoded.reason)).inc()
                continue
            key = record_key(rec, key_fields) if isinstance(rec, dict) else None
            pending.append((i, asyncio.ensure_future(
                self.delivery.send(topic, key, encoded.value))))
        if pending:
            await self._acknowledged(pending, results, topic, started)
        done = [r for r in results if r is not None]
        accepted = sum(1 for r in done if r.status == "accepted")
        reply = IngestReply(agency=agency, dataset=dataset, topic=topic,
                            schema_id=schema.schema_id, accepted=accepted,
                            rejected=len(done) - accepted, results=done)
        status = 200 if accepted == len(done) else 207 if accepted else 422
        log.info("gateway.ingested", connector=self.name, agency=agency, dataset=dataset,
                 accepted=accepted, rejected=len(done) - accepted, status=status)
        return status, reply.model_dump_json(exclude_none=True).encode()

    async def _acknowledged(self, pending: list[tuple[int, asyncio.Future[tuple[int, int]]]],
                            results: list[RecordResult | None], topic: str,
                            started: float) -> None:
        """Wait for every ack; BrokerError if any failed (the reply would be a lie)."""
        self.m.lag.labels(self.name).inc(len(pending))
        try:
            acks = await asyncio.gather(*(f for _, f in pending), return_exceptions=True)
        finally:
            self.m.lag.labels(self.name).dec(len(pending))
        failed = [a for a in acks if isinstance(a, BaseException)]
        for (i, _), ack in zip(pending, acks, strict=True):
            if not isinstance(ack, BaseException):
                results[i] = RecordResult(index=i, status="accepted", partition=ack[0],
                                          offset=ack[1])
        ok = len(pending) - len(failed)
        self.m.records_out.labels(self.name, topic).inc(ok)
        self.m.delivery_latency.labels(self.name).observe(time.monotonic() - started)
        if failed:
            raise BrokerError(f"{len(failed)} of {len(pending)} records not acknowledged "
                              f"({ok} were): {failed[0]}")


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
        server = uvicorn.Server(server_config(
            self.app, host=self.host, port=self.port,
            header_timeout_s=self.config.header_timeout_s, connector=self.name,
            ssl=uvicorn_ssl(self.settings)))
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
        if self.verify is not None and (failed := self.verify.failure()) is not None:
            return failed  # a store or the list follower stopped: stop answering
        if self._thread is not None and not self._thread.is_alive() and (
                self._server is not None and not self._server.should_exit):
            return InfrastructureError(f"gateway {self.name} stopped serving")
        return None
