"""Writing approval data into a list file's text without losing its comments: the top-level
``supersedes:`` and ``signatures:`` blocks are replaced (or added), the rest stays as written.
Pure text in, text out."""

from __future__ import annotations

import re

import yaml

from shulian.catalog.models import ListSignatures, SharingList, Supersedes

__all__ = ["with_approval", "with_block"]

_TOP = re.compile(r"^[^\s#-]")


def with_block(text: str, name: str, block: str | None, *, before: str | None = None) -> str:
    """``text`` with its top-level ``name:`` block replaced by ``block`` (removed when None);
    a new block goes before the top-level ``before:`` key when there is one, else at the end."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    skipping = False
    for line in lines:
        if _TOP.match(line):
            skipping = line.startswith(f"{name}:")
        if not skipping:
            out.append(line)
    if block is None:
        return "".join(out)
    new = block if block.endswith("\n") else block + "\n"
    if before is not None:
        for i, line in enumerate(out):
            if line.startswith(f"{before}:"):
                return "".join([*out[:i], new, *out[i:]])
    body = "".join(out)
    if body and not body.endswith("\n"):
        body += "\n"
    return body + new


def _dump(name: str, value: object) -> str:
    return yaml.safe_dump({name: value}, allow_unicode=True, sort_keys=False, width=200)


def supersedes_block(sup: Supersedes | None) -> str | None:
    return None if sup is None else _dump("supersedes", sup.model_dump(mode="json"))


def signatures_block(sigs: ListSignatures | None) -> str | None:
    if sigs is None:
        return None
    return _dump("signatures", sigs.model_dump(mode="json", exclude_none=True))


def with_approval(text: str, sl: SharingList) -> str:
    """``text`` (the file ``sl`` was read from) carrying ``sl``'s version number, predecessor
    and signatures."""
    text = re.sub(r"(?m)^version:.*$", f"version: {sl.version}", text, count=1)
    text = with_block(text, "supersedes", supersedes_block(sl.supersedes), before="entries")
    return with_block(text, "signatures", signatures_block(sl.signatures))
