"""``shulian acl sync``: the list moves the perimeter. Follows the control topic like the worker
does (the newest catalogue version first, then every newer valid version published) and, when
the version in force changes, reconciles the cluster to the plan under the new version: a
consumer whose last entry for a dataset is revoked loses its READ on that egress topic.

Runs with administrator credentials (like ``acl apply``). Reconciling the whole plan, not only
the list diff, also repairs drift whenever the list moves.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping

from pydantic import SecretStr

from shulian.catalog.models import Catalog, SharingList
from shulian.chain.topology import CONTROL_GROUP_PREFIX, Topology
from shulian.errors import ConfigError
from shulian.log import get_logger
from shulian.perimeter.identities import ConnectorAccess
from shulian.perimeter.plan import AclPlan, list_change, plan_acls
from shulian.settings import Settings

__all__ = ["follow", "next_in_force"]

log = get_logger(__name__)


def next_in_force(current: SharingList, texts: Iterable[bytes], catalog: Catalog) -> SharingList:
    """The list in force after reading ``texts`` from the control topic: the newest valid
    version above ``current``; invalid ones are refused (logged) and change nothing."""
    from shulian.catalog.sharing import load_sharing_list_text

    newest = current
    for raw in texts:
        try:
            sl = load_sharing_list_text(raw.decode("utf-8"), source="control topic",
                                        catalog=catalog)
        except (ConfigError, UnicodeDecodeError) as exc:
            log.warning("acl.sync.list_refused", error=type(exc).__name__)
            continue
        if sl.version > newest.version:
            newest = sl
    return newest


def follow(settings: Settings, catalog: Catalog, connectors: ConnectorAccess,
           secrets: Mapping[str, SecretStr], *, stop: threading.Event,
           topology: Topology | None = None, poll_s: float = 0.5,
           on_applied: Callable[[AclPlan], None] | None = None) -> None:
    """Reconcile now, then on every change of the list in force, until ``stop`` is set."""
    from shulian.io.control import ControlFollower
    from shulian.io.kafka import admin_client
    from shulian.perimeter.kafka_admin import reconcile

    t = topology or Topology()
    admin = admin_client(settings)

    def apply(sl: SharingList) -> None:
        plan = plan_acls(catalog, connectors, sharing_list=sl, topology=t,
                         schemas_topic=settings.schemas_topic)
        reconcile(admin, plan, secrets)
        if on_applied is not None:
            on_applied(plan)

    in_force = catalog.current_list
    apply(in_force)
    follower = ControlFollower(settings, t.control,
                               group_id=f"{CONTROL_GROUP_PREFIX}acl-sync-{os.getpid()}",
                               error_event="acl.sync.read_error")
    try:
        while not stop.is_set():
            texts = follower.poll(timeout_s=poll_s)
            new = next_in_force(in_force, texts, catalog)
            if new.version != in_force.version:
                change = list_change(catalog, connectors, in_force, new, topology=t,
                                     schemas_topic=settings.schemas_topic)
                log.info("acl.sync.list_moved", old=in_force.version, new=new.version,
                         granted=len(change.add), revoked=len(change.remove))
                apply(new)
                in_force = new
    finally:
        follower.close()
