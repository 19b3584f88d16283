"""Client security settings from a process's identity: SCRAM-SHA-512 with the secret from a file,
TLS locations, registry Basic auth, HTTPS settings, and clear errors when a part is missing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from shulian.errors import ConfigError
from shulian.io.kafka import client_config, security_config
from shulian.perimeter.tls import make_test_pki, uvicorn_ssl
from shulian.settings import load_settings


def test_sasl_ssl_identity_from_a_secret_file(tmp_path: Path) -> None:
    secret = tmp_path / "agency.psb"
    secret.write_text("s3cret\n")
    s = load_settings(kafka_security_protocol="SASL_SSL", principal="agency.psb",
                      secret_file=secret, kafka_ssl_ca_location=tmp_path / "ca.pem")
    conf = client_config(s)
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (conf["sasl.username"], conf["sasl.password"]) == ("agency.psb", "s3cret")
    assert conf["ssl.ca.location"] == str(tmp_path / "ca.pem")
    assert s.registry_auth_conf()["basic.auth.user.info"] == "agency.psb:s3cret"
    assert "s3cret" not in repr(s)  # a SecretStr and a path: never the secret itself
    secret.write_text("rotated\n")  # read per connection: a rotated file is picked up
    assert security_config(s)["sasl.password"] == "rotated"


def test_missing_secret_is_a_config_error_and_plaintext_needs_none(tmp_path: Path) -> None:
    s = load_settings(kafka_security_protocol="SASL_SSL", principal="chain")
    with pytest.raises(ConfigError, match="SHULIAN_SECRET"):
        security_config(s)
    with pytest.raises(ConfigError, match="SHULIAN_SECRET"):
        s.registry_auth_conf()
    assert security_config(load_settings()) == {}
    assert load_settings().registry_auth_conf() == {}


def test_https_needs_certificate_and_key(tmp_path: Path) -> None:
    pki = make_test_pki(tmp_path, now=dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
    assert oct(pki.server_key.stat().st_mode & 0o777) == "0o600"
    ok = uvicorn_ssl(load_settings(tls_cert_file=pki.server_cert, tls_key_file=pki.server_key))
    assert ok == {"ssl_certfile": str(pki.server_cert), "ssl_keyfile": str(pki.server_key)}
    assert uvicorn_ssl(load_settings()) == {}
    with pytest.raises(ConfigError, match="SHULIAN_TLS_KEY_FILE"):
        uvicorn_ssl(load_settings(tls_cert_file=pki.server_cert))
    with pytest.raises(ConfigError, match="no such file"):
        uvicorn_ssl(load_settings(tls_cert_file=tmp_path / "x.pem", tls_key_file=pki.server_key))


def test_credentials_files_are_private_and_complete(tmp_path: Path) -> None:
    from shulian.perimeter.identities import (
        Principal,
        Role,
        generate_credentials,
        load_credentials,
    )

    ps = [Principal(Role.AGENCY, "psb"), Principal(Role.CHAIN)]
    assert generate_credentials(tmp_path, ps) == ["agency.psb", "chain"]
    assert generate_credentials(tmp_path, ps) == []  # existing secrets are kept
    got = load_credentials(tmp_path, ps)
    assert sorted(got) == ["agency.psb", "chain"] and len(got["chain"].get_secret_value()) > 30
    (tmp_path / "chain").chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        load_credentials(tmp_path, ps)
    with pytest.raises(ConfigError, match="no secret for principal auditor"):
        load_credentials(tmp_path, [Principal(Role.AUDITOR)])
