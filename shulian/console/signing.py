"""Pending list versions on the sharing page: their signatures, the upload of a signature made
offline, and the governance office's publish (docs/SECURITY.md, "Sharing-list versions").

Who may do what: an agency adds the provider or consumer signatures of the entries it is party
to; the governance office adds its entry signatures and the version signature, and publishes a
complete version; the auditor only reads. Anything else is 403 and logged. The console never
sees a private key: it verifies an uploaded signature against the catalogue's public key of the
party (valid at the version's time, not revoked) over the canonical bytes it covers.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse

from shulian.catalog.keys import GOVERNANCE
from shulian.console.app import Console, Forbidden, form_of, render, require
from shulian.console.auth import Kind, Page, Principal
from shulian.console.data.proposals import Proposal, parse_pasted
from shulian.console.data.words import entry_words
from shulian.log import get_logger

__all__ = ["add_signing", "proposal_views", "signer_of"]

log = get_logger(__name__)


def signer_of(who: Principal) -> str | None:
    """Whose signatures this principal adds (None: nobody's, e.g. the auditor)."""
    if who.kind is Kind.AGENCY:
        return who.agency
    return GOVERNANCE if who.kind is Kind.GOVERNANCE else None


def _command(c: Console, p: Proposal, signer: str) -> str:
    return (f"shulian sharing sign {p.path} --key <{signer}-private-key.pem> --detached"
            if c.settings.sharing_proposals_dir is not None else "")


def proposal_views(c: Console, who: Principal, lang: str) -> list[dict[str, Any]]:
    """What the sharing page shows of each pending proposal to ``who``."""
    now = c.clock()
    signer = signer_of(who)
    out = []
    for p in c.proposals.pending(c.in_force(), now):
        rows = []
        for e in p.sl.entries:
            if not who.party_to(e.provider, e.consumer):
                continue
            states = [s for s in p.states if s.target.rpartition(":")[0] == e.id]
            rows.append({"e": e, "words": entry_words(e, c.catalog, lang), "states": states})
        mine = [s for s in p.states if s.owner == signer and s.status != "valid"]
        out.append({"p": p, "rows": rows, "version": p.state("version"), "mine": mine,
                    "command": _command(c, p, signer) if signer else "",
                    "may_publish": who.kind is Kind.GOVERNANCE and p.complete})
    return out


def _refuse(request: Request, who: Principal, code: str, why: str, **fields: Any) -> Response:
    log.warning("console.forbidden", principal=who.id, method=request.method,
                route=str(getattr(request.scope.get("route"), "path", "")), code=code,
                **fields)
    return render(request, "refused.html", status=403, why=why)


async def _csrf_checked(request: Request, csrf: str, route: str) -> dict[str, str] | None:
    """The posted form, or None (logged) when its CSRF token is not the session's."""
    form = await form_of(request)
    if not secrets.compare_digest(form.get("csrf", ""), csrf):
        log.warning("console.csrf_refused", route=route)
        return None
    return form


def add_signing(app: FastAPI) -> None:
    @app.post("/sharing/proposals/{name}/sign")
    async def sign(request: Request, name: str) -> Response:
        s = require(request, Page.SHARING)
        c: Console = request.app.state.console
        form = await _csrf_checked(request, s.csrf, "/sharing/proposals/{name}/sign")
        if form is None:
            return Response("CSRF check failed", status_code=403)
        signer = signer_of(s.principal)
        if signer is None:
            raise Forbidden()
        pasted = parse_pasted(form.get("signatures", ""))
        if isinstance(pasted, str):
            return _refuse(request, s.principal, "unreadable", pasted, proposal=name)
        result = await asyncio.to_thread(c.proposals.add_signatures, name, pasted,
                                         signer=signer, in_force=c.in_force(), now=c.clock())
        if isinstance(result, tuple):
            code, why = result
            return _refuse(request, s.principal, code, why, proposal=name,
                           targets=[t for t, _ in pasted])
        log.info("console.signatures_added", principal=s.principal.id, proposal=name,
                 version=result.sl.version, targets=[t for t, _ in pasted])
        return RedirectResponse(f"/sharing?signed={len(pasted)}#proposal-{name}",
                                status_code=303)

    @app.post("/sharing/proposals/{name}/publish")
    async def publish(request: Request, name: str) -> Response:
        from shulian.io.control import publish_list

        s = require(request, Page.SHARING)
        c: Console = request.app.state.console
        form = await _csrf_checked(request, s.csrf, "/sharing/proposals/{name}/publish")
        if form is None:
            return Response("CSRF check failed", status_code=403)
        if s.principal.kind is not Kind.GOVERNANCE:
            raise Forbidden()
        now = c.clock()
        p = c.proposals.get(name, c.in_force(), now)
        if p is None:
            return _refuse(request, s.principal, "no_proposal", f"no pending proposal {name!r}")
        if not p.complete:
            return _refuse(request, s.principal, "incomplete", "; ".join(p.problems),
                           proposal=name)
        why = await asyncio.to_thread(publish_list, c.settings, c.catalog, p.text, p.sl,
                                      topic=c.topology.control, now=now)
        if why:
            return _refuse(request, s.principal, "refused", "; ".join(why), proposal=name)
        log.info("console.list_published", principal=s.principal.id, proposal=name,
                 version=p.sl.version)
        return RedirectResponse(f"/sharing?published={p.sl.version}", status_code=303)
