"""TLS material: a private CA with server and client certificates (for tests and development
set-ups: SASL_SSL listeners, the registry and the gateway over HTTPS), and the uvicorn settings
that serve HTTPS when SHULIAN_TLS_CERT_FILE and SHULIAN_TLS_KEY_FILE are set.

Production uses certificates from the operator's own CA; only the file locations matter here.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shulian.errors import ConfigError, ConfigIssue
from shulian.settings import Settings

__all__ = ["BrokerTls", "TlsFiles", "make_broker_pki", "make_test_pki", "uvicorn_ssl"]


@dataclass(frozen=True)
class TlsFiles:
    """PEM files in one folder: the CA certificate, a server and a client certificate/key."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _write_key(path: Path, key: Any) -> None:
    from cryptography.hazmat.primitives import serialization

    path.touch(mode=0o600)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def _write_cert(path: Path, cert: Any) -> None:
    from cryptography.hazmat.primitives import serialization

    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _cert(subject_cn: str, key: Any, issuer: Any, issuer_key: Any, *, now: dt.datetime,
          days: int, ca: bool, sans: Sequence[str] = (), server: bool = False,
          client: bool = True) -> Any:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)])
    b = (x509.CertificateBuilder().subject_name(name)
         .issuer_name(issuer if issuer is not None else name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(minutes=5))
         .not_valid_after(now + dt.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                          crl_sign=True, content_commitment=False,
                                          key_encipherment=False, data_encipherment=False,
                                          key_agreement=False, encipher_only=False,
                                          decipher_only=False), critical=True)
    else:
        usages = [ExtendedKeyUsageOID.SERVER_AUTH] if server else []
        usages += [ExtendedKeyUsageOID.CLIENT_AUTH] if client or not server else []
        b = b.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if sans:
        alt: list[x509.GeneralName] = []
        for s in sans:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(s)))
            except ValueError:
                alt.append(x509.DNSName(s))
        b = b.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def make_test_pki(folder: Path, *, now: dt.datetime, hosts: Sequence[str] = ("localhost",
                                                                              "127.0.0.1"),
                  client_cn: str = "shulian-client", days: int = 30) -> TlsFiles:
    """A fresh CA and a server certificate for ``hosts`` (DNS names or IPs) and a client
    certificate, written as PEM into ``folder`` (keys mode 0600). ``now`` is injected: the
    certificates are valid from ``now`` - 5 minutes for ``days``."""
    from cryptography.hazmat.primitives.asymmetric import ec

    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("Shulian test CA", ca_key, None, ca_key, now=now, days=days, ca=True)
    files = TlsFiles(folder / "ca.pem", folder / "server.pem", folder / "server.key",
                     folder / "client.pem", folder / "client.key")
    _write_cert(files.ca_cert, ca)
    for cert_path, key_path, cn, server in (
            (files.server_cert, files.server_key, hosts[0], True),
            (files.client_cert, files.client_key, client_cn, False)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(cn, key, ca.subject, ca_key, now=now, days=days, ca=False,
                     sans=hosts if server else (), server=server, client=not server)
        _write_cert(cert_path, cert)
        _write_key(key_path, key)
    return files


@dataclass(frozen=True)
class BrokerTls:
    """A broker's TLS material: the CA clients trust, and the nodes' PEM keystore (private key
    then certificate, mode 0600) that serves the client listeners and authenticates the nodes to
    each other (mutual TLS on the controller and inter-broker listeners)."""

    ca_cert: Path
    keystore: Path


def make_broker_pki(folder: Path, *, now: dt.datetime, node_cn: str,
                    hosts: Sequence[str] = ("127.0.0.1", "localhost"),
                    days: int = 365) -> BrokerTls:
    """A fresh CA and one node certificate (CN ``node_cn``, SANs ``hosts``, usable as server and
    as client) for every node of a Kafka cluster, written into ``folder``. ``now`` is injected.
    The CA's key is not kept: nothing else can be signed by it later."""
    from cryptography.hazmat.primitives.asymmetric import ec

    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("Shulian broker CA", ca_key, None, ca_key, now=now, days=days, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    node = _cert(node_cn, key, ca.subject, ca_key, now=now, days=days, ca=False, sans=hosts,
                 server=True, client=True)
    files = BrokerTls(folder / "ca.pem", folder / "node-keystore.pem")
    _write_cert(files.ca_cert, ca)
    _write_key(files.keystore, key)
    from cryptography.hazmat.primitives import serialization

    with files.keystore.open("ab") as out:  # the chain after the key: Kafka's PEM keystore
        out.write(node.public_bytes(serialization.Encoding.PEM))
        out.write(ca.public_bytes(serialization.Encoding.PEM))
    return files


def uvicorn_ssl(settings: Settings) -> dict[str, Any]:
    """uvicorn's ``ssl_certfile``/``ssl_keyfile`` from the settings: both set = HTTPS, neither =
    plain HTTP; only one is a configuration error."""
    cert, key = settings.tls_cert_file, settings.tls_key_file
    if cert is None and key is None:
        return {}
    if cert is None or key is None:
        missing = "SHULIAN_TLS_CERT_FILE" if cert is None else "SHULIAN_TLS_KEY_FILE"
        raise ConfigError([ConfigIssue("<environment>", missing,
                                       "HTTPS needs both a certificate and its key")])
    for field, path in (("SHULIAN_TLS_CERT_FILE", cert), ("SHULIAN_TLS_KEY_FILE", key)):
        if not path.is_file():
            raise ConfigError([ConfigIssue(str(path), field, "no such file")])
    return {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
