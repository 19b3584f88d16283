"""Health of every component of the stack, probed over HTTP (an edge)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from shulian.settings import Settings

__all__ = ["Health", "children_health", "probe_all"]


@dataclass(frozen=True)
class Health:
    component: str
    url: str
    ok: bool | None  # None: not part of this stack (nothing answers and nothing was expected)
    detail: str


def _get(url: str, timeout_s: float) -> tuple[bool, str]:
    try:
        r = httpx.get(url, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return False, type(exc).__name__
    return r.status_code == 200, f"HTTP {r.status_code}"


def probe_all(settings: Settings, *, broker: tuple[bool | None, str],
              get: Callable[[str, float], tuple[bool, str]] = _get,
              timeout_s: float = 0.5) -> list[Health]:
    """Broker (from the console's own reader), registry, gateway and worker metrics."""
    ok, why = broker
    out = [Health("broker", settings.bootstrap_servers, ok,
                  why or ("reading" if ok else "not read yet" if ok is None else "failing"))]
    targets = [
        ("registry", f"{settings.registry_url.rstrip('/')}/subjects"),
        ("gateway", f"http://{settings.gateway_host}:{settings.gateway_port}/healthz"),
        ("worker", f"http://{settings.metrics_host}:{settings.metrics_port}/metrics"),
    ]
    for name, url in targets:
        answered, detail = get(url, timeout_s)
        out.append(Health(name, url, answered, detail))
    return out + children_health(settings.stack_status_file)


def children_health(status_file: Path | None) -> list[Health]:
    """The children of ``shulian up`` as its supervisor last wrote them: state and restarts."""
    if status_file is None:
        return []
    try:
        children = json.loads(status_file.read_text("utf-8"))["children"]
    except (OSError, ValueError, KeyError):
        return [Health("stack", str(status_file), None, "no status yet")]
    return [Health(f"child {c['name']}", f"pid {c['pid']}", c["state"] == "running",
                   f"{c['state']}, restarts {c['restarts']}") for c in children]
