"""The HTTP face of the registry: Confluent Schema Registry's REST API on FastAPI.

This module builds the app: Confluent's error bodies (``{"error_code": .., "message": ..}``),
Confluent's reading of paths (:mod:`shulian.registry.paths`) and the routers of
:mod:`shulian.registry.routes`, which hand the work to
:class:`~shulian.registry.service.RegistryService`.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from shulian import __version__
from shulian.log import get_logger
from shulian.registry import errors as e
from shulian.registry.paths import ConfluentPaths, register_convertors
from shulian.registry.routes import MEDIA, routers
from shulian.registry.service import RegistryService

log = get_logger(__name__)


class SchemaRegistryJSON(JSONResponse):
    media_type = MEDIA


def create_app(service: RegistryService) -> FastAPI:
    """The ASGI app, wired to one service (explicitly: no globals)."""
    register_convertors()
    app = FastAPI(
        title="Shulian schema registry",
        version=__version__,
        description="Confluent Schema Registry compatible REST API; state in a Kafka topic.",
        default_response_class=SchemaRegistryJSON,
        redirect_slashes=False,
    )
    app.add_middleware(ConfluentPaths)

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

    for router in routers(service):
        # the one place where a dependency for every route of a router (auth) is attached
        app.include_router(router)
    return app
