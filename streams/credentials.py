"""The worker's Kafka identity for Faust: this process's settings as Faust's
``broker_credentials`` (faust-streaming 0.15.3 hands them to aiokafka through
``credentials_to_aiokafka_auth``, for its consumer and its producer alike).

The same settings as the confluent-kafka clients (:func:`shulian.io.kafka.security_config`):
SCRAM-SHA-512 with ``SHULIAN_PRINCIPAL`` and its secret on a SASL listener, the broker's
certificate verified against ``SHULIAN_KAFKA_SSL_CA_LOCATION`` (hostname checked) on a TLS one.
The credentials hold the secret: never log them (Faust's ``repr`` shows the username only).
"""

from __future__ import annotations

import ssl

import faust
from faust.types.auth import CredentialsT

from shulian.errors import ConfigError, ConfigIssue
from shulian.io.kafka import SCRAM_MECHANISM
from shulian.settings import Settings

__all__ = ["faust_credentials", "tls_context"]

_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


def tls_context(settings: Settings) -> ssl.SSLContext:
    """Verify the brokers against the configured CA (the system's when unset), and present a
    client certificate where one is configured."""
    ctx = ssl.create_default_context(
        cafile=str(settings.kafka_ssl_ca_location) if settings.kafka_ssl_ca_location else None)
    cert, key = settings.kafka_ssl_certificate_location, settings.kafka_ssl_key_location
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key) if key is not None else None)
    return ctx


def faust_credentials(settings: Settings) -> CredentialsT | None:
    """Faust's ``broker_credentials`` for this process (None on a PLAINTEXT listener).

    ConfigError when the protocol is unknown, or a SASL listener has no principal or secret:
    an unauthenticated worker would only be refused by the broker later, less clearly."""
    protocol = settings.kafka_security_protocol.upper()
    if protocol not in _PROTOCOLS:
        raise ConfigError([ConfigIssue("<environment>", "SHULIAN_KAFKA_SECURITY_PROTOCOL",
                                       f"{protocol} is not one of {', '.join(_PROTOCOLS)}")])
    context = tls_context(settings) if protocol.endswith("SSL") else None
    if not protocol.startswith("SASL"):
        return faust.SSLCredentials(context) if context is not None else None
    secret = settings.identity_secret() if settings.principal else None
    if secret is None:
        raise ConfigError([ConfigIssue("<environment>", "SHULIAN_PRINCIPAL",
                                       f"a {protocol} listener needs this process's principal "
                                       "and SHULIAN_SECRET or SHULIAN_SECRET_FILE")])
    return faust.SASLCredentials(username=settings.principal,
                                 password=secret.get_secret_value(), ssl_context=context,
                                 mechanism=settings.kafka_sasl_mechanism or SCRAM_MECHANISM)
