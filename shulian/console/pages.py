"""The console's pages. Each one checks the principal's rights first (403 otherwise), then asks
the data services (:mod:`shulian.console.data`, :mod:`shulian.audit`) and renders."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from shulian.audit.window import Window
from shulian.catalog.models import (
    DropMask,
    ElementType,
    GeneraliseRegionMask,
    HmacMask,
    KeepMask,
    Mask,
    NameMask,
    TruncateDateMask,
)
from shulian.catalog.specs import mask_fits
from shulian.console.app import Console, Forbidden, lang_of, render, require
from shulian.console.auth import Page, Principal
from shulian.console.data import queries
from shulian.console.data.queries import HOUR_MS, AuditQuery, DeadQuery
from shulian.console.data.store import parse_deadletter_topic
from shulian.console.data.words import diff_lists, entry_words, mapping_words, reason_words
from shulian.console.i18n import t
from shulian.console.svg import bars

__all__ = ["add_pages"]

_MASKS: list[Mask] = [KeepMask(type="keep", first=1, last=1), NameMask(type="name"),
                      HmacMask(type="hmac"), TruncateDateMask(type="truncate_date", to="year"),
                      GeneraliseRegionMask(type="generalise_region", to="city"),
                      DropMask(type="drop")]
_CHECKS: dict[ElementType, str] = {
    ElementType.CITIZEN_ID: "GB 11643: 18 位, 校验码 / check digit",
    ElementType.CREDIT_CODE: "GB 32100: 18 位, 校验码 / check digit",
    ElementType.REGION_CODE: "GB/T 2260 代码表 / code table",
    ElementType.SEX: "GB/T 2261.1: 0, 1, 2, 9",
    ElementType.DATE: "日期 / date",
    ElementType.TIMESTAMP: "时间 / timestamp",
    ElementType.MONEY_FEN: "整数分 / integer fen",
    ElementType.TEXT: "文本, 全角折叠 / text, width folded",
    ElementType.PERSON_NAME: "姓名 / person name",
    ElementType.CODE: "代码表 / code list",
    ElementType.INTEGER: "整数 / integer",
    ElementType.PHONE: "电话 / phone",
}


def _c(request: Request) -> Console:
    c: Console = request.app.state.console
    return c


def _opt(request: Request, name: str) -> str | None:
    v = request.query_params.get(name, "").strip()
    return v or None


def _int(request: Request, name: str, default: int) -> int:
    v = request.query_params.get(name, "")
    return int(v) if v.isdigit() else default


def _window(request: Request, c: Console) -> Window:
    try:
        return Window.parse(_opt(request, "from"), _opt(request, "to"), now=c.clock())
    except ValueError:
        return Window()


def fitting_masks(element_type: ElementType) -> list[str]:
    return [m.type for m in _MASKS if mask_fits(m, element_type) is None]


def _overview(c: Console, who: Principal, lang: str) -> dict[str, Any]:
    now = c.now_ms()
    rows = queries.overview_rows(c.store, who, now)
    table: dict[tuple[str, str], dict[str, Any]] = defaultdict(dict)
    consumers: dict[tuple[str, str, str], dict[str, Any]] = defaultdict(dict)
    for r in rows:
        if r["consumer"]:
            consumers[(r["agency"], r["dataset"], r["consumer"])][r["metric"]] = r
        else:
            table[(r["agency"], r["dataset"])][r["metric"]] = r
    for pair in c.catalog.mappings:
        if who.sees_agency(pair[0]):
            table.setdefault((str(pair[0]), str(pair[1])), {})
    hour_start = (now - HOUR_MS) // 300_000 * 300_000 + 300_000
    day_start = (now - 24 * HOUR_MS) // HOUR_MS * HOUR_MS + HOUR_MS
    names = {m: f"m_{m}" for m in ("in", "harmonised", "dead", "deliver", "withhold")}

    def plots(keys: list[tuple[str, tuple[str, str, str, str]]], title: str) -> list[str]:
        out = []
        for start, step, steps, span in ((hour_start, 300_000, 12, "last_hour"),
                                         (day_start, HOUR_MS, 24, "last_day")):
            series = [(label, c.store.series(key, start_ms=start, step_ms=step, steps=steps))
                      for label, key in keys]
            out.append(bars(series, title=f"{title} ({t(span, lang)})"))
        return out

    cards = []
    for (a, d), metrics in sorted(table.items()):
        keys = [(t(names[m], lang), (m, a, d, "")) for m in ("in", "harmonised", "dead")]
        cards.append({"agency": a, "dataset": d, "metrics": metrics,
                      "plots": plots(keys, f"{a} {d}")})
    sends = []
    for (a, d, consumer), metrics in sorted(consumers.items()):
        keys = [(t(names[m], lang), (m, a, d, consumer)) for m in ("deliver", "withhold")]
        sends.append({"provider": a, "dataset": d, "consumer": consumer, "metrics": metrics,
                      "plots": plots(keys, f"{a} → {consumer} {d}")})
    return {"cards": cards, "sends": sends, "health": c.health(), "lag": c.lag(),
            "in_force": c.in_force().version}


def _catalogue_pages(app: FastAPI) -> None:
    @app.get("/catalogue", response_class=HTMLResponse)
    async def catalogue(request: Request) -> Response:
        s = require(request, Page.CATALOGUE)
        c = _c(request)
        elements = [{"e": e, "check": _CHECKS.get(e.type, e.type.value),
                     "masks": fitting_masks(e.type)} for e in c.catalog.elements.values()]
        mappings = sorted(k for k in c.catalog.mappings
                          if s.principal.kind.value != "agency" or s.principal.agency == k[0])
        regions = sorted(c.catalog.regions.items())
        return render(request, "catalogue.html", elements=elements,
                      datasets=list(c.catalog.datasets.values()), mappings=mappings,
                      regions=regions[:200], region_total=len(regions),
                      retired=sorted(c.catalog.retired_regions.items())[:100])

    @app.get("/catalogue/mappings/{agency}/{dataset}", response_class=HTMLResponse)
    async def mapping(request: Request, agency: str, dataset: str) -> Response:
        s = require(request, Page.CATALOGUE)
        if s.principal.agency is not None and s.principal.agency != agency:
            raise Forbidden()
        c = _c(request)
        m = next((v for (a, d), v in c.catalog.mappings.items()
                  if a == agency and d == dataset), None)
        if m is None:
            return render(request, "error.html", status=404, title_key="not_found",
                          text_key="none_found")
        lang = lang_of(request)
        rows = [mapping_words(f, fm, lang) for f, fm in m.fields.items()]
        return render(request, "mapping.html", m=m, rows=rows)


def _sharing_pages(app: FastAPI) -> None:
    @app.get("/sharing", response_class=HTMLResponse)
    async def sharing(request: Request) -> Response:
        s = require(request, Page.SHARING)
        c = _c(request)
        lists = c.lists()
        in_force = max(lists)
        version = _int(request, "version", in_force)
        sl = lists.get(version) or lists[in_force]
        lang = lang_of(request)
        entries = [{"e": e, "words": entry_words(e, c.catalog, lang)} for e in sl.entries
                   if s.principal.party_to(e.provider, e.consumer)]
        from shulian.console.signing import proposal_views

        return render(request, "sharing.html", sl=sl, in_force=in_force, entries=entries,
                      history=[lists[v] for v in sorted(lists, reverse=True)],
                      proposals=proposal_views(c, s.principal, lang),
                      proposals_dir=c.settings.sharing_proposals_dir,
                      signed=_int(request, "signed", 0),
                      published=_int(request, "published", 0))

    @app.get("/sharing/diff", response_class=HTMLResponse)
    async def diff(request: Request) -> Response:
        s = require(request, Page.SHARING)
        c = _c(request)
        lists = c.lists()
        versions = sorted(lists)
        a = _int(request, "a", versions[-2] if len(versions) > 1 else versions[0])
        b = _int(request, "b", versions[-1])
        if a not in lists or b not in lists:
            return render(request, "error.html", status=404, title_key="not_found",
                          text_key="none_found")
        lang = lang_of(request)
        changes = []
        for ch in diff_lists(lists[a], lists[b]):
            e = ch.after or ch.before
            assert e is not None
            if not s.principal.party_to(e.provider, e.consumer):
                continue
            changes.append({"ch": ch,
                            "before": None if ch.before is None else
                            entry_words(ch.before, c.catalog, lang),
                            "after": None if ch.after is None else
                            entry_words(ch.after, c.catalog, lang)})
        return render(request, "diff.html", a=a, b=b, versions=versions, changes=changes)


def _deadletter_pages(app: FastAPI) -> None:
    @app.get("/deadletters", response_class=HTMLResponse)
    async def deadletters(request: Request) -> Response:
        s = require(request, Page.DEADLETTERS)
        c = _c(request)
        agency = _opt(request, "agency")
        if agency is not None and not s.principal.sees_agency(agency):
            raise Forbidden()
        win = _window(request, c)
        q = DeadQuery(agency=agency, dataset=_opt(request, "dataset"),
                      reason=_opt(request, "reason"), start_ms=win.start_ms, end_ms=win.end_ms)
        page, facets = queries.deadletter_page(c.store, s.principal, q,
                                               page=_int(request, "page", 1))
        lang = lang_of(request)
        rows = [{"d": d, "words": reason_words(d.reason, lang, field=d.field, check=d.check)}
                for d in page.rows]
        return render(request, "deadletters.html", page=page, rows=rows, facets=facets, q=q,
                      params=dict(request.query_params))

    @app.get("/deadletters/{topic}/{partition}/{offset}/original")
    async def original(request: Request, topic: str, partition: int, offset: int) -> Response:
        s = require(request, Page.DEADLETTERS)
        c = _c(request)
        owner = parse_deadletter_topic(c.topology, topic)
        if owner is None or not s.principal.sees_agency(owner[0]):
            raise Forbidden()  # before the lookup: whether it exists is not told either
        d = c.store.deadletter(topic, partition, offset)
        if d is None:
            return Response("not found", status_code=404)
        name = f"{d.topic}-{d.partition}-{d.offset}.bin"
        return Response(d.value, media_type="application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _audit_query(request: Request, c: Console) -> AuditQuery:
    win = _window(request, c)
    return AuditQuery(consumer=_opt(request, "consumer"), provider=_opt(request, "provider"),
                      dataset=_opt(request, "dataset"), decision=_opt(request, "decision"),
                      record_key=_opt(request, "key"), start_ms=win.start_ms, end_ms=win.end_ms)


def _audit_pages(app: FastAPI) -> None:
    @app.get("/audit", response_class=HTMLResponse)
    async def audit(request: Request) -> Response:
        require(request, Page.AUDIT)
        return render(request, "audit.html", checks=_c(request).store.checks())

    @app.get("/audit/report", response_class=HTMLResponse)
    async def report(request: Request) -> Response:
        s = require(request, Page.AUDIT)
        c = _c(request)
        page = queries.audit_page(c.store, s.principal, _audit_query(request, c),
                                  page=_int(request, "page", 1))
        lang = lang_of(request)
        for r in page.rows:
            r["reason_words"] = reason_words(r["reason"], lang) if r["reason"] else ""
        return render(request, "report.html", page=page, params=dict(request.query_params),
                      consumers=sorted(c.catalog.agencies), datasets=sorted(c.catalog.datasets))

    @app.get("/audit/report.csv")
    async def report_csv(request: Request) -> Response:
        s = require(request, Page.AUDIT)
        c = _c(request)
        text = queries.audit_csv(c.store, s.principal, _audit_query(request, c))
        return Response(text, media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="report.csv"'})

    @app.get("/audit/journey", response_class=HTMLResponse)
    async def journey(request: Request) -> Response:
        s = require(request, Page.AUDIT)
        key = _opt(request, "key")
        rows = [] if key is None else queries.journey(_c(request).store, s.principal, key)
        return render(request, "journey.html", key=key or "", rows=rows)


def add_pages(app: FastAPI) -> None:
    @app.get("/", response_class=HTMLResponse)
    async def overview(request: Request) -> Response:
        s = session_of_or_login(request)
        if s is None:
            return RedirectResponse("/login", status_code=303)
        if not s.may_open(Page.OVERVIEW):
            return RedirectResponse("/audit", status_code=303)
        return render(request, "overview.html",
                      **_overview(_c(request), s, lang_of(request)))

    _catalogue_pages(app)
    _sharing_pages(app)
    _deadletter_pages(app)
    _audit_pages(app)


def session_of_or_login(request: Request) -> Principal | None:
    from shulian.console.app import session_of

    s = session_of(request)
    return None if s is None else s.principal
