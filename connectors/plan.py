"""What ``shulian up`` needs from the connector configs it runs: they are validated here (the
connectors' own models) and what the stack can supply is planned (:class:`ConnectorPlan`, a
value the embedded stack starts its children from). Here and not in
:mod:`shulian.embedded.stack`, so the stack does not import the connectors' configs."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from shulian.connectors.config import load_connector_files
from shulian.connectors.sources.config import FileDropConfig, GatewayConfig, TableSourceConfig
from shulian.embedded.stack import ConnectorPlan, dev_token

__all__ = ["plan_connectors"]


def plan_connectors(
    paths: Sequence[Path], *, environ: Mapping[str, str], state_dir: Path, stack_dsn: str,
    gateway_host: str, gateway_port: int, make_token: Callable[[], str] = dev_token,
) -> ConnectorPlan:
    """Validate the configs and supply what the stack can: ``${SHULIAN_STATE_DIR}`` (the stack's
    state directory), a dev token for every gateway ``token_env`` that is unset, the stack's
    PostgreSQL DSN for every PostgreSQL sink ``dsn_env`` that is unset, the file-drop
    directories. Anything else a config needs and the environment lacks is a ConfigError naming
    the file and the field (nothing is skipped).
    """
    env: dict[str, str] = {
        "SHULIAN_STATE_DIR": str(state_dir),
        "SHULIAN_GATEWAY_HOST": gateway_host,
        "SHULIAN_GATEWAY_PORT": str(gateway_port),
    }
    loaded = load_connector_files(paths, check_env=False, env={**environ, **env})
    tokens: dict[str, str] = {}
    dsn_vars: list[str] = []
    dirs: list[Path] = []
    gateway_url: str | None = None
    for c in loaded:
        cfg = c.config
        if isinstance(cfg, GatewayConfig):
            for acc in cfg.agencies.values():
                var = acc.token_env
                if var and not environ.get(var) and var not in tokens:
                    tokens[var] = make_token()
            host = cfg.host or gateway_host
            gateway_url = f"http://{host}:{cfg.port or gateway_port}/healthz"
        elif c.type == "postgres":
            var = cfg.dsn_env
            if not environ.get(var) and var not in dsn_vars:
                dsn_vars.append(var)
        elif isinstance(cfg, FileDropConfig):
            dirs += [cfg.directory, cfg.state_path.parent]
        elif isinstance(cfg, TableSourceConfig):
            dirs.append(cfg.state_file.parent)
    env |= tokens
    env |= {var: stack_dsn for var in dsn_vars}
    # everything else the configs name must be in the environment already
    load_connector_files(paths, check_env=True, env={**environ, **env})
    return ConnectorPlan(paths=tuple(paths), env=env, generated_tokens=tokens,
                         stack_dsn_vars=tuple(dsn_vars), directories=tuple(dict.fromkeys(dirs)),
                         gateway_url=gateway_url)
