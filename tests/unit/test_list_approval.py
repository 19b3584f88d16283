"""Approved list versions (shulian.catalog.approval): the attacks of issue 22 done as an insider
with write access to the control topic would (real Ed25519 keys, the catalogue's own keys), and
a property test: a version is in force iff every entry carries its three valid signatures and
the version its governance signature."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shulian.catalog.approval import (
    ROLES,
    ListAccepted,
    ListIgnored,
    ListLedger,
    ListRefused,
    entry_message,
    supersedes,
    verify_version,
    version_digest,
)
from shulian.catalog.keys import GOVERNANCE, Keyring, SigningKey
from shulian.catalog.listfile import with_approval
from shulian.catalog.load import check_catalog, load_catalog
from shulian.catalog.models import (
    Catalog,
    EntrySignatures,
    ListSignatures,
    PublicKey,
    Revocation,
    ShareType,
    SharingList,
    Signature,
)
from shulian.cli.main import cli
from shulian.errors import ConfigError
from shulian.io.trust import chain_trust, refuse_dev_keys
from shulian.settings import REPO_ROOT, load_settings
from tests.fixtures.signing import approve, dev_signers

CST = timezone(timedelta(hours=8))
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=CST)


@cache
def catalog() -> Catalog:
    return load_catalog(REPO_ROOT / "catalog", schemas_dir=REPO_ROOT / "schemas")


@cache
def signers() -> dict[str, SigningKey]:
    return dev_signers(catalog().keys)


def next_version(edit: bool = True) -> SharingList:
    """v3 of the shipped list: household records to health_th, none -> unconditional (the
    issue's attack) when ``edit``; names v2 as its predecessor; unsigned."""
    v2 = catalog().current_list
    entries = []
    for e in v2.entries:
        if edit and e.id == "psb-health_th-household":
            e = e.model_copy(update={"share_type": ShareType.UNCONDITIONAL,
                                     "fields": ["serial_no", "citizen_id", "name", "address"]})
        entries.append(e)
    return v2.model_copy(update={"version": 3, "supersedes": supersedes(v2), "entries": entries,
                                 "signatures": None,
                                 "published": datetime(2026, 5, 1, 9, 0, tzinfo=CST)})


def in_force_v2() -> ListLedger:
    return ListLedger.starting_at(Keyring(catalog().keys), catalog().sharing_lists.values())


# --- the shipped versions -----------------------------------------------------------------------


def test_shipped_versions_are_signed_and_chained() -> None:
    keys = Keyring(catalog().keys)
    v1, v2 = catalog().sharing_lists[1], catalog().sharing_lists[2]
    assert verify_version(v1, keys, predecessor=None) == []
    assert verify_version(v2, keys, predecessor=supersedes(v1)) == []
    assert keys.development() == sorted(catalog().keys)  # every shipped key is flagged


def test_catalog_check_refuses_an_edited_list_file(tmp_path: Path) -> None:
    import shutil

    shutil.copytree(REPO_ROOT / "catalog", tmp_path / "catalog")
    path = tmp_path / "catalog/sharing/list.v2.yaml"
    text = path.read_text("utf-8")
    path.write_text(text.replace("share_type: none", "share_type: unconditional\n"
                                 "    fields: [serial_no, citizen_id]", 1), "utf-8")
    issues = check_catalog(tmp_path / "catalog", schemas_dir=REPO_ROOT / "schemas")
    assert any(i.file.endswith("list.v2.yaml") and i.field == "signatures"
               and "psb-health_th-household: provider signature: invalid" in i.why
               for i in issues), issues
    res = CliRunner().invoke(cli, ["catalog", "check", "--catalog", str(tmp_path / "catalog")])
    assert res.exit_code == 2 and "invalid signature" in res.output


# --- the attacks ---------------------------------------------------------------------------------


def test_unsigned_version_is_refused_and_the_last_good_stays() -> None:
    ledger = in_force_v2()
    verdict = ledger.offer(next_version(), now=NOW)
    assert isinstance(verdict, ListRefused)
    assert "no version signature by the governance office" in verdict.reasons
    assert ledger.in_force == supersedes(catalog().current_list)


def test_fully_approved_version_is_accepted() -> None:
    ledger = in_force_v2()
    v3 = approve(next_version(), catalog())
    assert isinstance(ledger.offer(v3, now=NOW), ListAccepted)
    assert ledger.in_force is not None and ledger.in_force.version == 3
    assert isinstance(ledger.offer(v3, now=NOW), ListIgnored)  # read again: nothing happens


def test_version_signed_by_the_wrong_agency_is_refused() -> None:
    """amr (a real key in the catalogue) signs psb's provider slot: not psb's signature."""
    v3 = approve(next_version(), catalog(), skip=("psb",))
    amr = signers()["amr"]
    sigs = v3.signatures or ListSignatures()
    entries = dict(sigs.entries)
    for e in v3.entries:
        if e.provider == "psb":
            forged = Signature(key=amr.key_id, sig=amr.sign(entry_message(e, "provider")))
            entries[e.id] = entries[e.id].model_copy(update={"provider": forged})
    v3 = v3.model_copy(update={"signatures": sigs.model_copy(update={"entries": entries})})
    verdict = in_force_v2().offer(v3, now=NOW)
    assert isinstance(verdict, ListRefused)
    assert any("psb-health_th-household: provider signature: key 'amr-dev-1' belongs to "
               "'amr', not 'psb'" in r for r in verdict.reasons), verdict.reasons


def test_a_signature_claiming_another_key_id_fails() -> None:
    """amr's signature labelled with psb's key id: the bytes do not verify under psb's key."""
    v3 = approve(next_version(), catalog())
    amr, psb = signers()["amr"], signers()["psb"]
    sigs = v3.signatures or ListSignatures()
    e = next(e for e in v3.entries if e.id == "psb-health_th-household")
    forged = Signature(key=psb.key_id, sig=amr.sign(entry_message(e, "provider")))
    entries = {**sigs.entries, e.id: sigs.entries[e.id].model_copy(update={"provider": forged})}
    v3 = v3.model_copy(update={"signatures": sigs.model_copy(update={"entries": entries})})
    verdict = in_force_v2().offer(v3, now=NOW)
    assert isinstance(verdict, ListRefused)
    assert verdict.reasons == (f"entry {e.id}: provider signature: invalid signature by key "
                               "'psb-dev-1'",)


def test_revoked_key_is_refused_for_new_versions_and_old_ones_stay_verifiable() -> None:
    gov = catalog().keys["governance-dev-1"]
    revoked = gov.model_copy(update={"revoked": Revocation(
        at=datetime(2026, 5, 20, tzinfo=CST), reason="private key lost")})
    keys = Keyring({**catalog().keys, gov.id: revoked})
    v3 = approve(next_version(), catalog())  # published 2026-05-01, before the revocation
    ledger = ListLedger.starting_at(keys, catalog().sharing_lists.values())
    verdict = ledger.offer(v3, now=NOW)  # applied after the revocation: refused
    assert isinstance(verdict, ListRefused)
    assert any("revoked (private key lost)" in r for r in verdict.reasons)
    # history: v1 and v2 were signed long before; they stay verifiable
    assert verify_version(catalog().sharing_lists[2], keys,
                          predecessor=supersedes(catalog().sharing_lists[1])) == []
    # anything dated after the revocation fails even in history
    late = approve(next_version().model_copy(update={"published": NOW}), catalog())
    assert any("was revoked at" in r for r in
               verify_version(late, keys, predecessor=late.supersedes))


def test_key_rotation_keeps_earlier_versions_verifiable() -> None:
    """The governance office's key ends (valid_to) and a new key takes over: versions signed
    with the old key while it was valid verify; the old key cannot sign a later version."""
    old = catalog().keys["governance-dev-1"]
    new_key = SigningKey.generate("governance-2")
    rotated = {**catalog().keys,
               old.id: old.model_copy(update={"valid_to": datetime(2026, 4, 1, tzinfo=CST)}),
               "governance-2": PublicKey(id="governance-2", owner=GOVERNANCE,
                                         public_key=new_key.public_b64,
                                         valid_from=datetime(2026, 4, 1, tzinfo=CST))}
    keys = Keyring(rotated)
    assert verify_version(catalog().sharing_lists[2], keys,
                          predecessor=supersedes(catalog().sharing_lists[1])) == []
    stale = approve(next_version(), catalog())  # v3 of 2026-05-01 signed with the old key
    assert any("not valid at" in r for r in verify_version(stale, keys,
                                                             predecessor=stale.supersedes))
    from shulian.catalog.approval import seal, sign_entries

    fresh, _ = sign_entries(approve(next_version(), catalog(), skip=(GOVERNANCE,)), new_key,
                            GOVERNANCE)
    fresh = seal(fresh, new_key)
    assert verify_version(fresh, keys, predecessor=fresh.supersedes, now=NOW) == []


def test_version_squatting_is_refused_and_the_genuine_next_version_still_applies() -> None:
    ledger = in_force_v2()
    squat = next_version().model_copy(update={"version": 1000})
    verdict = ledger.offer(squat, now=NOW)
    assert isinstance(verdict, ListRefused)
    assert any("not the next one" in r for r in verdict.reasons)
    # even a fully signed version with a number that is not the next one is refused
    signed_squat = approve(squat, catalog())
    verdict = ledger.offer(signed_squat, now=NOW)
    assert isinstance(verdict, ListRefused) and any("not the next one" in r
                                                    for r in verdict.reasons)
    assert isinstance(ledger.offer(approve(next_version(), catalog()), now=NOW), ListAccepted)


def test_wrong_predecessor_and_replayed_old_version_are_refused() -> None:
    ledger = in_force_v2()
    v1 = catalog().sharing_lists[1]
    fork = approve(next_version().model_copy(update={"supersedes": supersedes(v1)}), catalog())
    verdict = ledger.offer(fork, now=NOW)
    assert isinstance(verdict, ListRefused) and any("wrong predecessor" in r
                                                    for r in verdict.reasons)
    assert isinstance(ledger.offer(v1, now=NOW), ListIgnored)  # genuine v1 read again
    other_v2 = approve(catalog().sharing_lists[2].model_copy(update={"note": "x"}), catalog())
    assert isinstance(ledger.offer(other_v2, now=NOW), ListRefused)


def test_tampering_after_signing_breaks_the_signatures() -> None:
    v3 = approve(next_version(edit=False), catalog())
    tampered = v3.model_copy(update={"entries": next_version().entries})
    why = verify_version(tampered, Keyring(catalog().keys), predecessor=tampered.supersedes)
    assert "version signature: invalid signature by key 'governance-dev-1'" in why
    assert sum("psb-health_th-household" in w for w in why) == 3


def test_signed_text_round_trips_through_the_file_format() -> None:
    v3 = approve(next_version(), catalog())
    text = (REPO_ROOT / "catalog/sharing/list.v2.yaml").read_text("utf-8")
    data = yaml.safe_load(with_approval(text, v3))
    data["entries"] = [e.model_dump(mode="json", exclude_defaults=True) for e in v3.entries]
    data["published"] = v3.published.isoformat()
    assert SharingList.model_validate(data) == v3
    assert version_digest(SharingList.model_validate(data)) == version_digest(v3)


# --- development keys ----------------------------------------------------------------------------


def test_development_keys_are_refused_unless_allowed() -> None:
    with pytest.raises(ConfigError) as err:
        refuse_dev_keys(load_settings(allow_dev_keys=False), catalog())
    assert "SHULIAN_ALLOW_DEV_KEYS" in str(err.value) and "governance-dev-1" in str(err.value)
    with pytest.raises(ConfigError):  # no chain key configured and dev keys not allowed
        chain_trust(load_settings(allow_dev_keys=False), catalog())
    trust = chain_trust(load_settings(allow_dev_keys=True), catalog())
    assert trust.signer.key_id == "chain-dev-1"


def test_a_signing_key_outside_the_catalogue_is_refused() -> None:
    stranger = SigningKey.generate("x").pem().decode()
    with pytest.raises(ConfigError) as err:
        chain_trust(load_settings(allow_dev_keys=True, signing_key=stranger), catalog())
    assert "not a 'chain' key" in str(err.value)
    assert stranger not in str(err.value)


# --- the property ----------------------------------------------------------------

CHOICES = ("valid", "missing", "other_agency", "tampered", "revoked")


@cache
def revoked_key() -> tuple[SigningKey, PublicKey]:
    k = SigningKey.generate("lost-1")
    return k, PublicKey(id="lost-1", owner="psb", public_key=k.public_b64,
                        valid_from=datetime(2026, 1, 1, tzinfo=CST),
                        revoked=Revocation(at=datetime(2026, 2, 1, tzinfo=CST), reason="lost"))


def _sign(sl: SharingList, choice: str, owner: str, message: bytes) -> Signature | None:
    keys = signers()
    if choice == "missing":
        return None
    if choice == "other_agency":
        other = next(k for o, k in keys.items() if o not in (owner, "chain"))
        return Signature(key=other.key_id, sig=other.sign(message))
    if choice == "tampered":
        return Signature(key=keys[owner].key_id, sig=keys[owner].sign(message + b" "))
    if choice == "revoked":
        lost, _ = revoked_key()
        return Signature(key=lost.key_id, sig=lost.sign(message))
    return Signature(key=keys[owner].key_id, sig=keys[owner].sign(message))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_in_force_iff_every_entry_has_three_valid_signatures(data: st.DataObject) -> None:
    from shulian.catalog.approval import _VERSION_DOMAIN, version_content

    base = next_version(edit=data.draw(st.booleans()))
    chosen = data.draw(st.lists(st.sampled_from(base.entries), min_size=1, max_size=4,
                                unique_by=lambda e: e.id))
    sl = base.model_copy(update={"entries": chosen})
    entry_sigs = {}
    all_valid = True
    for e in chosen:
        got: dict[str, Signature | None] = {}
        for role in ROLES:
            owner = {"provider": e.provider, "consumer": e.consumer}.get(role, GOVERNANCE)
            choice = data.draw(st.sampled_from(CHOICES), label=f"{e.id}.{role}")
            if choice == "revoked" and owner != "psb":
                choice = "missing"
            all_valid &= choice == "valid"
            got[role] = _sign(sl, choice, owner, entry_message(e, role))
        entry_sigs[e.id] = EntrySignatures(**got)
    version_choice = data.draw(st.sampled_from(("valid", "missing", "other_agency",
                                                "tampered")))
    all_valid &= version_choice == "valid"
    sl = sl.model_copy(update={"signatures": ListSignatures(entries=entry_sigs)})
    vsig = _sign(sl, version_choice, GOVERNANCE, _VERSION_DOMAIN + version_content(sl))
    sl = sl.model_copy(update={"signatures": ListSignatures(entries=entry_sigs, version=vsig)})
    _, pub = revoked_key()
    keys = Keyring({**catalog().keys, pub.id: pub})
    ledger = ListLedger.starting_at(keys, catalog().sharing_lists.values())
    verdict = ledger.offer(sl, now=NOW)
    assert isinstance(verdict, ListAccepted) == all_valid, verdict
