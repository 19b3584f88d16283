"""Each connector of a `connect run` process connects as its own principal (`source.<name>`,
`sink.<name>`) with its own secret, when the process is given a folder of principal secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from shulian.connectors.metrics import ConnectorMetrics
from shulian.connectors.sources.config import GatewayConfig
from shulian.connectors.table import build_connector
from shulian.io.kafka import security_config
from shulian.settings import load_settings


def test_for_principal_reads_that_principals_own_secret(tmp_path: Path) -> None:
    (tmp_path / "sink.pg").write_text("pg-secret\n")
    (tmp_path / "source.gw").write_text("gw-secret\n")
    s = load_settings(kafka_security_protocol="SASL_SSL", principal="chain", secret="chain-s",
                      principal_secrets_dir=tmp_path)
    sink = s.for_principal("sink.pg")
    assert security_config(sink)["sasl.username"] == "sink.pg"
    assert security_config(sink)["sasl.password"] == "pg-secret"
    assert sink.registry_auth_conf()["basic.auth.user.info"] == "sink.pg:pg-secret"
    unchanged = load_settings(principal="chain", secret="c")
    assert unchanged.for_principal("sink.pg") is unchanged


def test_a_built_gateway_is_its_own_principal(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "source.gw").write_text("gw-secret\n")
    monkeypatch.setenv("T_PSB", "token-of-psb-0123456789")
    config = GatewayConfig.model_validate(
        {"name": "gw", "type": "http_gateway",
         "agencies": {"psb": {"token_env": "T_PSB", "datasets": ["household_change"]}}})
    s = load_settings(kafka_security_protocol="SASL_PLAINTEXT", principal="chain",
                      secret="chain-s", principal_secrets_dir=tmp_path)
    built = build_connector(config, settings=s, metrics=ConnectorMetrics.create())
    got = security_config(built.settings)  # type: ignore[attr-defined]
    assert (got["sasl.username"], got["sasl.password"]) == ("source.gw", "gw-secret")
