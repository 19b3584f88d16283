"""The HTTP face of the registry: Confluent Schema Registry's REST API on FastAPI.

Routes only parse requests and map answers and errors (``{"error_code": .., "message": ..}``);
the work happens in :class:`~shulian.registry.service.RegistryService`, run in the thread pool
because writes wait for the Kafka topic.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from shulian import __version__
from shulian.log import get_logger
from shulian.registry import errors as e
from shulian.registry.service import RegistryService

log = get_logger(__name__)
MEDIA = "application/vnd.schemaregistry.v1+json"
T = TypeVar("T")


class SchemaRegistryJSON(JSONResponse):
    media_type = MEDIA


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else {}
    except ValueError as exc:
        raise e.ApiError(400, 400, f"Unexpected character in JSON body: {exc}") from exc
    if not isinstance(body, dict):
        raise e.ApiError(422, 422, "Request body must be a JSON object")
    return body


def create_app(service: RegistryService) -> FastAPI:
    """The ASGI app, wired to one service (explicitly: no globals)."""
    app = FastAPI(
        title="Shulian schema registry",
        version=__version__,
        description="Confluent Schema Registry compatible REST API; state in a Kafka topic.",
        default_response_class=SchemaRegistryJSON,
    )

    async def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await run_in_threadpool(fn, *args, **kwargs)

    @app.exception_handler(e.ApiError)
    async def api_error(_request: Request, exc: e.ApiError) -> Response:
        return SchemaRegistryJSON(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> Response:
        return SchemaRegistryJSON(
            {"error_code": 422, "message": f"Unprocessable request: {exc.errors()[:1]}"},
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        return SchemaRegistryJSON(
            {"error_code": exc.status_code, "message": f"HTTP {exc.status_code} {exc.detail}"},
            status_code=exc.status_code,
        )

    @app.exception_handler(Exception)
    async def internal_error(_request: Request, exc: Exception) -> Response:
        log.error("registry.internal_error", error=type(exc).__name__)
        return SchemaRegistryJSON(
            {"error_code": 500, "message": "Internal Server Error"}, status_code=500
        )

    # ---------------------------------------------------------------- root
    @app.get("/", tags=["meta"])
    async def root() -> dict[str, Any]:
        return {}

    # ---------------------------------------------------------------- subjects
    @app.get("/subjects", tags=["subjects"])
    async def list_subjects(
        deleted: bool = False, subject_prefix: str = Query("", alias="subjectPrefix")
    ) -> list[str]:
        return await run(service.subjects, deleted=deleted, prefix=subject_prefix)

    @app.post("/subjects/{subject}", tags=["subjects"])
    async def lookup(
        subject: str, request: Request, deleted: bool = False, normalize: bool = False
    ) -> dict[str, Any]:
        return await run(service.lookup, subject, await _json_body(request), deleted=deleted)

    @app.delete("/subjects/{subject}", tags=["subjects"])
    async def delete_subject(subject: str, permanent: bool = False) -> list[int]:
        return await run(service.delete_subject, subject, permanent=permanent)

    @app.get("/subjects/{subject}/versions", tags=["subjects"])
    async def list_versions(subject: str, deleted: bool = False) -> list[int]:
        return await run(service.versions, subject, deleted=deleted)

    @app.post("/subjects/{subject}/versions", tags=["subjects"])
    async def register(subject: str, request: Request, normalize: bool = False) -> dict[str, Any]:
        return await run(service.register, subject, await _json_body(request))

    @app.get("/subjects/{subject}/versions/{version}", tags=["subjects"])
    async def get_version(subject: str, version: str, deleted: bool = False) -> dict[str, Any]:
        return await run(service.version, subject, version, deleted=deleted)

    @app.get("/subjects/{subject}/versions/{version}/schema", tags=["subjects"])
    async def get_version_schema(subject: str, version: str, deleted: bool = False) -> Response:
        found = await run(service.version, subject, version, deleted=deleted)
        return Response(found["schema"], media_type=MEDIA)

    @app.get("/subjects/{subject}/versions/{version}/referencedby", tags=["subjects"])
    async def referenced_by(subject: str, version: str) -> list[int]:
        return await run(service.referenced_by, subject, version)

    @app.delete("/subjects/{subject}/versions/{version}", tags=["subjects"])
    async def delete_version(subject: str, version: str, permanent: bool = False) -> int:
        return await run(service.delete_version, subject, version, permanent=permanent)

    # ---------------------------------------------------------------- schemas
    @app.get("/schemas/types", tags=["schemas"])
    async def schema_types() -> list[str]:
        return ["AVRO"]

    @app.get("/schemas/ids/{schema_id}", tags=["schemas"])
    async def schema_by_id(schema_id: int, subject: str | None = None) -> dict[str, Any]:
        return await run(service.schema_by_id, schema_id)

    @app.get("/schemas/ids/{schema_id}/schema", tags=["schemas"])
    async def raw_schema_by_id(schema_id: int) -> Response:
        found = await run(service.schema_by_id, schema_id)
        return Response(found["schema"], media_type=MEDIA)

    @app.get("/schemas/ids/{schema_id}/versions", tags=["schemas"])
    async def id_versions(schema_id: int, deleted: bool = False) -> list[dict[str, Any]]:
        return await run(service.id_versions, schema_id, deleted=deleted)

    @app.get("/schemas/ids/{schema_id}/subjects", tags=["schemas"])
    async def id_subjects(schema_id: int, deleted: bool = False) -> list[str]:
        return await run(service.id_subjects, schema_id, deleted=deleted)

    # ---------------------------------------------------------------- compatibility
    @app.post("/compatibility/subjects/{subject}/versions/{version}", tags=["compatibility"])
    async def check_version(
        subject: str, version: str, request: Request, verbose: bool = False, normalize: bool = False
    ) -> dict[str, Any]:
        body = await _json_body(request)
        return await run(service.check, subject, version, body, verbose=verbose)

    @app.post("/compatibility/subjects/{subject}/versions", tags=["compatibility"])
    async def check_all(
        subject: str, request: Request, verbose: bool = False, normalize: bool = False
    ) -> dict[str, Any]:
        body = await _json_body(request)
        return await run(service.check, subject, None, body, verbose=verbose)

    # ---------------------------------------------------------------- config
    @app.get("/config", tags=["config"])
    async def get_global_config() -> dict[str, Any]:
        return await run(service.get_config, None, default_to_global=True)

    @app.put("/config", tags=["config"])
    async def put_global_config(request: Request) -> dict[str, Any]:
        return await run(service.set_config, None, await _json_body(request))

    @app.delete("/config", tags=["config"])
    async def delete_global_config() -> dict[str, Any]:
        return await run(service.delete_config, None)

    @app.get("/config/{subject}", tags=["config"])
    async def get_config(
        subject: str, default_to_global: bool = Query(False, alias="defaultToGlobal")
    ) -> dict[str, Any]:
        return await run(service.get_config, subject, default_to_global=default_to_global)

    @app.put("/config/{subject}", tags=["config"])
    async def put_config(subject: str, request: Request) -> dict[str, Any]:
        return await run(service.set_config, subject, await _json_body(request))

    @app.delete("/config/{subject}", tags=["config"])
    async def delete_config(subject: str) -> dict[str, Any]:
        return await run(service.delete_config, subject)

    # ---------------------------------------------------------------- mode
    @app.get("/mode", tags=["mode"])
    async def get_global_mode() -> dict[str, Any]:
        return await run(service.get_mode, None, default_to_global=True)

    @app.put("/mode", tags=["mode"])
    async def put_global_mode(request: Request, force: bool = False) -> dict[str, Any]:
        return await run(service.set_mode, None, await _json_body(request), force=force)

    @app.get("/mode/{subject}", tags=["mode"])
    async def get_mode(
        subject: str, default_to_global: bool = Query(False, alias="defaultToGlobal")
    ) -> dict[str, Any]:
        return await run(service.get_mode, subject, default_to_global=default_to_global)

    @app.put("/mode/{subject}", tags=["mode"])
    async def put_mode(subject: str, request: Request, force: bool = False) -> dict[str, Any]:
        return await run(service.set_mode, subject, await _json_body(request), force=force)

    @app.delete("/mode/{subject}", tags=["mode"])
    async def delete_mode(subject: str) -> dict[str, Any]:
        return await run(service.delete_mode, subject)

    return app
