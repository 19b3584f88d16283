"""``shulian up --engine kafka``: every principal gets a development secret once (0600, kept),
each child is given its own identity by path (never a secret in argv or the environment), the
broker runs secured, and ``acl sync`` runs as the broker's super user."""

from __future__ import annotations

import stat
from pathlib import Path

from shulian.connectors.plan import plan_connectors
from shulian.embedded.secure_stack import CHILD_PRINCIPALS
from shulian.embedded.stack import Endpoints, connector_configs, stack_children
from shulian.perimeter.devstack import prepare_security
from shulian.settings import load_settings

COMMANDS = {"registry", "worker", "connect", "console", "acl"}


def test_secrets_are_made_once_private_and_every_child_connects_as_itself(
        tmp_path: Path) -> None:
    settings = load_settings(broker_engine="kafka")
    state = tmp_path / "state"
    sec = prepare_security(settings, state_dir=state, broker_data=tmp_path)
    names = {p.name for p in sec.credentials.iterdir()}
    assert {"chain", "registry", "governance", "auditor", "agency.psb",
            "source.ingest-gateway", "sink.tax-business-licence-pg"} <= names
    assert set(sec.generated) == names
    assert stat.S_IMODE(sec.credentials.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in sec.credentials.iterdir())
    again = prepare_security(settings, state_dir=state, broker_data=tmp_path)
    assert again.generated == {}  # kept: made once, shown once

    plan = plan_connectors(connector_configs(settings), environ={}, state_dir=state,
                           stack_dsn="postgresql://x@127.0.0.1:1/x", gateway_host="127.0.0.1",
                           gateway_port=1)
    children = {c.name: c for c in stack_children(
        settings, Endpoints.from_settings(settings), commands=COMMANDS, connectors=plan,
        security=sec)}
    assert "--secure" in children["broker"].argv
    for child, principal in CHILD_PRINCIPALS.items():
        env = children[child].env
        assert env["SHULIAN_PRINCIPAL"] == principal.name
        assert env["SHULIAN_SECRET_FILE"] == str(sec.credentials / principal.name)
        assert env["SHULIAN_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert children["registry"].env["SHULIAN_CREDENTIALS_DIR"] == str(sec.credentials)
    assert "SHULIAN_CREDENTIALS_DIR" not in children["worker"].env
    connect = children["connect"].env
    assert "SHULIAN_PRINCIPAL" not in connect
    assert connect["SHULIAN_PRINCIPAL_SECRETS_DIR"] == str(sec.credentials)
    assert children["acl-sync"].env["SHULIAN_PRINCIPAL"] == "admin"
    assert children["acl-sync"].needs_init
    secrets = [s.get_secret_value() for s in sec.generated.values()]
    for c in children.values():
        shown = " ".join([*c.argv, *c.env.values()])
        assert not any(s in shown for s in secrets), c.name


def test_the_tansu_stack_has_no_identities() -> None:
    settings = load_settings()
    children = stack_children(settings, Endpoints.from_settings(settings), commands=COMMANDS)
    assert "acl-sync" not in {c.name for c in children}
    assert not any("SHULIAN_PRINCIPAL" in c.env for c in children)
    assert "--secure" not in children[0].argv
