"""The chain's trust material from settings and the catalogue: the public keyring, the chain's
own signing key (``SHULIAN_SIGNING_KEY`` or ``SHULIAN_SIGNING_KEY_FILE``; with development keys
allowed and neither set, the example key ``catalog/dev-keys/chain-dev-1.pem``) and the refusal
of development keys in a production configuration. The secret is never logged."""

from __future__ import annotations

from dataclasses import dataclass

from shulian.catalog.keys import CHAIN, Keyring, SigningKey, private_key_from_text, public_key_b64
from shulian.catalog.models import Catalog
from shulian.errors import ConfigError, ConfigIssue
from shulian.settings import Settings

__all__ = ["DEV_CHAIN_KEY", "Trust", "chain_trust", "refuse_dev_keys"]

DEV_CHAIN_KEY = "dev-keys/chain-dev-1.pem"


@dataclass(frozen=True)
class Trust:
    keys: Keyring
    signer: SigningKey


def refuse_dev_keys(settings: Settings, catalog: Catalog) -> None:
    """ConfigError when the catalogue holds development keys and they are not allowed."""
    dev = Keyring(catalog.keys).development()
    if dev and not settings.allow_dev_keys:
        raise ConfigError([ConfigIssue(
            "catalog/keys.yaml", "keys",
            f"development keys {', '.join(dev)} (their private halves are in the repository); "
            "replace them with your own, or set SHULIAN_ALLOW_DEV_KEYS=1 for development")])


def _issue(field: str, why: str) -> ConfigError:
    return ConfigError([ConfigIssue("environment", field, why)])


def chain_signing_key(settings: Settings, catalog: Catalog) -> SigningKey:
    """The chain's private key, named by its ``chain`` key in the catalogue."""
    if settings.signing_key is not None and settings.signing_key.get_secret_value():
        source, field = settings.signing_key.get_secret_value().encode("utf-8"), \
            "SHULIAN_SIGNING_KEY"
    else:
        path = settings.signing_key_file
        field = "SHULIAN_SIGNING_KEY_FILE"
        if path is None:
            if not settings.allow_dev_keys:
                raise _issue("SHULIAN_SIGNING_KEY", "not set: the worker signs every egress and "
                             "audit record with the chain's key (see docs/SECURITY.md)")
            path = settings.catalog_dir / DEV_CHAIN_KEY
        try:
            source = path.read_bytes()
        except OSError as exc:
            raise _issue(field, f"cannot read {path}: {exc.strerror}") from None
    try:
        private = private_key_from_text(source)
    except ValueError as exc:
        raise _issue(field, str(exc)) from None
    public = public_key_b64(private.public_key())
    for key in catalog.keys.values():
        if key.public_key == public and key.owner == CHAIN:
            return SigningKey(key.id, private)
    raise _issue(field, "its public half is not a 'chain' key in catalog/keys.yaml")


def chain_trust(settings: Settings, catalog: Catalog) -> Trust:
    refuse_dev_keys(settings, catalog)
    return Trust(keys=Keyring(catalog.keys), signer=chain_signing_key(settings, catalog))
