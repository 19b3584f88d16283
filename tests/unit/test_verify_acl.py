"""Who may do what for joint verification: a gateway with ``verify_datasets`` reads the
verification changelog and the control topic (the list in force) and writes its audit; it
may not write the control topic or read canonical records; a gateway without it, and every
agency, gets none of that."""

from __future__ import annotations

from pathlib import Path

from shulian.chain.topology import Topology
from shulian.connectors.sources.config import GatewayConfig
from shulian.perimeter.acl import Operation, ResourceType, allows
from shulian.perimeter.identities import Principal, Role
from shulian.perimeter.plan import plan_acls
from shulian.perimeter.service import connector_access
from tests.fixtures.verify import verify_catalog

T = Topology()
TOPIC = ResourceType.TOPIC


def gateway(name: str, verifies: list[str]) -> GatewayConfig:
    return GatewayConfig.model_validate({
        "name": name, "type": "http_gateway", "verify_datasets": verifies,
        "agencies": {"bank": {"token_env": "BANK_TOKEN"},
                     "psb": {"token_env": "PSB_TOKEN", "datasets": ["household_change"]}}})


def test_only_the_verifying_gateway_reads_the_store_and_the_list(tmp_path: Path) -> None:
    catalog = verify_catalog(tmp_path)
    plan = plan_acls(catalog, connector_access([gateway("gw-verify", ["household_change"]),
                                                gateway("gw-ingest", [])]))
    verifier = Principal(Role.SOURCE, "gw-verify").kafka
    ingest = Principal(Role.SOURCE, "gw-ingest").kafka
    bank = Principal(Role.AGENCY, "bank").kafka
    changelog, audit = T.verify_changelog("household_change"), T.verify_audit("household_change")
    for op, name in ((Operation.READ, changelog), (Operation.READ, audit),
                     (Operation.WRITE, audit), (Operation.READ, T.control)):
        assert allows(plan.acls, verifier, op, TOPIC, name), (op, name)
        assert not allows(plan.acls, ingest, op, TOPIC, name), (op, name)
        assert not allows(plan.acls, bank, op, TOPIC, name), (op, name)
    for op, name in ((Operation.WRITE, T.control), (Operation.WRITE, changelog),
                     (Operation.READ, T.canonical("household_change"))):
        assert not allows(plan.acls, verifier, op, TOPIC, name), (op, name)
