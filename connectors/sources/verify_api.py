"""``POST /v1/verify/{dataset}`` on the ingest gateway: joint verification (docs/VERIFY.md).

Thin: the caller is identified by the gateway's bearer tokens before anything else is looked
at (401 otherwise, the dataset and the body unread), the body is read within the gateway's
size limit and parsed, and :class:`shulian.verification.service.VerifyService` decides and
audits. The answer is ``match`` / ``no_match`` / ``unknown`` per claim, nothing more.
"""

from __future__ import annotations

import asyncio
import json
import threading
import zlib
from collections.abc import Callable, Sequence

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse

from shulian.catalog.keys import SigningKey
from shulian.chain.topology import Topology
from shulian.clock import Clock
from shulian.connectors.sources.gateway_auth import Authenticator
from shulian.errors import ConfigError, ConfigIssue, InfrastructureError
from shulian.io.changelog import ChangelogTable, VerificationAuditWriter, read_since
from shulian.io.control import ControlFollower
from shulian.io.trust import chain_trust
from shulian.log import get_logger
from shulian.logic.audit import parse_audit
from shulian.logic.ratelimit import day_start
from shulian.settings import Settings
from shulian.verification.lists import ListFollower
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


class _Checkpointed:
    """An audit writer that offers a checkpoint after each acknowledged write."""

    def __init__(self, writer: VerificationAuditWriter, after: Callable[[], None]) -> None:
        self._writer, self._after = writer, after

    def write(self, records: list[dict[str, object]]) -> None:
        self._writer.write(records)
        self._after()


def _checkpointer(settings: Settings, signer: SigningKey,
                  heads: Callable[[], Sequence[tuple[str, int, int, str]]], *, clock: Clock,
                  worker: str) -> Callable[[], None] | None:
    """The gateway's audit checkpoints to the store ``SHULIAN_AUDIT_CHECKPOINT_STORE`` names
    (as the worker's: :mod:`shulian.io.checkpointer`), or None when no store is set."""
    from shulian.io.checkpointer import Checkpointer
    from shulian.io.checkpoints import open_store

    spec = settings.audit_checkpoint_store
    store = open_store(None if spec is None else spec.get_secret_value())
    if store is None:
        return None
    return Checkpointer(store, signer, heads, clock=clock, worker=worker,
                        every_records=settings.audit_checkpoint_records,
                        every_s=settings.audit_checkpoint_seconds).maybe


class VerifyRuntime:
    """The stores (rebuilt from their changelogs) and audit writers of a gateway's verify
    datasets, the service over them, and the list version in force (followed on the control
    topic, judged by the worker's ledger). ``start`` blocks until every store is rebuilt and
    the control topic is read."""

    def __init__(self, *, settings: Settings, name: str, datasets: tuple[str, ...]) -> None:
        from shulian.catalog.load import load_catalog

        key = settings.hmac_master_key
        if key is None or not key.get_secret_value():
            raise ConfigError([ConfigIssue("<environment>", "SHULIAN_HMAC_MASTER_KEY",
                                           "verification digests need the master key")])
        catalog = load_catalog(settings.catalog_dir, schemas_dir=settings.schemas_dir)
        trust = chain_trust(settings, catalog)  # refuses development keys unless allowed;
        # list versions are judged by their signatures, the audit is sealed with the chain's key
        t = Topology()
        unknown = [d for d in datasets if d not in catalog.datasets]
        if unknown:
            raise ConfigError([ConfigIssue(f"<connector {name}>", "verify_datasets",
                                           f"unknown datasets {unknown}")])
        partition = zlib.crc32(name.encode()) % t.partitions
        self._settings = settings
        self._control = t.control
        # no repair: a gateway may read the store's changelog, never write it (docs/VERIFY.md)
        self.tables = {d: ChangelogTable(settings, t.verify_changelog(d)) for d in datasets}
        self.audit = {d: VerificationAuditWriter(settings, t.verify_audit(d), partition,
                                                 signer=trust.signer, keys=trust.keys,
                                                 worker=name)
                      for d in datasets}
        clock = settings.decision_clock()
        self._checkpoints = _checkpointer(settings, trust.signer, self._heads, clock=clock,
                                          worker=name)
        self._checkpoint_lock = threading.Lock()
        self.service = VerifyService(catalog=catalog, sharing_list=catalog.current_list,
                                     stores=self.tables,
                                     audit={d: _Checkpointed(w, self._checkpoint)
                                            for d, w in self.audit.items()},
                                     master_key=key.get_secret_value().encode("utf-8"),
                                     worker=name, clock=clock)
        self.lists = ListFollower.of(catalog, clock=clock, apply=self.service.apply_list)
        self._clock = clock
        self.restored = 0  # claims counted again from today's audit at start
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    def _heads(self) -> list[tuple[str, int, int, str]]:
        return [h for w in self.audit.values() if (h := w.head()) is not None]

    def _checkpoint(self) -> None:
        """After an acknowledged write: a signed checkpoint of the verification audit heads
        to the store outside Kafka, every N records or T seconds (when a store is set)."""
        if self._checkpoints is not None:
            with self._checkpoint_lock:
                self._checkpoints()

    def start(self, *, poll_s: float = 0.5) -> None:
        for d, table in self.tables.items():
            table.start()
            self.audit[d].resume()
        self._restore_limits()
        follower = ControlFollower(self._settings, self._control)
        self.lists.offer_all(follower.catch_up())
        self._thread = threading.Thread(target=self._follow, args=(follower, poll_s),
                                        name="verify-lists", daemon=True)
        self._thread.start()

    def _restore_limits(self) -> None:
        """The rate-limit counts of today, from every gateway's verification audit."""
        since = day_start(self._clock.now())
        records = [r for a in self.audit.values()
                   for raw in read_since(self._settings, a.topic, int(since.timestamp() * 1000))
                   if (r := parse_audit(raw)) is not None]
        records.sort(key=lambda r: str(r.get("ts")))
        self.restored = self.service.restore_limits(records, since=since)
        log.info("verify.limits_restored", claims=self.restored, since=since.isoformat())

    def _follow(self, follower: ControlFollower, poll_s: float) -> None:
        try:
            while not self._stop.is_set():
                self.lists.offer_all(follower.poll(timeout_s=poll_s))
        except BaseException as exc:  # reported through failure(): the gateway stops
            self._failure = exc
            log.error("verify.list_follower_failed", error=str(exc))
        finally:
            follower.close()

    def failure(self) -> BaseException | None:
        """Why the stores or the list follower stopped (a gateway that no longer follows the
        list must not keep answering under a version that may have been revoked)."""
        if self._failure is not None:
            return self._failure
        return next((f for t in self.tables.values() if (f := t.failure()) is not None), None)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        for table in self.tables.values():
            table.stop()
