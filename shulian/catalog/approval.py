"""Approved list versions: what each signature covers, and whether a version may take effect.

Pure: no I/O. The worker, the catalogue loader and the ``shulian sharing`` commands all decide
with :func:`verify_version` (one version against the one it supersedes) and
:class:`ListLedger` (a sequence of versions, as the worker sees them).

What is signed (canonical JSON: keys sorted, ``(",", ":")`` separators, UTF-8, not ASCII-escaped,
values as ``model_dump(mode="json", exclude_defaults=True)`` gives them):

- an entry, by its provider agency, its consumer agency and the governance office, each over
  ``b"shulian/list-entry/v1\\n" + role + b"\\n" + canonical(entry)`` (role: ``provider`` |
  ``consumer`` | ``governance``). An unchanged entry keeps its signatures from version to version.
- the version, by the governance office, over ``b"shulian/list-version/v1\\n" + content`` where
  ``content`` is the canonical JSON of the list without ``signatures`` (version, published, note,
  ``supersedes`` = the number and digest of the version it replaces, entries). The version's
  digest is SHA-256 of ``content``.

Keys must be usable at the version's ``published`` time, and, when a version is about to be
applied (``now`` given), not revoked at all (:meth:`shulian.catalog.keys.Keyring.unusable`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shulian.catalog.keys import GOVERNANCE, Keyring, SigningKey
from shulian.catalog.models import (
    EntryId,
    EntrySignatures,
    ListEntry,
    ListSignatures,
    SharingList,
    Signature,
    Supersedes,
)

__all__ = [
    "ROLES",
    "VERSION_TARGET",
    "ListAccepted",
    "ListIgnored",
    "ListLedger",
    "ListRefused",
    "ListVerdict",
    "canonical_json",
    "entry_message",
    "held_signature",
    "seal",
    "sign_entries",
    "signature_status",
    "supersedes",
    "target_message",
    "target_owner",
    "verify_version",
    "version_content",
    "version_digest",
    "with_signature",
]

ROLES = ("provider", "consumer", "governance")
_ENTRY_DOMAIN = b"shulian/list-entry/v1\n"
_VERSION_DOMAIN = b"shulian/list-version/v1\n"


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def entry_message(entry: ListEntry, role: str) -> bytes:
    """The bytes the ``role`` signature of ``entry`` covers."""
    body = canonical_json(entry.model_dump(mode="json", exclude_defaults=True))
    return _ENTRY_DOMAIN + role.encode("ascii") + b"\n" + body


def version_content(sl: SharingList) -> bytes:
    """The canonical content of a version (everything but its signatures)."""
    return canonical_json(sl.model_dump(mode="json", exclude_defaults=True,
                                        exclude={"signatures"}))


def version_digest(sl: SharingList) -> str:
    return hashlib.sha256(version_content(sl)).hexdigest()


def supersedes(sl: SharingList) -> Supersedes:
    """What a version that replaces ``sl`` must name."""
    return Supersedes(version=sl.version, digest=version_digest(sl))


def _role_owner(entry: ListEntry, role: str) -> str:
    return {"provider": entry.provider, "consumer": entry.consumer}.get(role, GOVERNANCE)


def verify_version(
    sl: SharingList,
    keys: Keyring,
    *,
    predecessor: Supersedes | None,
    now: datetime | None = None,
) -> list[str]:
    """Why ``sl`` may not take effect after ``predecessor`` (the version in force, or None when
    ``sl`` must be the first); empty when it may. Every reason is listed, not only the first."""
    why: list[str] = []
    at = sl.published
    if at.tzinfo is None:
        return ["published has no timezone offset"]
    if predecessor is None:
        if sl.supersedes is not None:
            why.append(f"names v{sl.supersedes.version} as its predecessor, but no version is "
                       "in force before it")
    else:
        if sl.version != predecessor.version + 1:
            why.append(f"version {sl.version} is not the next one (v{predecessor.version} is "
                       f"in force: the next is {predecessor.version + 1})")
        if sl.supersedes != predecessor:
            named = ("nothing" if sl.supersedes is None else
                     f"v{sl.supersedes.version} {sl.supersedes.digest[:12]}")
            why.append(f"wrong predecessor: names {named}, the version in force is "
                       f"v{predecessor.version} {predecessor.digest[:12]}")
    sigs = sl.signatures or ListSignatures()
    if sigs.version is None:
        why.append("no version signature by the governance office")
    else:
        msg = _VERSION_DOMAIN + version_content(sl)
        bad = keys.check(sigs.version.key, msg, sigs.version.sig, owner=GOVERNANCE, at=at,
                         now=now)
        if bad:
            why.append(f"version signature: {bad}")
    for entry in sl.entries:
        got = sigs.entries.get(entry.id) or EntrySignatures()
        for role in ROLES:
            sig: Signature | None = getattr(got, role)
            if sig is None:
                why.append(f"entry {entry.id}: no {role} signature "
                           f"({_role_owner(entry, role)})")
                continue
            bad = keys.check(sig.key, entry_message(entry, role), sig.sig,
                             owner=_role_owner(entry, role), at=at, now=now)
            if bad:
                why.append(f"entry {entry.id}: {role} signature: {bad}")
    return why


def sign_entries(sl: SharingList, key: SigningKey, owner: str,
                 only: Iterable[str] = ()) -> tuple[SharingList, list[str]]:
    """``sl`` with ``key`` (owned by ``owner``) signing every role it holds in each entry
    (restricted to the entry ids in ``only`` when given); also returns what was signed."""
    wanted = set(only)
    sigs = sl.signatures or ListSignatures()
    entries = dict(sigs.entries)
    done: list[str] = []
    for entry in sl.entries:
        if wanted and entry.id not in wanted:
            continue
        got = entries.get(entry.id) or EntrySignatures()
        update: dict[str, Signature] = {}
        for role in ROLES:
            if _role_owner(entry, role) == owner:
                update[role] = Signature(key=key.key_id, sig=key.sign(entry_message(entry, role)))
                done.append(f"{entry.id}:{role}")
        if update:
            entries[entry.id] = got.model_copy(update=update)
    new = sigs.model_copy(update={"entries": entries})
    return sl.model_copy(update={"signatures": new}), done


def seal(sl: SharingList, key: SigningKey) -> SharingList:
    """``sl`` with the governance office's version signature (over the content, not the
    entry signatures)."""
    sigs = sl.signatures or ListSignatures()
    sig = Signature(key=key.key_id, sig=key.sign(_VERSION_DOMAIN + version_content(sl)))
    return sl.model_copy(update={"signatures": sigs.model_copy(update={"version": sig})})


@dataclass(frozen=True, slots=True)
class ListAccepted:
    version: int
    digest: str


@dataclass(frozen=True, slots=True)
class ListIgnored:
    """A version already accepted (the same content), read again."""

    version: int
    digest: str


@dataclass(frozen=True, slots=True)
class ListRefused:
    version: int
    digest: str
    reasons: tuple[str, ...]

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


ListVerdict = ListAccepted | ListIgnored | ListRefused


@dataclass
class ListLedger:
    """The chain of accepted versions as one reader (a worker, a tool) sees it: each offered
    version is accepted only as the signed successor of the one in force."""

    keys: Keyring
    in_force: Supersedes | None = None
    accepted: dict[int, str] = field(default_factory=dict)  # version -> digest

    @classmethod
    def starting_at(cls, keys: Keyring, versions: Iterable[SharingList]) -> ListLedger:
        """A ledger whose accepted versions are ``versions`` (the catalogue's, checked when it
        was loaded); the newest is in force."""
        ledger = cls(keys)
        for sl in sorted(versions, key=lambda v: v.version):
            ledger.accepted[sl.version] = version_digest(sl)
            ledger.in_force = supersedes(sl)
        return ledger

    def decide(self, sl: SharingList, *, now: datetime | None) -> ListVerdict:
        """What to do with ``sl``; pure (the ledger changes only in :meth:`accept`)."""
        digest = version_digest(sl)
        if self.accepted.get(sl.version) == digest:
            return ListIgnored(sl.version, digest)
        if self.in_force is not None and sl.version <= self.in_force.version:
            return ListRefused(sl.version, digest, (
                f"version {sl.version} is not the next one (v{self.in_force.version} is in "
                "force) and differs from the accepted version with that number",))
        why = verify_version(sl, self.keys, predecessor=self.in_force, now=now)
        if why:
            return ListRefused(sl.version, digest, tuple(why))
        return ListAccepted(sl.version, digest)

    def accept(self, verdict: ListAccepted) -> None:
        self.accepted[verdict.version] = verdict.digest
        self.in_force = Supersedes(version=verdict.version, digest=verdict.digest)

    def offer(self, sl: SharingList, *, now: datetime | None) -> ListVerdict:
        """:meth:`decide`, then :meth:`accept` an accepted version."""
        verdict = self.decide(sl, now=now)
        if isinstance(verdict, ListAccepted):
            self.accept(verdict)
        return verdict


# --- one signature at a time (the console's upload; the CLI's `sign --detached`) --------------

VERSION_TARGET = "version"


def target_owner(sl: SharingList, target: str) -> str | None:
    """Whose signature ``target`` (``<entry id>:<role>`` or ``version``) is; None: no such."""
    if target == VERSION_TARGET:
        return GOVERNANCE
    entry_id, _, role = target.rpartition(":")
    entry = next((e for e in sl.entries if e.id == entry_id), None)
    if entry is None or role not in ROLES:
        return None
    return _role_owner(entry, role)


def target_message(sl: SharingList, target: str) -> bytes:
    """The canonical bytes the signature for ``target`` covers (``target_owner`` is not None)."""
    if target == VERSION_TARGET:
        return _VERSION_DOMAIN + version_content(sl)
    entry_id, _, role = target.rpartition(":")
    entry = next(e for e in sl.entries if e.id == entry_id)
    return entry_message(entry, role)


def held_signature(sl: SharingList, target: str) -> Signature | None:
    sigs = sl.signatures or ListSignatures()
    if target == VERSION_TARGET:
        return sigs.version
    entry_id, _, role = target.rpartition(":")
    got = sigs.entries.get(EntryId(entry_id))
    return None if got is None else getattr(got, role, None)


def signature_status(sl: SharingList, target: str, keys: Keyring, *,
                     now: datetime | None) -> tuple[str, str | None]:
    """(``valid`` | ``missing`` | ``invalid``, why invalid) of ``target``'s signature."""
    sig = held_signature(sl, target)
    owner = target_owner(sl, target)
    if sig is None or owner is None:
        return "missing", None
    why = keys.check(sig.key, target_message(sl, target), sig.sig, owner=owner,
                     at=sl.published, now=now)
    return ("invalid", why) if why else ("valid", None)


def with_signature(sl: SharingList, target: str, signature: Signature, keys: Keyring, *,
                   signer: str, now: datetime | None) -> SharingList | str:
    """``sl`` carrying ``signature`` for ``target``, or why it is refused: ``target`` must be
    ``signer``'s to sign, and the signature valid over its canonical bytes by a key of
    ``signer``'s usable at the version's time and not revoked by ``now``."""
    owner = target_owner(sl, target)
    if owner is None:
        return f"version {sl.version} has nothing called {target!r} to sign"
    if owner != signer:
        return f"{target} is signed by {owner}, not by {signer}"
    why = keys.check(signature.key, target_message(sl, target), signature.sig, owner=signer,
                     at=sl.published, now=now)
    if why is not None:
        return why
    sigs = sl.signatures or ListSignatures()
    if target == VERSION_TARGET:
        sigs = sigs.model_copy(update={"version": signature})
    else:
        entry_id, _, role = target.rpartition(":")
        eid = EntryId(entry_id)
        got = sigs.entries.get(eid) or EntrySignatures()
        entries = {**sigs.entries, eid: got.model_copy(update={role: signature})}
        sigs = sigs.model_copy(update={"entries": entries})
    return sl.model_copy(update={"signatures": sigs})
