"""The worker's Faust app authenticates like the confluent-kafka clients: SCRAM-SHA-512 with its
principal's secret and the broker verified against the configured CA, as aiokafka receives it."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from shulian.errors import ConfigError
from shulian.perimeter.tls import make_test_pki
from shulian.settings import load_settings
from shulian.streams.app import faust_app
from shulian.streams.credentials import faust_credentials

NOW = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)


def test_sasl_ssl_reaches_aiokafka_as_scram_with_a_verifying_context(tmp_path: Path) -> None:
    pki = make_test_pki(tmp_path / "tls", now=NOW)
    secret = tmp_path / "chain"
    secret.write_text("s3cret\n")
    s = load_settings(kafka_security_protocol="SASL_SSL", principal="chain",
                      secret_file=secret, kafka_ssl_ca_location=pki.ca_cert)
    creds = faust_credentials(s)
    auth = credentials_to_aiokafka_auth(creds)
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (auth["sasl_plain_username"], auth["sasl_plain_password"]) == ("chain", "s3cret")
    ctx = auth["ssl_context"]
    assert ctx.verify_mode is ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.get_ca_certs()[0]["subject"] == ((("commonName", "Shulian test CA"),),)
    assert "s3cret" not in repr(creds)
    app = faust_app("t", bootstrap_servers="127.0.0.1:1", datadir=tmp_path / "f",
                    credentials=creds)
    assert app.conf.broker_credentials is creds


def test_sasl_plaintext_ssl_only_and_plaintext(tmp_path: Path) -> None:
    pki = make_test_pki(tmp_path / "tls", now=NOW)
    plain = faust_credentials(load_settings(kafka_security_protocol="SASL_PLAINTEXT",
                                            principal="chain", secret="x"))
    assert credentials_to_aiokafka_auth(plain)["security_protocol"] == "SASL_PLAINTEXT"
    tls = faust_credentials(load_settings(kafka_security_protocol="SSL",
                                          kafka_ssl_ca_location=pki.ca_cert))
    assert credentials_to_aiokafka_auth(tls)["security_protocol"] == "SSL"
    assert faust_credentials(load_settings()) is None


def test_a_sasl_listener_without_identity_or_an_unknown_protocol_stops_start_up() -> None:
    with pytest.raises(ConfigError, match="SHULIAN_PRINCIPAL"):
        faust_credentials(load_settings(kafka_security_protocol="SASL_SSL"))
    with pytest.raises(ConfigError, match="SHULIAN_PRINCIPAL"):
        faust_credentials(load_settings(kafka_security_protocol="SASL_PLAINTEXT",
                                        principal="chain"))
    with pytest.raises(ConfigError, match="SHULIAN_KAFKA_SECURITY_PROTOCOL"):
        faust_credentials(load_settings(kafka_security_protocol="SASL_TLS"))
