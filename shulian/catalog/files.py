"""Reading catalogue files and collecting issues (file, field, why) instead of stopping at the
first one. Shared by the catalogue loader and the sharing-list checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from shulian.errors import ConfigIssue
from shulian.validation import validation_issues

M = TypeVar("M", bound=BaseModel)
WHOLE_FILE = "(file)"


@dataclass
class Ctx:
    root: Path
    schemas_dir: Path
    issues: list[ConfigIssue] = field(default_factory=list)

    def name(self, path: Path) -> str:
        for base in (self.root, self.schemas_dir):
            if path.is_relative_to(base):
                return f"{base.name}/{path.relative_to(base).as_posix()}"
        return str(path)

    def issue(self, file: str, where: str, why: str) -> None:
        self.issues.append(ConfigIssue(file, where or WHOLE_FILE, why))


def read_yaml(ctx: Ctx, path: Path) -> Any:
    if not path.is_file():
        ctx.issue(ctx.name(path), WHOLE_FILE, "file not found")
        return None
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        ctx.issue(ctx.name(path), WHOLE_FILE, f"not valid YAML: {first_line(exc)}")
        return None


def first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def validate_into(issues: list[ConfigIssue], model: type[M], data: Any, file: str) -> M | None:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        issues.extend(validation_issues(exc, file=file, whole=WHOLE_FILE))
        return None


def read_model(ctx: Ctx, path: Path, model: type[M]) -> M | None:
    """One catalogue file read and validated into ``model``; None (with its issues in ``ctx``)
    when it cannot be read or does not validate."""
    data = read_yaml(ctx, path)
    return validate_into(ctx.issues, model, data, ctx.name(path)) if data is not None else None
