"""Request paths as Confluent's registry reads them, for the ASGI layer.

Two differences from Starlette's defaults, both pure string work on the ASGI ``scope``:

* a trailing slash is ignored (``GET /config/`` is ``GET /config``), where Starlette would answer
  307 to the unslashed path;
* a subject may contain ``/`` when sent as ``%2F`` (Confluent's Protobuf serializer registers
  imports such as ``google/protobuf/timestamp.proto``). Starlette decodes ``%2F`` before routing,
  so such a subject would split into two path segments. The path is therefore rebuilt from the raw
  bytes one segment at a time, with ``%`` and ``/`` inside a segment kept escaped; the
  ``segment`` path convertor undoes exactly that escaping for the route's parameter.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from starlette.convertors import Convertor, register_url_convertor
from starlette.types import ASGIApp, Receive, Scope, Send


def escape_segment(text: str) -> str:
    return text.replace("%", "%25").replace("/", "%2F")


def unescape_segment(text: str) -> str:
    return text.replace("%2F", "/").replace("%25", "%")


def routing_path(raw_path: bytes) -> str:
    """The path to route on: segments decoded, ``/`` and ``%`` inside one kept escaped, no
    trailing slash (except for the root)."""
    raw = raw_path.decode("utf-8")
    segments = [escape_segment(unquote(s, errors="strict")) for s in raw.split("/")]
    path = "/".join(segments)
    while len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    return path or "/"


class SegmentConvertor(Convertor[str]):
    """One path segment, ``%2F`` and ``%25`` in it turned back into ``/`` and ``%``."""

    regex = "[^/]+"

    def convert(self, value: str) -> str:
        return unescape_segment(value)

    def to_string(self, value: str) -> str:
        return escape_segment(value)


def register_convertors() -> None:
    """Make ``{name:segment}`` available in route paths (idempotent)."""
    register_url_convertor("segment", SegmentConvertor())


class ConfluentPaths:
    """ASGI middleware: routes on :func:`routing_path` of the raw request path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw: Any = scope.get("raw_path")
            if isinstance(raw, bytes | bytearray):
                try:
                    path = routing_path(bytes(raw).split(b"?", 1)[0])
                except UnicodeDecodeError:
                    path = scope["path"]
            else:
                path = routing_path(scope["path"].encode("utf-8"))
            scope = {**scope, "path": path}
        await self.app(scope, receive, send)
