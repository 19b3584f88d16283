"""``POST /v1/verify/{dataset}`` on the ingest gateway: joint verification (docs/VERIFY.md).

Thin: the caller is identified by the gateway's bearer tokens before anything else is looked
at (401 otherwise, the dataset and the body unread), the body is read within the gateway's
size limit and parsed, and :class:`shulian.verification.service.VerifyService` decides and
audits. The answer is ``match`` / ``no_match`` / ``unknown`` per claim, nothing more.
"""

from __future__ import annotations

import asyncio
import json
import zlib

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse

from connectors.sources.gateway_auth import Authenticator
from shulian.chain.topology import Topology
from shulian.errors import ConfigError, ConfigIssue, InfrastructureError
from shulian.io.changelog import ChangelogTable, VerificationAuditWriter
from shulian.log import get_logger
from shulian.settings import Settings
from shulian.verification.service import VerifyService

__all__ = ["VerifyRuntime", "verify_router"]

log = get_logger(__name__)


def _error(status: int, error: str, detail: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status,
                        headers=headers or None)


def verify_router(service: VerifyService, auth: Authenticator, *,
                  max_body_bytes: int) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/verify/{dataset}")
    async def verify(dataset: str, request: Request,
                     authorization: str | None = Header(default=None)) -> JSONResponse:
        agency = auth.identify(authorization)
        if agency is None:
            return _error(401, "unauthenticated", "a valid bearer token is required",
                          **{"WWW-Authenticate": "Bearer"})
        size = 0
        chunks: list[bytes] = []
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                return _error(413, "too_large", f"body exceeds {max_body_bytes} bytes")
            chunks.append(chunk)
        try:
            doc = json.loads(b"".join(chunks).decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return _error(400, "invalid_json", "the body is not a JSON object in UTF-8")
        try:
            reply = await asyncio.to_thread(service.verify, agency, dataset, doc)
        except InfrastructureError as exc:
            log.error("verify.unavailable", agency=agency, dataset=dataset, error=str(exc))
            return _error(503, "unavailable", "the verification audit or store is unavailable",
                          **{"Retry-After": "5"})
        return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers or None)

    return router


class VerifyRuntime:
    """The stores (rebuilt from their changelogs) and audit writers of a gateway's verify
    datasets, and the service over them. ``start`` blocks until every store is rebuilt."""

    def __init__(self, *, settings: Settings, name: str, datasets: tuple[str, ...]) -> None:
        from shulian.catalog.load import load_catalog

        key = settings.hmac_master_key
        if key is None or not key.get_secret_value():
            raise ConfigError([ConfigIssue("<environment>", "SHULIAN_HMAC_MASTER_KEY",
                                           "verification digests need the master key")])
        catalog = load_catalog(settings.catalog_dir, schemas_dir=settings.schemas_dir)
        t = Topology()
        unknown = [d for d in datasets if d not in catalog.datasets]
        if unknown:
            raise ConfigError([ConfigIssue(f"<connector {name}>", "verify_datasets",
                                           f"unknown datasets {unknown}")])
        partition = zlib.crc32(name.encode()) % t.partitions
        self.tables = {d: ChangelogTable(settings, t.verify_changelog(d)) for d in datasets}
        self.audit = {d: VerificationAuditWriter(settings, t.verify_audit(d), partition)
                      for d in datasets}
        self.service = VerifyService(catalog=catalog, sharing_list=catalog.current_list,
                                     stores=self.tables, audit=self.audit,
                                     master_key=key.get_secret_value().encode("utf-8"),
                                     worker=name, clock=settings.decision_clock())

    def start(self) -> None:
        for d, table in self.tables.items():
            table.start()
            self.audit[d].resume()

    def stop(self) -> None:
        for table in self.tables.values():
            table.stop()
