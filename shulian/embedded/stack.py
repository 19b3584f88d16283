"""What ``shulian up`` runs: the endpoints of the embedded stack and its children, as data.

To add a child, append a :class:`ChildSpec` in :func:`stack_children`, guarded by the name of
the ``shulian`` command it runs (``if "gateway" in commands``), so ``up`` keeps working on a tree
where that command does not exist yet. Children configure themselves from SHULIAN_* variables
(:func:`child_env`), so an argv rarely needs more than the command name.
"""

from __future__ import annotations

import sys
from collections.abc import Collection
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from shulian.embedded.net import http_answers
from shulian.embedded.supervisor import ChildSpec
from shulian.embedded.tansu import broker_answers_metadata
from shulian.settings import Settings


@dataclass(frozen=True)
class Endpoints:
    bootstrap: str
    registry_url: str
    gateway_url: str
    metrics_url: str

    @classmethod
    def from_settings(cls, settings: Settings, *, host: str = "127.0.0.1") -> Endpoints:
        return cls(
            bootstrap=f"{host}:{settings.broker_port}",
            registry_url=f"http://{settings.registry_host}:{settings.registry_port}",
            gateway_url=f"http://{settings.gateway_host}:{settings.gateway_port}",
            metrics_url=f"http://{host}:{settings.metrics_port}/metrics",
        )

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("bootstrap servers", self.bootstrap),
            ("schema registry", self.registry_url),
            ("gateway", self.gateway_url),
            ("metrics", self.metrics_url),
        ]


def shulian_argv(*args: str) -> tuple[str, ...]:
    """Run a ``shulian`` subcommand with the same interpreter as this process."""
    script = Path(sys.executable).parent / "shulian"
    if script.exists():
        return (str(script), *args)
    return (sys.executable, "-c", "from shulian.cli.main import main; main()", *args)


def child_env(settings: Settings, endpoints: Endpoints) -> dict[str, str]:
    """SHULIAN_* variables every child reads: where the broker and the registry are."""
    return {
        "SHULIAN_BOOTSTRAP_SERVERS": endpoints.bootstrap,
        "SHULIAN_REGISTRY_URL": endpoints.registry_url,
        "SHULIAN_REGISTRY_HOST": settings.registry_host,
        "SHULIAN_REGISTRY_PORT": str(settings.registry_port),
        "SHULIAN_CATALOG_DIR": str(settings.catalog_dir),
        "SHULIAN_SCHEMAS_DIR": str(settings.schemas_dir),
        "SHULIAN_LOG_FORMAT": "json",
    }


def _registry_ready(url: str) -> bool:
    import httpx

    return httpx.get(f"{url}/subjects", timeout=1.0).status_code == 200


def connector_configs(settings: Settings) -> list[Path]:
    d = settings.connectors_dir
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.suffix in (".yaml", ".yml"))


def stack_children(
    settings: Settings, endpoints: Endpoints, *, commands: Collection[str]
) -> list[ChildSpec]:
    """The children of ``shulian up`` in start order; only those whose command exists.

    ``needs_init`` children start after topics and schemas are initialised.
    """
    env = child_env(settings, endpoints)
    broker_argv = ["broker", "--port", str(settings.broker_port)]
    if settings.data_dir is not None:
        broker_argv += ["--data-dir", str(settings.data_dir)]
    children = [
        ChildSpec(
            "broker", shulian_argv(*broker_argv), env=env,
            ready=partial(broker_answers_metadata, endpoints.bootstrap),
            ready_timeout_s=120.0,
            stop_timeout_s=30.0,  # a durable broker stops SeaweedFS too (5 s grace + kill)
        ),
    ]
    if "registry" in commands:
        children.append(ChildSpec(
            "registry",
            shulian_argv("registry", "--bootstrap", endpoints.bootstrap,
                         "--port", str(settings.registry_port)),
            env=env, ready=partial(_registry_ready, endpoints.registry_url),
            ready_timeout_s=60.0,
        ))
    if "worker" in commands:
        children.append(ChildSpec(
            "worker", shulian_argv("worker"),
            env={**env, "SHULIAN_WORKER_ID": settings.worker_id,
                 "SHULIAN_METRICS_PORT": str(settings.metrics_port)},
            needs_init=True, stop_timeout_s=20.0,
        ))
    if "gateway" in commands:
        children.append(ChildSpec(
            "gateway", shulian_argv("gateway"),
            env={**env, "SHULIAN_GATEWAY_HOST": settings.gateway_host,
                 "SHULIAN_GATEWAY_PORT": str(settings.gateway_port)},
            ready=partial(http_answers, endpoints.gateway_url), needs_init=True,
        ))
    configs = connector_configs(settings)
    if "connect" in commands and configs:
        children.append(ChildSpec(
            "connect", shulian_argv("connect", "run", *map(str, configs)), env=env,
            needs_init=True, stop_timeout_s=20.0,
        ))
    return children
