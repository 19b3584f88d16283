"""JSON Schema compatibility, following Confluent's ``SchemaDiff`` rules.

``differences(original, update)`` walks an older schema and a newer one side by side and names
each change with the type Confluent's JSON Schema provider gives it; a change is compatible
when its type is in :data:`COMPATIBLE` (Confluent's ``SchemaDiff.COMPATIBLE_CHANGES``). BACKWARD
compares (old, new), FORWARD (new, old). The main consequence, as in Confluent: an object
without ``additionalProperties: false`` is an *open* content model, so adding a property to it
is incompatible (old data may hold that property with any value) unless the property's schema
is empty, and removing one from it is compatible; a *closed* model is the other way round.

Covered: object (properties, required, additionalProperties, patternProperties, dependencies,
min/maxProperties), array (items, additionalItems, min/maxItems, uniqueItems), string
(min/maxLength, pattern), number/integer (limits, multipleOf, integer to number), enum, const,
not, anyOf/oneOf/allOf (criteria and a maximum matching of subschemas), type lists, ``$ref``
(local and to referenced subjects), true/false/{} schemas. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT7

from shulian.registry.avro_schemas import Level
from shulian.registry.json_diff_base import Context, Difference, Node, combined_parts, kind


def root(schema: Any, reg: Registry[Any]) -> Node:
    resource = Resource.from_contents(schema, default_specification=DRAFT7)
    return Node(schema, reg.resolver_with_root(resource))


def _deref(node: Node) -> Node:
    for _ in range(32):  # a chain of $refs, not a cycle
        s = node.schema
        if not (isinstance(s, dict) and isinstance(s.get("$ref"), str)):
            return node
        try:
            found = node.resolver.lookup(s["$ref"])
        except Unresolvable:
            return Node({}, node.resolver)
        node = Node(found.contents, found.resolver)
    return node


def compare(ctx: Context, original: Node | None, update: Node | None) -> None:
    if original is None and update is None:
        return
    if original is None:
        ctx.add("SCHEMA_ADDED")
        return
    if update is None:
        ctx.add("SCHEMA_REMOVED")
        return
    o, u = _deref(original), _deref(update)
    ko, ku = kind(o.schema), kind(u.schema)
    if ku == "combined" and ko != "combined" and _widened_by_union(ctx, o, u):
        return
    if ko == "combined" and ku != "combined":
        _, subs = combined_parts(o.schema)
        if len(subs) == 1:
            sub = ctx.sub()
            compare(sub, Node(subs[0], o.resolver), u)
            if sub.compatible:
                ctx.differences += sub.differences
                return
    if ko != ku:
        if ko != "false" and ku != "empty":
            ctx.add("TYPE_CHANGED")
        return
    key = (id(o.schema), id(u.schema))
    if key in ctx.seen or not isinstance(o.schema, dict):
        return
    ctx.seen.add(key)
    for word, change in (("$id", "ID_CHANGED"), ("title", "TITLE_CHANGED"),
                         ("description", "DESCRIPTION_CHANGED"), ("default", "DEFAULT_CHANGED")):
        if o.schema.get(word) != u.schema.get(word):
            ctx.add(change)
    _BY_KIND.get(ko, _nothing)(ctx, o, u)


def _nothing(ctx: Context, o: Node, u: Node) -> None:
    return None


def _widened_by_union(ctx: Context, o: Node, u: Node) -> bool:
    criterion, subs = combined_parts(u.schema)
    if len(subs) != 1 and criterion == "allOf":
        return False
    for s in subs:
        sub = ctx.sub()
        compare(sub, o, Node(s, u.resolver))
        if sub.compatible:
            ctx.differences += sub.differences
            if len(subs) != 1:
                ctx.add("SUM_TYPE_EXTENDED")
            return True
    return False


def _limit(ctx: Context, word: str, old: Any, new: Any, name: str) -> None:
    """``name``_ADDED / _REMOVED / _INCREASED / _DECREASED for a numeric keyword."""
    if old == new or isinstance(old, bool) or isinstance(new, bool):
        return
    if old is None:
        ctx.add(f"{name}_ADDED", word)
    elif new is None:
        ctx.add(f"{name}_REMOVED", word)
    elif old < new:
        ctx.add(f"{name}_INCREASED", word)
    else:
        ctx.add(f"{name}_DECREASED", word)


def _string(ctx: Context, o: Node, u: Node) -> None:
    a, b = o.schema, u.schema
    _limit(ctx, "maxLength", a.get("maxLength"), b.get("maxLength"), "MAX_LENGTH")
    _limit(ctx, "minLength", a.get("minLength"), b.get("minLength"), "MIN_LENGTH")
    pa, pb = a.get("pattern"), b.get("pattern")
    if pa is None and pb is not None:
        ctx.add("PATTERN_ADDED", "pattern")
    elif pa is not None and pb is None:
        ctx.add("PATTERN_REMOVED", "pattern")
    elif pa != pb:
        ctx.add("PATTERN_CHANGED", "pattern")


def _number(ctx: Context, o: Node, u: Node) -> None:
    a, b = o.schema, u.schema
    for word, name in (("maximum", "MAXIMUM"), ("minimum", "MINIMUM"),
                       ("exclusiveMaximum", "EXCLUSIVE_MAXIMUM"),
                       ("exclusiveMinimum", "EXCLUSIVE_MINIMUM")):
        _limit(ctx, word, a.get(word), b.get(word), name)
    ma, mb = a.get("multipleOf"), b.get("multipleOf")
    if ma != mb:
        if ma is None:
            ctx.add("MULTIPLE_OF_ADDED", "multipleOf")
        elif mb is None:
            ctx.add("MULTIPLE_OF_REMOVED", "multipleOf")
        elif int(mb) and int(ma) and int(mb) % int(ma) == 0:
            ctx.add("MULTIPLE_OF_EXPANDED", "multipleOf")
        elif int(mb) and int(ma) and int(ma) % int(mb) == 0:
            ctx.add("MULTIPLE_OF_REDUCED", "multipleOf")
        else:
            ctx.add("MULTIPLE_OF_CHANGED", "multipleOf")
    ia, ib = a.get("type") == "integer", b.get("type") == "integer"
    if ia and not ib:
        ctx.add("TYPE_EXTENDED")
    elif ib and not ia:
        ctx.add("TYPE_NARROWED")


def _values(values: Any) -> set[str]:
    return {json.dumps(v, sort_keys=True) for v in (values if isinstance(values, list) else [])}


def _enum(ctx: Context, o: Node, u: Node) -> None:
    a, b = _values(o.schema.get("enum")), _values(u.schema.get("enum"))
    if a == b:
        return
    if b >= a:
        ctx.add("ENUM_ARRAY_EXTENDED", "enum")
    elif a >= b:
        ctx.add("ENUM_ARRAY_NARROWED", "enum")
    else:
        ctx.add("ENUM_ARRAY_CHANGED", "enum")


def _const(ctx: Context, o: Node, u: Node) -> None:
    if _values([o.schema.get("const")]) != _values([u.schema.get("const")]):
        ctx.add("CONST_CHANGED", "const")


def _not(ctx: Context, o: Node, u: Node) -> None:
    sub = ctx.sub()
    with sub.at("not"):
        compare(sub, Node(u.schema.get("not"), u.resolver), Node(o.schema.get("not"), o.resolver))
    ctx.add("NOT_TYPE_NARROWED" if sub.compatible else "NOT_TYPE_EXTENDED", "not")


def _criteria(ctx: Context, a: str, b: str, na: int, nb: int) -> bool:
    """Add the criterion change; False when it makes the subschemas incomparable."""
    if a == b:
        return True
    if b == "anyOf" or (b == "oneOf" and na == 1) or (b == "allOf" and na == 1 and nb == 1):
        ctx.add("COMBINED_TYPE_EXTENDED")
        return True
    ctx.add("COMBINED_TYPE_CHANGED")
    return False


def _matching(edges: dict[int, dict[int, list[Difference]]], n: int) -> dict[int, int]:
    """A maximum matching original -> update over compatible pairs (augmenting paths)."""
    match_u: dict[int, int] = {}

    def augment(i: int, seen: set[int]) -> bool:
        for j in edges.get(i, {}):
            if j in seen:
                continue
            seen.add(j)
            if j not in match_u or augment(match_u[j], seen):
                match_u[j] = i
                return True
        return False

    for i in range(n):
        augment(i, set())
    return {i: j for j, i in match_u.items()}


def _combined_diff(ctx: Context, o: Node, u: Node) -> None:
    ca, subs_a = combined_parts(o.schema)
    cb, subs_b = combined_parts(u.schema)
    subs_a = list({json.dumps(s, sort_keys=True): s for s in subs_a}.values())
    subs_b = list({json.dumps(s, sort_keys=True): s for s in subs_b}.values())
    if not _criteria(ctx, ca, cb, len(subs_a), len(subs_b)):
        return
    if len(subs_a) != len(subs_b):
        grew = len(subs_a) < len(subs_b)
        product = cb == "allOf"
        prefix = "PRODUCT_TYPE_" if product else "SUM_TYPE_"
        ctx.add(prefix + ("EXTENDED" if grew else "NARROWED"))
    edges: dict[int, dict[int, list[Difference]]] = {}
    for i, sa in enumerate(subs_a):
        for j, sb in enumerate(subs_b):
            sub = ctx.sub()
            with sub.at(ca, str(i)):
                compare(sub, Node(sa, o.resolver), Node(sb, u.resolver))
            if sub.compatible:
                edges.setdefault(i, {})[j] = sub.differences
    matched = _matching(edges, len(subs_a))
    for i, j in matched.items():
        ctx.differences += edges[i][j]
    if len(matched) < min(len(subs_a), len(subs_b)):
        ctx.add("COMBINED_TYPE_SUBSCHEMAS_CHANGED")


def _additional(s: dict[str, Any], word: str) -> tuple[bool, Any | None]:
    """Whether more properties (items) are permitted, and the schema they must match."""
    extra = s.get(word, True)
    if extra is False:
        return False, None
    if extra is True or extra == {}:
        return True, None
    return True, extra


def _compare_additional(ctx: Context, o: Node, u: Node, word: str, change: str) -> None:
    """``additionalProperties`` / ``additionalItems`` of two schemas: permitted or not, and
    the schema the extra ones must match (``change``: the change types' common prefix)."""
    with ctx.at(word):
        (perm_a, sch_a), (perm_b, sch_b) = _additional(o.schema, word), _additional(u.schema, word)
        if perm_a != perm_b:
            ctx.add(f"{change}_ADDED" if perm_b else f"{change}_REMOVED")
        elif sch_a is None and sch_b is not None:
            ctx.add(f"{change}_NARROWED")
        elif sch_b is None and sch_a is not None:
            ctx.add(f"{change}_EXTENDED")
        elif sch_a is not None:
            compare(ctx, Node(sch_a, o.resolver), Node(sch_b, u.resolver))


def _is_open(s: dict[str, Any]) -> bool:
    permits, schema = _additional(s, "additionalProperties")
    return permits and schema is None and not s.get("patternProperties")


def _partial(s: dict[str, Any], key: str) -> Any | None:
    for pattern, schema in (s.get("patternProperties") or {}).items():
        try:
            if re.search(pattern, key):
                return schema
        except re.error:
            continue
    return _additional(s, "additionalProperties")[1]


def _partially_open(ctx: Context, older: Node, newer: Node, change: str) -> None:
    """A property ``change``d (REMOVED or ADDED) where a partially open content model (a
    matching patternProperties or additionalProperties schema) stands for it on the other
    side: covered when the property's schema and that one are compatible."""
    sub = ctx.sub()
    compare(sub, older, newer)
    ctx.differences += sub.differences
    covered = "IS_COVERED" if sub.compatible else "NOT_COVERED"
    ctx.add(f"PROPERTY_{change}_{covered}_BY_PARTIALLY_OPEN_CONTENT_MODEL")


def _property_removed(ctx: Context, o: Node, u: Node, key: str, old: Any) -> None:
    if _is_open(u.schema):
        ctx.add("PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL")
        return
    partial = _partial(u.schema, key)
    if partial is not None:
        _partially_open(ctx, Node(old, o.resolver), Node(partial, u.resolver), "REMOVED")
    elif old is False:
        ctx.add("PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL")
    else:
        ctx.add("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL")


def _property_added(ctx: Context, o: Node, u: Node, key: str, new: Any) -> None:
    if _is_open(o.schema):
        ctx.add("PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL"
                if kind(new) == "empty" else "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL")
        return
    partial = _partial(o.schema, key)
    if partial is not None:
        _partially_open(ctx, Node(partial, o.resolver), Node(new, u.resolver), "ADDED")
    if key in (u.schema.get("required") or []):
        ctx.add("REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL"
                if isinstance(new, dict) and "default" in new
                else "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL")
    else:
        ctx.add("OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL")


def _object(ctx: Context, o: Node, u: Node) -> None:
    a, b = o.schema, u.schema
    pa, pb = a.get("properties") or {}, b.get("properties") or {}
    ra, rb = set(a.get("required") or []), set(b.get("required") or [])
    with ctx.at("required"):
        for key in pa:
            if key in pb and (key in ra) != (key in rb):
                if key in ra:
                    ctx.add("REQUIRED_ATTRIBUTE_REMOVED", key)
                elif isinstance(pb[key], dict) and "default" in pb[key]:
                    ctx.add("REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED", key)
                else:
                    ctx.add("REQUIRED_ATTRIBUTE_ADDED", key)
    with ctx.at("properties"):
        for key in sorted(set(pa) | set(pb)):
            with ctx.at(key):
                if key not in pb:
                    _property_removed(ctx, o, u, key, pa[key])
                elif key not in pa:
                    _property_added(ctx, o, u, key, pb[key])
                else:
                    compare(ctx, Node(pa[key], o.resolver), Node(pb[key], u.resolver))
    _dependencies(ctx, o, u)
    _compare_additional(ctx, o, u, "additionalProperties", "ADDITIONAL_PROPERTIES")
    _limit(ctx, "maxProperties", a.get("maxProperties"), b.get("maxProperties"), "MAX_PROPERTIES")
    _limit(ctx, "minProperties", a.get("minProperties"), b.get("minProperties"), "MIN_PROPERTIES")


def _dependencies(ctx: Context, o: Node, u: Node) -> None:
    da, db = o.schema.get("dependencies") or {}, u.schema.get("dependencies") or {}
    with ctx.at("dependencies"):
        for key in sorted(set(da) | set(db)):
            va, vb = da.get(key), db.get(key)
            with ctx.at(key):
                if isinstance(va, list) or isinstance(vb, list):
                    if vb is None:
                        ctx.add("DEPENDENCY_ARRAY_REMOVED")
                    elif va is None:
                        ctx.add("DEPENDENCY_ARRAY_ADDED")
                    elif set(va) != set(vb):
                        ctx.add("DEPENDENCY_ARRAY_EXTENDED" if set(vb) >= set(va) else
                                "DEPENDENCY_ARRAY_NARROWED" if set(va) >= set(vb) else
                                "DEPENDENCY_ARRAY_CHANGED")
                elif vb is None:
                    ctx.add("DEPENDENCY_SCHEMA_REMOVED")
                elif va is None:
                    ctx.add("DEPENDENCY_SCHEMA_ADDED")
                else:
                    compare(ctx, Node(va, o.resolver), Node(vb, u.resolver))


def _array(ctx: Context, o: Node, u: Node) -> None:
    a, b = o.schema, u.schema
    _limit(ctx, "maxItems", a.get("maxItems"), b.get("maxItems"), "MAX_ITEMS")
    _limit(ctx, "minItems", a.get("minItems"), b.get("minItems"), "MIN_ITEMS")
    if bool(a.get("uniqueItems")) != bool(b.get("uniqueItems")):
        ctx.add("UNIQUE_ITEMS_ADDED" if b.get("uniqueItems") else "UNIQUE_ITEMS_REMOVED",
                "uniqueItems")
    ia, ib = a.get("items"), b.get("items")
    with ctx.at("items"):
        if isinstance(ia, list) and isinstance(ib, list):
            _tuple(ctx, o, u, ia, ib)
        elif isinstance(ia, list) or isinstance(ib, list):
            ctx.add("TYPE_CHANGED")
        else:
            compare(ctx, Node({} if ia is None else ia, o.resolver),
                    Node({} if ib is None else ib, u.resolver))
    _compare_additional(ctx, o, u, "additionalItems", "ADDITIONAL_ITEMS")


def _tuple(ctx: Context, o: Node, u: Node, ia: list[Any], ib: list[Any]) -> None:
    open_a = _additional(o.schema, "additionalItems") == (True, None)
    open_b = _additional(u.schema, "additionalItems") == (True, None)
    for i in range(max(len(ia), len(ib))):
        with ctx.at(str(i)):
            if i >= len(ib):
                ctx.add("ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL" if open_b else
                        "ITEM_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL" if ia[i] is False
                        else "ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL")
            elif i >= len(ia):
                if open_a:
                    ctx.add("ITEM_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL"
                            if kind(ib[i]) == "empty" else "ITEM_ADDED_TO_OPEN_CONTENT_MODEL")
                else:
                    ctx.add("ITEM_ADDED_TO_CLOSED_CONTENT_MODEL")
            else:
                compare(ctx, Node(ia[i], o.resolver), Node(ib[i], u.resolver))


_BY_KIND = {
    "string": _string, "number": _number, "enum": _enum, "const": _const, "not": _not,
    "combined": _combined_diff, "object": _object, "array": _array,
}


def differences(original: Node, update: Node) -> list[Difference]:
    """Every change from ``original`` to ``update`` (compatible or not)."""
    ctx = Context()
    compare(ctx, original, update)
    return ctx.differences


def incompatible(original: Node, update: Node) -> list[Difference]:
    """The changes that make data written with ``original`` unreadable by ``update``."""
    return [d for d in differences(original, update) if not d.compatible]


def incompatibilities(
    level: Level, new: Node, existing: Sequence[tuple[int, str, Node]]
) -> list[str]:
    """Why ``new`` may not follow ``existing`` ((version, text, node), oldest first) under
    ``level``; [] when it may. Messages are shaped like the Avro checker's."""
    if level is Level.NONE or not existing:
        return []
    against = list(existing) if level.transitive else [existing[-1]]
    messages: list[str] = []
    for version, text, old in reversed(against):
        found: list[Difference] = []
        if level.backward:
            found += incompatible(old, new)
        if level.forward:
            found += incompatible(new, old)
        if found:
            messages += [
                f"{{errorType:'{d.type}', description:'The new schema is incompatible: "
                f"{d.type.lower().replace('_', ' ')}', additionalInfo:'at {d.path}'}}"
                for d in found
            ]
            messages.append(f"{{oldSchemaVersion: {version}}}")
            messages.append(f"{{oldSchema: '{text}'}}")
            messages.append(f"{{compatibility: '{level.value}'}}")
            break
    return messages
