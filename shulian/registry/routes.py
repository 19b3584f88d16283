"""The registry's REST routes, one router per area of Confluent's API.

Routes only parse requests and hand them to :class:`~shulian.registry.service.RegistryService`
(run in the thread pool: writes wait for the Kafka topic). Subjects are ``{subject:segment}`` so
that ``%2F`` in a subject reaches the route as ``/`` (see :mod:`shulian.registry.paths`).
:func:`routers` lists every router; ``create_app`` includes them in one place, which is where a
per-router dependency (authentication) is attached.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from shulian import __version__
from shulian.registry import errors as e
from shulian.registry.service import RegistryService

MEDIA = "application/vnd.schemaregistry.v1+json"
T = TypeVar("T")


async def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await run_in_threadpool(fn, *args, **kwargs)


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else {}
    except ValueError as exc:
        raise e.ApiError(400, 400, f"Unexpected character in JSON body: {exc}") from exc
    if not isinstance(body, dict):
        raise e.ApiError(422, 422, "Request body must be a JSON object")
    return body


def schema_text(found: dict[str, Any]) -> Response:
    return Response(found["schema"], media_type=MEDIA)


def subjects_router(service: RegistryService) -> APIRouter:
    r = APIRouter(tags=["subjects"])

    @r.get("/subjects")
    async def list_subjects(
        deleted: bool = False, subject_prefix: str = Query("", alias="subjectPrefix")
    ) -> list[str]:
        return await run(service.subjects, deleted=deleted, prefix=subject_prefix)

    @r.post("/subjects/{subject:segment}")
    async def lookup(
        subject: str, request: Request, deleted: bool = False, normalize: bool = False
    ) -> dict[str, Any]:
        return await run(service.lookup, subject, await json_body(request), deleted=deleted)

    @r.delete("/subjects/{subject:segment}")
    async def delete_subject(subject: str, permanent: bool = False) -> list[int]:
        return await run(service.delete_subject, subject, permanent=permanent)

    @r.get("/subjects/{subject:segment}/versions")
    async def list_versions(subject: str, deleted: bool = False) -> list[int]:
        return await run(service.versions, subject, deleted=deleted)

    @r.post("/subjects/{subject:segment}/versions")
    async def register(subject: str, request: Request, normalize: bool = False) -> dict[str, Any]:
        return await run(service.register, subject, await json_body(request))

    @r.get("/subjects/{subject:segment}/versions/{version}")
    async def get_version(subject: str, version: str, deleted: bool = False) -> dict[str, Any]:
        return await run(service.version, subject, version, deleted=deleted)

    @r.get("/subjects/{subject:segment}/versions/{version}/schema")
    async def get_version_schema(subject: str, version: str, deleted: bool = False) -> Response:
        return schema_text(await run(service.version, subject, version, deleted=deleted))

    @r.get("/subjects/{subject:segment}/versions/{version}/referencedby")
    async def referenced_by(subject: str, version: str) -> list[int]:
        return await run(service.referenced_by, subject, version)

    @r.delete("/subjects/{subject:segment}/versions/{version}")
    async def delete_version(subject: str, version: str, permanent: bool = False) -> int:
        return await run(service.delete_version, subject, version, permanent=permanent)

    return r


def schemas_router(service: RegistryService) -> APIRouter:
    r = APIRouter(tags=["schemas"])

    @r.get("/schemas/types")
    async def schema_types() -> list[str]:
        return service.schema_types()

    @r.get("/schemas")
    async def list_schemas(
        subject_prefix: str = Query("", alias="subjectPrefix"),
        deleted: bool = False,
        latest_only: bool = Query(False, alias="latestOnly"),
        offset: int = 0,
        limit: int = -1,
    ) -> list[dict[str, Any]]:
        return await run(
            service.schemas,
            prefix=subject_prefix,
            deleted=deleted,
            latest_only=latest_only,
            offset=max(offset, 0),
            limit=limit,
        )

    @r.get("/schemas/ids/{schema_id}")
    async def schema_by_id(
        schema_id: int,
        subject: str | None = None,
        fetch_max_id: bool = Query(False, alias="fetchMaxId"),
    ) -> dict[str, Any]:
        return await run(service.schema_by_id, schema_id, fetch_max_id=fetch_max_id)

    @r.get("/schemas/ids/{schema_id}/schema")
    async def raw_schema_by_id(schema_id: int) -> Response:
        return schema_text(await run(service.schema_by_id, schema_id))

    @r.get("/schemas/ids/{schema_id}/versions")
    async def id_versions(schema_id: int, deleted: bool = False) -> list[dict[str, Any]]:
        return await run(service.id_versions, schema_id, deleted=deleted)

    @r.get("/schemas/ids/{schema_id}/subjects")
    async def id_subjects(schema_id: int, deleted: bool = False) -> list[str]:
        return await run(service.id_subjects, schema_id, deleted=deleted)

    return r


def compatibility_router(service: RegistryService) -> APIRouter:
    r = APIRouter(tags=["compatibility"])

    @r.post("/compatibility/subjects/{subject:segment}/versions/{version}")
    async def check_version(
        subject: str, version: str, request: Request, verbose: bool = False, normalize: bool = False
    ) -> dict[str, Any]:
        body = await json_body(request)
        return await run(service.check, subject, version, body, verbose=verbose)

    @r.post("/compatibility/subjects/{subject:segment}/versions")
    async def check_all(
        subject: str, request: Request, verbose: bool = False, normalize: bool = False
    ) -> dict[str, Any]:
        body = await json_body(request)
        return await run(service.check, subject, None, body, verbose=verbose)

    return r


def config_router(service: RegistryService) -> APIRouter:
    r = APIRouter(tags=["config"])

    @r.get("/config")
    async def get_global_config() -> dict[str, Any]:
        return await run(service.get_config, None, default_to_global=True)

    @r.put("/config")
    async def put_global_config(request: Request) -> dict[str, Any]:
        return await run(service.set_config, None, await json_body(request))

    @r.delete("/config")
    async def delete_global_config() -> dict[str, Any]:
        return await run(service.delete_config, None)

    @r.get("/config/{subject:segment}")
    async def get_config(
        subject: str, default_to_global: bool = Query(False, alias="defaultToGlobal")
    ) -> dict[str, Any]:
        return await run(service.get_config, subject, default_to_global=default_to_global)

    @r.put("/config/{subject:segment}")
    async def put_config(subject: str, request: Request) -> dict[str, Any]:
        return await run(service.set_config, subject, await json_body(request))

    @r.delete("/config/{subject:segment}")
    async def delete_config(subject: str) -> dict[str, Any]:
        return await run(service.delete_config, subject)

    return r


def mode_router(service: RegistryService) -> APIRouter:
    r = APIRouter(tags=["mode"])

    @r.get("/mode")
    async def get_global_mode() -> dict[str, Any]:
        return await run(service.get_mode, None, default_to_global=True)

    @r.put("/mode")
    async def put_global_mode(request: Request, force: bool = False) -> dict[str, Any]:
        return await run(service.set_mode, None, await json_body(request), force=force)

    @r.delete("/mode")
    async def delete_global_mode() -> dict[str, Any]:
        return await run(service.delete_mode, None)

    @r.get("/mode/{subject:segment}")
    async def get_mode(
        subject: str, default_to_global: bool = Query(False, alias="defaultToGlobal")
    ) -> dict[str, Any]:
        return await run(service.get_mode, subject, default_to_global=default_to_global)

    @r.put("/mode/{subject:segment}")
    async def put_mode(subject: str, request: Request, force: bool = False) -> dict[str, Any]:
        return await run(service.set_mode, subject, await json_body(request), force=force)

    @r.delete("/mode/{subject:segment}")
    async def delete_mode(subject: str) -> dict[str, Any]:
        return await run(service.delete_mode, subject)

    return r


def meta_router(service: RegistryService) -> APIRouter:
    r = APIRouter(tags=["meta"])

    @r.get("/")
    async def root() -> dict[str, Any]:
        return {}

    @r.get("/contexts")
    async def contexts(offset: int = 0, limit: int = -1) -> list[str]:
        return ["."]  # the default context only: contexts are not supported

    @r.get("/v1/metadata/id")
    async def metadata_id() -> dict[str, Any]:
        return service.cluster_metadata()

    @r.get("/v1/metadata/version")
    async def metadata_version() -> dict[str, Any]:
        return {"version": __version__, "commitId": ""}

    return r


ROUTERS = (
    meta_router,
    subjects_router,
    schemas_router,
    compatibility_router,
    config_router,
    mode_router,
)


def routers(service: RegistryService) -> list[APIRouter]:
    return [make(service) for make in ROUTERS]
