"""The pure parts of reconciliation: SCRAM users to create and delete, the list version in
force after reading the control topic, and ACL bindings surviving the AdminClient conversion."""

from __future__ import annotations

from shulian.catalog.load import load_catalog
from shulian.perimeter.acl import Acl, Operation, PatternType, Permission, ResourceType
from shulian.perimeter.kafka_admin import from_binding, scram_diff, to_binding
from shulian.perimeter.sync import next_in_force
from shulian.settings import load_settings


def test_scram_diff_creates_missing_and_deletes_only_shulian_users() -> None:
    d = scram_diff(["agency.psb", "chain"], ["chain", "admin", "agency.gone", "sink.old"])
    assert d.create == ("agency.psb",)
    assert d.delete == ("agency.gone", "sink.old")  # admin is the operator's
    assert scram_diff(["chain"], ["chain"]).empty


def test_next_in_force_takes_newer_valid_versions_only() -> None:
    s = load_settings()
    catalog = load_catalog(s.catalog_dir, schemas_dir=s.schemas_dir)
    v1, v2 = catalog.sharing_lists[1], catalog.sharing_lists[2]
    v3 = v2.model_copy(update={"version": 3})
    assert next_in_force(v1, [v2.model_dump_json().encode()], catalog).version == 2
    assert next_in_force(v2, [v1.model_dump_json().encode()], catalog).version == 2  # older
    got = next_in_force(v2, [b"\xff not utf-8", b"version: [", v3.model_dump_json().encode()],
                        catalog)
    assert got.version == 3


def test_bindings_round_trip_through_the_admin_client_types() -> None:
    for acl in (Acl("User:agency.psb", ResourceType.TOPIC, "raw.psb.", PatternType.PREFIXED,
                    Operation.WRITE),
                Acl("User:agency.psb", ResourceType.TOPIC, "_schemas", PatternType.LITERAL,
                    Operation.ALL, Permission.DENY),
                Acl("User:chain", ResourceType.GROUP, "shulian-chain", PatternType.LITERAL,
                    Operation.READ)):
        assert from_binding(to_binding(acl)) == acl
