"""Proposed list versions, as ``shulian sharing propose`` keeps them: list files in one folder
(``SHULIAN_SHARING_PROPOSALS_DIR``), signed in place by ``shulian sharing sign``. The console
reads the same files, shows every signature's state, adds an uploaded signature to the file the
same way the CLI does (:func:`shulian.catalog.listfile.with_approval`), and hands a complete
version to :func:`shulian.io.control.publish_list`. Private keys never come here: a party signs
offline (``shulian sharing sign --detached``) and pastes the signature.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from shulian.catalog.approval import (
    ROLES,
    VERSION_TARGET,
    signature_status,
    supersedes,
    target_owner,
    verify_version,
    with_signature,
)
from shulian.catalog.keys import Keyring
from shulian.catalog.listfile import with_approval
from shulian.catalog.models import Catalog, SharingList, Signature
from shulian.catalog.sharing import load_sharing_list_text
from shulian.errors import ConfigError

__all__ = ["Proposal", "ProposalBook", "SignatureState", "parse_pasted"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$")
_B64 = re.compile(r"^[A-Za-z0-9+/=_-]{1,200}$")


@dataclass(frozen=True, slots=True)
class SignatureState:
    target: str  # "<entry id>:<role>" or "version"
    role: str  # provider | consumer | governance | version
    owner: str  # who must sign it
    status: str  # valid | missing | invalid
    why: str | None


@dataclass(frozen=True, slots=True)
class Proposal:
    name: str  # the file name, without folder
    path: Path
    text: str
    sl: SharingList
    states: tuple[SignatureState, ...]
    problems: tuple[str, ...]  # why a worker would refuse it after the version in force

    @property
    def complete(self) -> bool:
        return not self.problems

    def state(self, target: str) -> SignatureState | None:
        return next((s for s in self.states if s.target == target), None)


def parse_pasted(text: str) -> list[tuple[str, Signature]] | str:
    """Signatures as ``shulian sharing sign --detached`` prints them, one a line:
    ``<what> <key id> <signature>`` (what: ``<entry id>:<role>`` or ``version``); or why the
    text is not that."""
    out: list[tuple[str, Signature]] = []
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3 or not _B64.match(parts[2]) or not _NAME.match(parts[1]):
            return (f"line {n} is not a signature: paste the lines 'shulian sharing sign "
                    "--detached' printed ('<what> <key id> <signature>')")
        out.append((parts[0], Signature(key=parts[1], sig=parts[2])))
    if not out:
        return "no signature pasted"
    if len(out) > 500:
        return "too many lines"
    return out


class ProposalBook:
    """The proposals folder; writes are serialised (one console process per folder)."""

    def __init__(self, folder: Path | None, catalog: Catalog) -> None:
        self.folder = folder
        self._catalog = catalog
        self._keys = Keyring(catalog.keys)
        self._lock = threading.Lock()

    def _read(self, path: Path, in_force: SharingList, now: datetime) -> Proposal | None:
        try:
            text = path.read_text(encoding="utf-8")
            sl = load_sharing_list_text(text, source=str(path), catalog=self._catalog)
        except (OSError, UnicodeDecodeError, ConfigError):
            return None
        if sl.version <= in_force.version:
            return None  # taken over by the version in force: not pending
        states = [self._state(sl, f"{e.id}:{role}", role, now)
                  for e in sl.entries for role in ROLES]
        states.append(self._state(sl, VERSION_TARGET, VERSION_TARGET, now))
        problems = verify_version(sl, self._keys, predecessor=supersedes(in_force), now=now)
        return Proposal(path.name, path, text, sl, tuple(states), tuple(problems))

    def _state(self, sl: SharingList, target: str, role: str, now: datetime) -> SignatureState:
        status, why = signature_status(sl, target, self._keys, now=now)
        return SignatureState(target, role, target_owner(sl, target) or "?", status, why)

    def pending(self, in_force: SharingList, now: datetime) -> list[Proposal]:
        """Every proposal after the version in force, by version then name."""
        if self.folder is None or not self.folder.is_dir():
            return []
        found = [p for path in sorted(self.folder.glob("*.yaml"))
                 if _NAME.match(path.name) and (p := self._read(path, in_force, now))]
        return sorted(found, key=lambda p: (p.sl.version, p.name))

    def get(self, name: str, in_force: SharingList, now: datetime) -> Proposal | None:
        if self.folder is None or not _NAME.match(name) or not name.endswith(".yaml"):
            return None
        path = self.folder / name
        return self._read(path, in_force, now) if path.is_file() else None

    def add_signatures(self, name: str, pasted: list[tuple[str, Signature]], *,
                       signer: str, in_force: SharingList, now: datetime
                       ) -> Proposal | tuple[str, str]:
        """The proposal with every pasted signature written into its file, or (``not_yours``
        | ``invalid`` | ``no_proposal``, why) and the file unchanged: all or nothing."""
        with self._lock:
            proposal = self.get(name, in_force, now)
            if proposal is None:
                return "no_proposal", f"no pending proposal {name!r}"
            for target, _ in pasted:
                owner = target_owner(proposal.sl, target)
                if owner != signer:  # whose it is (or whether it exists) is not told
                    return "not_yours", f"{target}: not {signer}'s to sign in this version"
            sl = proposal.sl
            for target, signature in pasted:
                signed = with_signature(sl, target, signature, self._keys, signer=signer,
                                        now=now)
                if isinstance(signed, str):
                    return "invalid", f"{target}: {signed}"
                sl = signed
            proposal.path.write_text(with_approval(proposal.text, sl), encoding="utf-8")
            again = self._read(proposal.path, in_force, now)
            assert again is not None
            return again
