"""The vocabulary of JSON Schema compatibility (see :mod:`shulian.registry.json_compat`):
Confluent's compatible change types, a difference, the walk's context, and which everit class
(Confluent's JSON Schema library) a schema would load as. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from referencing._core import Resolver

COMPATIBLE = frozenset({
    "ID_CHANGED", "DESCRIPTION_CHANGED", "TITLE_CHANGED", "DEFAULT_CHANGED", "SCHEMA_REMOVED",
    "TYPE_EXTENDED", "MAX_LENGTH_INCREASED", "MAX_LENGTH_REMOVED", "MIN_LENGTH_DECREASED",
    "MIN_LENGTH_REMOVED", "PATTERN_REMOVED", "MAXIMUM_INCREASED", "MAXIMUM_REMOVED",
    "MINIMUM_DECREASED", "MINIMUM_REMOVED", "EXCLUSIVE_MAXIMUM_INCREASED",
    "EXCLUSIVE_MAXIMUM_REMOVED", "EXCLUSIVE_MINIMUM_DECREASED", "EXCLUSIVE_MINIMUM_REMOVED",
    "MULTIPLE_OF_REDUCED", "MULTIPLE_OF_REMOVED", "REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED",
    "REQUIRED_ATTRIBUTE_REMOVED", "DEPENDENCY_ARRAY_NARROWED", "DEPENDENCY_ARRAY_REMOVED",
    "DEPENDENCY_SCHEMA_REMOVED", "MAX_PROPERTIES_INCREASED", "MAX_PROPERTIES_REMOVED",
    "MIN_PROPERTIES_DECREASED", "MIN_PROPERTIES_REMOVED", "ADDITIONAL_PROPERTIES_ADDED",
    "ADDITIONAL_PROPERTIES_EXTENDED", "PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL",
    "REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL",
    "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
    "PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL",
    "PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL",
    "PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
    "PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", "MAX_ITEMS_INCREASED",
    "MAX_ITEMS_REMOVED", "MIN_ITEMS_DECREASED", "MIN_ITEMS_REMOVED", "UNIQUE_ITEMS_REMOVED",
    "ADDITIONAL_ITEMS_ADDED", "ADDITIONAL_ITEMS_EXTENDED",
    "ITEM_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL", "ITEM_ADDED_TO_CLOSED_CONTENT_MODEL",
    "ITEM_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL", "ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL",
    "ITEM_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
    "ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", "ENUM_ARRAY_EXTENDED",
    "COMBINED_TYPE_EXTENDED", "PRODUCT_TYPE_NARROWED", "SUM_TYPE_EXTENDED", "NOT_TYPE_NARROWED",
})

_OBJECT_WORDS = ("properties", "required", "additionalProperties", "patternProperties",
                 "dependencies", "minProperties", "maxProperties")
_ARRAY_WORDS = ("items", "additionalItems", "minItems", "maxItems", "uniqueItems")
_STRING_WORDS = ("minLength", "maxLength", "pattern")
_NUMBER_WORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_COMBINED = ("allOf", "anyOf", "oneOf")


@dataclass(frozen=True)
class Difference:
    type: str
    path: str

    @property
    def compatible(self) -> bool:
        return self.type in COMPATIBLE


@dataclass
class Node:
    """A schema and the resolver its ``$ref``s resolve with."""

    schema: Any
    resolver: Resolver[Any]


@dataclass
class Context:
    differences: list[Difference] = field(default_factory=list)
    path: list[str] = field(default_factory=list)
    seen: set[tuple[int, int]] = field(default_factory=set)

    def add(self, kind: str, *extra: str) -> None:
        self.differences.append(Difference(kind, "#/" + "/".join([*self.path, *extra])))

    def sub(self) -> Context:
        return Context(path=list(self.path), seen=set(self.seen))

    @property
    def compatible(self) -> bool:
        return all(d.compatible for d in self.differences)

    @contextmanager
    def at(self, *parts: str) -> Iterator[None]:
        self.path.extend(parts)
        try:
            yield
        finally:
            del self.path[len(self.path) - len(parts):]


def kind(s: Any) -> str:
    """The class everit (Confluent's JSON Schema library) would load ``s`` as."""
    if s is True:
        return "empty"
    if s is False:
        return "false"
    if not isinstance(s, dict):
        return "empty"
    if any(k in s for k in _COMBINED) or isinstance(s.get("type"), list):
        return "combined"
    if "enum" in s:
        return "enum"
    if "const" in s:
        return "const"
    if "not" in s:
        return "not"
    t = s.get("type")
    if t in ("integer", "number"):
        return "number"
    if isinstance(t, str):
        return t
    for name, words in (("object", _OBJECT_WORDS), ("array", _ARRAY_WORDS),
                        ("string", _STRING_WORDS), ("number", _NUMBER_WORDS)):
        if any(w in s for w in words):
            return name
    return "empty"


def combined_parts(s: dict[str, Any]) -> tuple[str, list[Any]]:
    for criterion in _COMBINED:
        if criterion in s and isinstance(s[criterion], list):
            return criterion, list(s[criterion])
    rest = {k: v for k, v in s.items() if k != "type"}
    return "anyOf", [{**rest, "type": t} for t in s.get("type", [])]
