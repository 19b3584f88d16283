"""pydantic's validation errors in Shulian's words: one :class:`~shulian.errors.ConfigIssue`
(file, field, why) per error, the one place that translation happens.

pydantic writes ``Value error, environment variable X is not set`` or ``Input should be greater
than or equal to 1``; a data officer reads ``environment variable X is not set`` and ``must be at
least 1``. The value given is never repeated (it may be a secret or personal data).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from shulian.errors import ConfigIssue

__all__ = ["WHOLE", "field_path", "issue_why", "validation_issues"]

WHOLE = "<root>"

_PREFIXES = ("Value error, ", "Assertion failed, ")
_BOUNDS = {"greater_than_equal": ("ge", "at least"), "greater_than": ("gt", "more than"),
           "less_than_equal": ("le", "at most"), "less_than": ("lt", "less than")}


def field_path(loc: Sequence[int | str], *, whole: str = WHOLE) -> str:
    """``agencies.psb.token_env``: the dotted path of a location (``whole`` when empty)."""
    return ".".join(str(p) for p in loc) or whole


def issue_why(err: ErrorDetails) -> str:
    """Why, in words, for one pydantic error."""
    kind, ctx, msg = err["type"], err.get("ctx") or {}, err["msg"]
    if kind == "missing":
        return "required, but missing"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        return f"must be {words} {ctx.get(key)}"
    if kind == "string_pattern_mismatch":
        return f"must match the pattern {ctx.get('pattern')}"
    for prefix in _PREFIXES:
        if msg.startswith(prefix):
            return msg[len(prefix):]
    if msg.startswith("Input should be "):
        return "must be " + msg[len("Input should be "):]
    if msg.startswith("Input should have "):
        return "must have " + msg[len("Input should have "):]
    return msg[:1].lower() + msg[1:]


def validation_issues(exc: ValidationError, *, file: str, drop_first: Any = None,
                      whole: str = WHOLE) -> list[ConfigIssue]:
    """One issue per error; ``drop_first`` removes a leading location part (the tag pydantic
    puts first for a member of a discriminated union)."""
    out = []
    for err in exc.errors():
        loc = list(err["loc"])
        if drop_first is not None and loc and loc[0] == drop_first:
            loc = loc[1:]
        out.append(ConfigIssue(file, field_path(loc, whole=whole), issue_why(err)))
    return out
