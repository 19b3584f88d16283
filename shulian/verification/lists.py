"""The list version a verifying gateway answers under: the one in force on the control topic.

The gateway judges each version it reads exactly as the chain worker does, with the same
:class:`shulian.catalog.approval.ListLedger` (started from the catalogue's versions): a version
takes effect only as the signed successor of the one in force; one refused (unparsable,
unsigned, a squatted number, a wrong predecessor) changes nothing and is logged. An accepted
version is handed to :meth:`shulian.verification.service.VerifyService.apply_list`, so a
revoked verify entry is refused (403) from the next request on. The worker alone writes the
signed ``audit.sharing-list`` records; the gateway logs its verdicts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from shulian.catalog.approval import ListAccepted, ListLedger, ListRefused, ListVerdict
from shulian.catalog.keys import Keyring
from shulian.catalog.load import load_sharing_list_text
from shulian.catalog.models import Catalog, SharingList
from shulian.clock import Clock
from shulian.errors import ConfigError
from shulian.log import get_logger

__all__ = ["ListFollower"]

log = get_logger(__name__)


@dataclass
class ListFollower:
    """Offers each control-topic message to the ledger; applies the accepted ones."""

    catalog: Catalog
    ledger: ListLedger
    clock: Clock
    apply: Callable[[SharingList], None]

    @classmethod
    def of(cls, catalog: Catalog, *, clock: Clock,
           apply: Callable[[SharingList], None]) -> ListFollower:
        """A follower whose ledger holds the catalogue's versions (the newest in force)."""
        ledger = ListLedger.starting_at(Keyring(catalog.keys), catalog.sharing_lists.values())
        return cls(catalog, ledger, clock, apply)

    def offer_all(self, texts: Iterable[bytes]) -> list[ListVerdict | None]:
        return [self.offer(raw) for raw in texts]

    def offer(self, raw: bytes) -> ListVerdict | None:
        """The ledger's verdict on one message (None: not a list version at all)."""
        in_force = None if self.ledger.in_force is None else self.ledger.in_force.version
        try:
            sl = load_sharing_list_text(raw.decode("utf-8"), source="control topic",
                                        catalog=self.catalog)
        except (UnicodeDecodeError, ConfigError) as exc:
            log.error("verify.list_refused", error=str(exc), kept_version=in_force)
            return None
        verdict = self.ledger.decide(sl, now=self.clock.now())
        if isinstance(verdict, ListRefused):
            log.error("verify.list_refused", version=sl.version, error=verdict.reason,
                      kept_version=in_force)
        elif isinstance(verdict, ListAccepted):
            self.apply(sl)
            self.ledger.accept(verdict)
        return verdict
