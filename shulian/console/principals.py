"""The console's token book from the stack's configuration (an edge: reads files and env).

Agencies log in with the same tokens the ingest gateway accepts: every ``http_gateway``
connector among the stack's connector configs (``settings.connectors_dir``, as ``shulian up``
runs them) names, per agency, either ``token_sha256`` or ``token_env``; env-held tokens are
hashed as soon as they are read. The governance office and the auditor have their own tokens
(``SHULIAN_CONSOLE_GOVERNANCE_TOKEN``, ``SHULIAN_CONSOLE_AUDITOR_TOKEN``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from shulian.console.auth import TokenBook
from shulian.errors import ConfigError, ConfigIssue
from shulian.settings import Settings

__all__ = ["agency_digests", "token_book"]


def agency_digests(paths: Sequence[Path], environ: Mapping[str, str]) -> dict[str, str]:
    """agency -> hex SHA-256 of its gateway token, over every gateway config in ``paths``.
    An agency whose ``token_env`` is unset cannot log in (left out, not an error)."""
    from shulian.connectors.config import load_connector_files
    from shulian.connectors.sources.config import GatewayConfig
    from shulian.connectors.sources.gateway_auth import token_sha256

    out: dict[str, str] = {}
    for loaded in load_connector_files(paths, check_env=False, env=environ):
        cfg = loaded.config
        if not isinstance(cfg, GatewayConfig):
            continue
        for agency, acc in cfg.agencies.items():
            if acc.token_sha256 is not None:
                out[agency] = acc.token_sha256
            elif acc.token_env and environ.get(acc.token_env):
                out[agency] = token_sha256(environ[acc.token_env])
    return out


def token_book(settings: Settings, environ: Mapping[str, str]) -> TokenBook:
    """Every principal that can log in; none at all is a configuration error."""
    from shulian.embedded.stack import connector_configs

    gov = settings.console_governance_token
    aud = settings.console_auditor_token
    book = TokenBook.of(
        agencies=agency_digests(connector_configs(settings), environ),
        governance=None if gov is None else gov.get_secret_value(),
        auditor=None if aud is None else aud.get_secret_value(),
    )
    if len(book) == 0:
        raise ConfigError([ConfigIssue(
            "environment", "SHULIAN_CONSOLE_GOVERNANCE_TOKEN",
            "nobody could log in: set it (or SHULIAN_CONSOLE_AUDITOR_TOKEN, or a gateway "
            f"token_env of the connectors in {settings.connectors_dir})")])
    return book
