"""The list moves the perimeter: a signed list version revoking a consumer's last entry for a
dataset, published on the control topic by the governance office, takes that consumer's READ on
the egress topic away (``acl sync``, :func:`shulian.perimeter.sync.follow`) and its next fetch
is refused by the broker within 10 s. An unsigned version changes nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from shulian.catalog.load import load_catalog
from shulian.chain.topology import Topology, agency_group_prefix
from shulian.perimeter.plan import AclPlan
from shulian.perimeter.service import load_inputs
from shulian.perimeter.sync import follow
from tests.fixtures.perimeter import Perimeter
from tests.fixtures.signing import next_version

pytestmark = [pytest.mark.integration, pytest.mark.kafka_only]

REVOKE_LIMIT_S = 10.0
PAIR = ("amr", "business_licence")  # v2's only entries for tax and hrss of this dataset


@pytest.fixture
def syncing(perimeter: Perimeter) -> Iterator[list[AclPlan]]:
    """``acl sync`` running as the admin; yields the plans it applied, in order."""
    settings = perimeter.admin_settings()
    catalog, access, _ = load_inputs(settings)
    applied: list[AclPlan] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            follow(settings, catalog, access, perimeter.secrets(), stop=stop, poll_s=0.2,
                   on_applied=applied.append)
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    thread = threading.Thread(target=run, name="acl-sync", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not applied and not errors and time.monotonic() < deadline:
        time.sleep(0.1)
    assert applied and not errors, errors or "acl sync applied nothing within 60 s"
    yield applied
    stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive() and not errors, errors


def _fetch_outcome(consumer: Consumer, topic: str, timeout_s: float) -> str | None:
    """'record', 'end' or 'refused' for the next answer on ``topic``, None if none came."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for m in consumer.consume(100, 0.2):
            if m.topic() != topic:
                continue
            err = m.error()
            if err is None:
                return "record"
            if err.code() == KafkaError._PARTITION_EOF:
                return "end"
            if err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                return "refused"
    return None


def test_a_revoked_consumer_is_refused_within_10_s(perimeter: Perimeter,
                                                   syncing: list[AclPlan]) -> None:
    settings = perimeter.admin_settings()
    catalog = load_catalog(settings.catalog_dir, schemas_dir=settings.schemas_dir)
    t = Topology()
    egress = t.egress("tax", PAIR[1])
    admin = AdminClient(perimeter.kafka.admin_config())
    for fut in admin.create_topics([NewTopic(egress, 1, 1), NewTopic(t.control, 1, 1)]
                                   ).values():
        try:
            fut.result(timeout=60)
        except Exception as exc:  # made by another test of the session
            assert "TOPIC_ALREADY_EXISTS" in str(exc), exc
    chain = Producer(perimeter.client("chain"))  # the chain writes egress
    chain.produce(egress, b"a masked view for tax")
    assert chain.flush(30) == 0

    tax = Consumer({**perimeter.client("agency.tax"), "enable.partition.eof": True,
                    "group.id": agency_group_prefix("tax") + "revocation",
                    "enable.auto.commit": False})
    tax.assign([TopicPartition(egress, 0, 0)])
    governance = Producer(perimeter.client("governance"))
    try:
        assert _fetch_outcome(tax, egress, 30) == "record"  # granted by v2

        v3 = next_version(catalog, PAIR)  # every amr business_licence entry -> none, signed
        unsigned = v3.model_copy(update={"signatures": None})  # not sealed by governance
        before = len(syncing)
        governance.produce(t.control, unsigned.model_dump_json().encode())
        assert governance.flush(30) == 0
        assert _fetch_outcome(tax, egress, 3) in ("end", None)  # still allowed
        assert len(syncing) == before  # refused by the ledger: no reconcile

        governance.produce(t.control, v3.model_dump_json().encode())
        assert governance.flush(30) == 0
        published = time.monotonic()
        outcome = None
        while outcome != "refused" and time.monotonic() - published < REVOKE_LIMIT_S:
            outcome = _fetch_outcome(tax, egress, REVOKE_LIMIT_S)
        took = time.monotonic() - published
        assert outcome == "refused", f"tax still fetches {egress} {took:.1f} s after v3"
        print(f"revocation: refused {took:.2f} s after the signed version was acknowledged")
        assert [p.list_version for p in syncing[before:]] == [3]  # the unsigned one moved none
    finally:
        tax.close()
        del governance, chain
