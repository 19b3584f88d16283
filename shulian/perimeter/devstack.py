"""The perimeter of ``shulian up --engine kafka``: development secrets for every principal of
the plan, and the plan applied as the broker's admin before any other child starts (the files
and what each child is given: :mod:`shulian.embedded.secure_stack`)."""

from __future__ import annotations

from pathlib import Path

from shulian.embedded.secure_stack import ADMIN, StackSecurity
from shulian.settings import Settings

__all__ = ["apply_perimeter", "prepare_security"]


def prepare_security(settings: Settings, *, state_dir: Path, broker_data: Path
                     ) -> StackSecurity:
    """Make the development secret of every principal of the plan that has none (kept across
    restarts in ``state_dir/credentials``); the broker makes its TLS files and the admin's
    secret itself (``shulian broker --secure``)."""
    from shulian.perimeter.identities import generate_credentials, load_credentials
    from shulian.perimeter.service import load_inputs

    _, _, identities = load_inputs(settings)
    credentials = state_dir / "credentials"
    made = generate_credentials(credentials, identities.principals)
    credentials.chmod(0o700)
    secrets = load_credentials(credentials, [p for p in identities.principals if p.name in made])
    return StackSecurity(broker_data=broker_data, credentials=credentials,
                         admin_secret_file=state_dir / "kafka-admin.secret",
                         generated={n: secrets[n] for n in made})


def apply_perimeter(settings: Settings, security: StackSecurity) -> str:
    """``shulian acl apply`` as the admin: every SCRAM user and ACL of the plan under the list
    in force (the catalogue's newest version, then the signed successors already on the
    control topic of a restarted stack: a revoked grant must not come back until ``acl sync``
    catches up). What was done, in words."""
    from shulian.io.kafka import admin_client
    from shulian.perimeter.identities import load_credentials
    from shulian.perimeter.kafka_admin import reconcile
    from shulian.perimeter.service import load_live_plan

    admin = security.settings_as(settings, ADMIN)
    plan = load_live_plan(admin)
    done = reconcile(admin_client(admin), plan,
                     load_credentials(security.credentials, plan.identities.principals))
    return (f"perimeter: list version {plan.list_version}, {len(plan.identities.principals)} "
            f"principals, {len(plan.acls)} ACLs ({len(done.acls.add)} added, "
            f"{len(done.acls.remove)} removed, {len(done.scram.create)} SCRAM users set)")
