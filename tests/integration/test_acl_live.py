"""The ACL plan on a broker that enforces it (the secured Apache Kafka broker): ``shulian acl
apply`` creates every principal's SCRAM user and reconciles the ACLs idempotently, ``acl check``
exits non-zero on drift, and what every principal can really read and write equals the plan."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from shulian.catalog.load import load_catalog
from shulian.chain.topology import Topology
from shulian.cli.main import cli
from shulian.embedded.net import wait_until
from shulian.perimeter.acl import Operation, allows
from shulian.perimeter.acl import ResourceType as Res
from shulian.perimeter.identities import Role
from shulian.perimeter.kafka_admin import reconcile
from shulian.perimeter.matrix import topic_inventory
from shulian.perimeter.service import load_inputs, load_plan
from tests.fixtures.perimeter import Perimeter, observe_reads, observe_writes

pytestmark = [pytest.mark.integration, pytest.mark.kafka_only]


def _acl(*args: str, env: dict[str, str]) -> tuple[int, str]:
    res = CliRunner().invoke(cli, ["acl", *args], env=env, catch_exceptions=False)
    return res.exit_code, res.output


def test_apply_creates_users_and_acls_check_finds_drift_apply_repairs_it(perimeter: Perimeter
                                                                         ) -> None:
    env = perimeter.admin_env()
    code, out = _acl("apply", env=env)
    assert code == 0, out
    code, out = _acl("apply", env=env)  # idempotent: nothing left to do
    assert code == 0 and "0 ACL(s) added, 0 removed, 0 SCRAM user(s) set, 0 deleted" in out, out
    code, out = _acl("check", env=env)
    assert code == 0 and "no drift" in out, out

    admin = AdminClient(perimeter.kafka.admin_config())
    stray = AclBinding(ResourceType.TOPIC, "canonical.", ResourcePatternType.PREFIXED,
                       "User:agency.psb", "*", AclOperation.READ, AclPermissionType.ALLOW)
    foreign = AclBinding(ResourceType.TOPIC, "elsewhere", ResourcePatternType.LITERAL,
                         "User:another-application", "*", AclOperation.READ,
                         AclPermissionType.ALLOW)
    for fut in admin.create_acls([stray, foreign]).values():
        fut.result(timeout=30)
    code, out = _acl("check", env=env)
    assert code == 1 and "unexpected ACLs" in out and "canonical." in out, out
    assert "another-application" not in out  # not Shulian's: neither drift nor removed

    code, out = _acl("apply", env=env)
    assert code == 0 and "0 ACL(s) added, 1 removed" in out, out
    code, out = _acl("check", env=env)
    assert code == 0, out
    left = admin.describe_acls(AclBindingFilter(
        ResourceType.TOPIC, "elsewhere", ResourcePatternType.LITERAL,
        None, None,  # type: ignore[arg-type]
        AclOperation.ANY, AclPermissionType.ANY)).result(timeout=30)
    assert [b.principal for b in left] == ["User:another-application"]


def _probe_topics(perimeter: Perimeter) -> list[str]:
    """Every topic of the deployment, plus raw, dead-letter and egress topics of every agency
    for every dataset (own and other, granted and not)."""
    settings = perimeter.admin_settings()
    catalog, access, _ = load_inputs(settings)
    t = Topology()
    found = set(topic_inventory(catalog, access, t, settings.schemas_topic))
    for a in catalog.agencies:
        for d in catalog.datasets:
            found |= {t.raw(a, d), t.deadletter(a, d), t.egress(a, d), t.verify_changelog(d)}
    return sorted(found)


def test_every_principal_reads_and_writes_exactly_what_the_plan_allows(perimeter: Perimeter
                                                                       ) -> None:
    """Every principal (agencies first) x every topic family x read/write, on the broker: the
    outcome equals the plan's, 0 unexpected allows (and 0 unexpected refusals)."""
    settings = perimeter.admin_settings()
    catalog = load_catalog(settings.catalog_dir, schemas_dir=settings.schemas_dir)
    plan = load_plan(settings, catalog=catalog)
    reconcile(AdminClient(perimeter.kafka.admin_config()), plan, perimeter.secrets())
    topics = _probe_topics(perimeter)
    admin = AdminClient(perimeter.kafka.admin_config())
    for fut in admin.create_topics([NewTopic(x, 1, 1) for x in topics]).values():
        try:
            fut.result(timeout=60)
        except Exception as exc:  # a second run in the same session: already there
            assert "TOPIC_ALREADY_EXISTS" in str(exc), exc

    mismatches: list[str] = []
    checked = allowed = 0
    principals = sorted(plan.identities.principals, key=lambda p: (p.role is not Role.AGENCY,
                                                                   p.name))
    for p in principals:
        conf = perimeter.client(p.name)
        seen = {Operation.WRITE: observe_writes(conf, topics),
                Operation.READ: observe_reads(conf, topics)}
        for op, outcome in seen.items():
            for topic, ok in outcome.items():
                want = allows(plan.acls, p.kafka, op, Res.TOPIC, topic)
                checked += 1
                allowed += ok
                if ok != want:
                    mismatches.append(f"{p.name} {op} {topic}: broker "
                                      f"{'allowed' if ok else 'refused'}, plan "
                                      f"{'allows' if want else 'refuses'}")
    assert not mismatches, "\n".join(mismatches)
    assert checked == 2 * len(topics) * len(principals) and 0 < allowed < checked


def _can_connect(perimeter: Perimeter, principal: str, password: str) -> bool:
    admin = AdminClient({**perimeter.kafka.client_config(principal, password), "log_level": 0})
    try:
        admin.list_topics(timeout=5)
    except Exception:
        return False
    return True


def test_rotate_replaces_a_principals_scram_credential(perimeter: Perimeter,
                                                       tmp_path_factory: pytest.TempPathFactory
                                                       ) -> None:
    """`acl apply --rotate agency.civil` after its secret file changed: the new secret logs in,
    the old one no longer does; the other principals keep theirs."""
    import shutil

    creds = tmp_path_factory.mktemp("rotated")
    shutil.copytree(perimeter.credentials_dir, creds, dirs_exist_ok=True)
    env = {**perimeter.admin_env(), "SHULIAN_CREDENTIALS_DIR": str(creds)}
    assert _acl("apply", env=env)[0] == 0
    old = perimeter.secret("agency.civil")
    new_file = creds / "agency.civil"
    new_file.write_text("a-new-secret-for-civil-" + old[:8] + "\n", "utf-8")
    new = new_file.read_text("utf-8").strip()
    assert _can_connect(perimeter, "agency.civil", old)
    code, out = _acl("apply", "--rotate", "agency.civil", env=env)
    assert code == 0 and "1 SCRAM user(s) set" in out, out
    # the broker applies the committed change when its metadata catches up (seconds at most)
    assert wait_until(lambda: _can_connect(perimeter, "agency.civil", new), timeout_s=15)
    assert not _can_connect(perimeter, "agency.civil", old)
    assert _can_connect(perimeter, "agency.tax", perimeter.secret("agency.tax"))
    # back to the session's secret, so the other tests keep working
    assert _acl("apply", "--rotate", "agency.civil", env=perimeter.admin_env())[0] == 0
    assert wait_until(lambda: _can_connect(perimeter, "agency.civil", old), timeout_s=15)
