"""The pure parts of reconciliation: SCRAM users to create and delete, the list version in
force after reading the control topic, and ACL bindings surviving the AdminClient conversion."""

from __future__ import annotations

from shulian.catalog.load import load_catalog
from shulian.perimeter.acl import Acl, Operation, PatternType, Permission, ResourceType
from shulian.perimeter.kafka_admin import from_binding, scram_diff, to_binding
from shulian.perimeter.sync import InForce
from shulian.settings import load_settings
from tests.fixtures.signing import next_version


def test_scram_diff_creates_missing_and_deletes_only_shulian_users() -> None:
    d = scram_diff(["agency.psb", "chain"], ["chain", "admin", "agency.gone", "sink.old"])
    assert d.create == ("agency.psb",)
    assert d.delete == ("agency.gone", "sink.old")  # admin is the operator's
    assert scram_diff(["chain"], ["chain"]).empty


def test_the_list_in_force_moves_only_to_a_signed_successor() -> None:
    """The worker's rule (ListLedger): an unsigned copy numbered 3, junk and an older version
    change nothing; the signed v3 naming v2 moves the list in force."""
    s = load_settings()
    catalog = load_catalog(s.catalog_dir, schemas_dir=s.schemas_dir)
    v1, v2 = catalog.sharing_lists[1], catalog.sharing_lists[2]
    state = InForce.of(catalog)
    assert state.current.version == 2
    forged = v2.model_copy(update={"version": 3})
    got = state.offer([b"\xff not utf-8", b"version: [", v1.model_dump_json().encode(),
                       forged.model_dump_json().encode()], now=None)
    assert got.version == 2 and 3 in state.refused
    signed = next_version(catalog, ("amr", "business_licence"))
    assert state.offer([signed.model_dump_json().encode()], now=None).version == 3
    assert state.current == signed


def test_bindings_round_trip_through_the_admin_client_types() -> None:
    for acl in (Acl("User:agency.psb", ResourceType.TOPIC, "raw.psb.", PatternType.PREFIXED,
                    Operation.WRITE),
                Acl("User:agency.psb", ResourceType.TOPIC, "_schemas", PatternType.LITERAL,
                    Operation.ALL, Permission.DENY),
                Acl("User:chain", ResourceType.GROUP, "shulian-chain", PatternType.LITERAL,
                    Operation.READ)):
        assert from_binding(to_binding(acl)) == acl
