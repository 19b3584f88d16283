"""``shulian acl sync``: the list moves the perimeter. Follows the control topic like the worker
does and, when the version in force changes, reconciles the cluster to the plan under the new
version: a consumer whose last entry for a dataset is revoked loses its READ on that egress
topic.

Versions are judged by the worker's own rule (:class:`shulian.catalog.approval.ListLedger`,
started from the catalogue's versions): a version moves the perimeter only as the signed
successor of the one in force, so the ACLs and the worker never disagree on which list is in
force. An unsigned, mis-numbered or unparsable version changes nothing (logged).

Runs with administrator credentials (like ``acl apply``). Reconciling the whole plan, not only
the list diff, also repairs drift whenever the list moves.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import SecretStr

from shulian.catalog.approval import ListAccepted, ListLedger, ListRefused
from shulian.catalog.keys import Keyring
from shulian.catalog.models import Catalog, SharingList
from shulian.chain.topology import Topology
from shulian.errors import ConfigError
from shulian.log import get_logger
from shulian.perimeter.identities import ConnectorAccess
from shulian.perimeter.plan import AclPlan, list_change, plan_acls
from shulian.settings import Settings

__all__ = ["InForce", "follow", "list_in_force"]

log = get_logger(__name__)


@dataclass
class InForce:
    """The list in force as one reader of the control topic sees it (pure: no Kafka)."""

    catalog: Catalog
    ledger: ListLedger
    current: SharingList
    refused: list[int] = field(default_factory=list)  # versions refused, in reading order

    @classmethod
    def of(cls, catalog: Catalog) -> InForce:
        ledger = ListLedger.starting_at(Keyring(catalog.keys), catalog.sharing_lists.values())
        return cls(catalog, ledger, catalog.current_list)

    def offer(self, texts: Iterable[bytes], *, now: datetime | None) -> SharingList:
        """Offer each control-topic message in order; returns the list in force after them."""
        from shulian.catalog.load import load_sharing_list_text

        for raw in texts:
            try:
                sl = load_sharing_list_text(raw.decode("utf-8"), source="control topic",
                                            catalog=self.catalog)
            except (ConfigError, UnicodeDecodeError) as exc:
                log.warning("acl.sync.list_refused", error=type(exc).__name__,
                            kept_version=self.current.version)
                continue
            verdict = self.ledger.decide(sl, now=now)
            if isinstance(verdict, ListAccepted):
                self.ledger.accept(verdict)
                self.current = sl
            elif isinstance(verdict, ListRefused):
                self.refused.append(sl.version)
                log.warning("acl.sync.list_refused", version=sl.version, error=verdict.reason,
                            kept_version=self.current.version)
        return self.current


def list_in_force(settings: Settings, catalog: Catalog, *, topology: Topology | None = None,
                  quiet_s: float = 1.0) -> SharingList:
    """The version in force now: the catalogue's newest, then every signed successor published
    on the control topic (read to its end; a missing topic means the catalogue's)."""
    from shulian.io.control import ControlFollower

    follower = ControlFollower(settings, (topology or Topology()).control)
    try:
        texts = follower.catch_up(quiet_s=quiet_s)
    finally:
        follower.close()
    return InForce.of(catalog).offer(texts, now=settings.decision_clock().now())


def follow(settings: Settings, catalog: Catalog, connectors: ConnectorAccess,
           secrets: Mapping[str, SecretStr], *, stop: threading.Event,
           topology: Topology | None = None, poll_s: float = 0.5,
           on_applied: Callable[[AclPlan], None] | None = None) -> None:
    """Reconcile now (under the catalogue's newest version), then on every change of the list
    in force, until ``stop`` is set."""
    from shulian.io.control import ControlFollower
    from shulian.io.kafka import admin_client
    from shulian.perimeter.kafka_admin import reconcile

    t = topology or Topology()
    admin = admin_client(settings)
    clock = settings.decision_clock()

    def apply(sl: SharingList) -> None:
        plan = plan_acls(catalog, connectors, sharing_list=sl, topology=t,
                         schemas_topic=settings.schemas_topic)
        reconcile(admin, plan, secrets)
        if on_applied is not None:
            on_applied(plan)

    state = InForce.of(catalog)
    follower = ControlFollower(settings, t.control)
    try:
        # everything published before we started first: one reconcile, not one per version
        in_force = state.offer(follower.catch_up(quiet_s=poll_s), now=clock.now())
        apply(in_force)
        while not stop.is_set():
            texts = follower.poll(timeout_s=poll_s)
            if not texts:
                continue
            new = state.offer(texts, now=clock.now())
            if new.version != in_force.version:
                change = list_change(catalog, connectors, in_force, new, topology=t,
                                     schemas_topic=settings.schemas_topic)
                log.info("acl.sync.list_moved", old=in_force.version, new=new.version,
                         granted=len(change.add), revoked=len(change.remove))
                apply(new)
                in_force = new
    finally:
        follower.close()
