"""The gateway's request bodies, pure: which media types it takes and how JSON is parsed.

A body must be ``application/json`` (parameters such as ``charset=utf-8`` allowed; another
type, or none, is 415). It is parsed strictly: invalid UTF-8, invalid JSON, an object with the
same key twice (which value would count?), an integer of more than :data:`MAX_INT_DIGITS`
digits (no Avro type holds it; Python refuses past 4,300 digits with an error that is not a
JSON error), ``NaN``/``Infinity`` (not JSON) and nesting deeper than ``max_depth`` are each a
400 naming the problem; too many records 413; no record 422.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_INT_DIGITS", "BodyError", "is_json_media_type", "json_depth", "parse_records"]

MAX_INT_DIGITS = 40
"""Longer than any Avro long (19 digits) or decimal the raw schemas use, far below Python's
4,300-digit conversion limit."""


@dataclass(frozen=True)
class BodyError:
    status: int
    error: str
    detail: str


class _Refused(ValueError):
    def __init__(self, error: str, detail: str) -> None:
        super().__init__(detail)
        self.error = error
        self.detail = detail


def is_json_media_type(content_type: str | None) -> bool:
    """True for ``application/json`` with any parameters (case-insensitive)."""
    if content_type is None:
        return False
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


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


def _int(text: str) -> int:
    digits = len(text) - (text[0] == "-")
    if digits > MAX_INT_DIGITS:
        raise _Refused("number_too_long",
                       f"an integer has {digits} digits; at most {MAX_INT_DIGITS}")
    return int(text)


def _constant(name: str) -> Any:
    raise _Refused("invalid_json", f"{name} is not a JSON number")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise _Refused("duplicate_key", f"an object has the key {k!r} twice")
            seen.add(k)
    return out


def parse_records(body: bytes, *, max_depth: int, max_records: int) -> list[Any] | BodyError:
    """The records of a body (an object, or an array of them), or why not."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return BodyError(400, "invalid_utf8", f"body is not valid UTF-8 (byte {exc.start})")
    try:
        doc = json.loads(text, parse_int=_int, parse_constant=_constant,
                         object_pairs_hook=_object)
    except RecursionError:
        return BodyError(400, "too_deep", f"JSON nested deeper than {max_depth}")
    except _Refused as exc:
        return BodyError(400, exc.error, exc.detail)
    except json.JSONDecodeError as exc:
        return BodyError(400, "invalid_json", f"body is not valid JSON: {exc.msg} at line "
                                              f"{exc.lineno} column {exc.colno}")
    except ValueError as exc:  # any other conversion limit: still the client's body
        return BodyError(400, "invalid_json", f"body is not valid JSON: {exc}")
    if json_depth(doc, limit=max_depth) > max_depth:
        return BodyError(400, "too_deep", f"JSON nested deeper than {max_depth}")
    records = doc if isinstance(doc, list) else [doc]
    if not records:
        return BodyError(422, "empty", "no records in the body")
    if len(records) > max_records:
        return BodyError(413, "too_many_records",
                         f"{len(records)} records; at most {max_records} per request")
    return records
