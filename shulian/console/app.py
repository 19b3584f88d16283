"""The console's ASGI app: login, rights, and the shell every page shares.

Pages live in :mod:`shulian.console.pages`; this module holds what they share: the context
(catalogue, store, clock, tokens), the session and CSRF checks, 403 handling (logged with the
principal and the route, never query values), security headers and the templates.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from shulian.audit.window import DEFAULT_TZ
from shulian.catalog.models import Catalog, SharingList
from shulian.chain.topology import Topology
from shulian.console.auth import Page, Principal, Session, SessionCodec, TokenBook
from shulian.console.data.health import Health
from shulian.console.data.proposals import ProposalBook
from shulian.console.data.store import Store
from shulian.console.data.tail import Lag
from shulian.console.i18n import LANGS, t
from shulian.log import get_logger
from shulian.settings import Settings

__all__ = ["COOKIE", "Console", "Forbidden", "create_app"]

log = get_logger(__name__)
HERE = Path(__file__).resolve().parent
COOKIE = "shulian_console"
NONCE = "shulian_login"
LANG = "shulian_lang"
CSP = ("default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")


class Forbidden(Exception):
    """Raised by a page for a request outside the principal's rights (-> 403, logged)."""


class NotLoggedIn(Exception):
    pass


@dataclass
class Console:
    """Everything a page reads."""

    settings: Settings
    catalog: Catalog
    topology: Topology
    store: Store
    tokens: TokenBook
    codec: SessionCodec
    clock: Callable[[], datetime]
    health: Callable[[], list[Health]] = field(default=lambda: [])
    lag: Callable[[], Lag] = field(default=Lag)
    secure_cookies: bool = False  # set behind TLS
    env: Environment = field(init=False)
    proposals: ProposalBook = field(init=False)

    def __post_init__(self) -> None:
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"),
                               autoescape=select_autoescape(["html"]), trim_blocks=True,
                               lstrip_blocks=True)
        self.env.filters["fmt_ms"] = fmt_ms
        self.env.filters["with_page"] = with_page
        self.proposals = ProposalBook(self.settings.sharing_proposals_dir, self.catalog)

    def now_ms(self) -> int:
        return int(self.clock().timestamp() * 1000)

    def lists(self) -> dict[int, SharingList]:
        """Every list version: the catalogue's and those published on the control topic."""
        return {**self.catalog.sharing_lists, **self.store.lists()}

    def in_force(self) -> SharingList:
        lists = self.lists()
        return lists[max(lists)]


def fmt_ms(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, DEFAULT_TZ).strftime("%Y-%m-%d %H:%M:%S")


def with_page(params: dict[str, str], page: int | None) -> str:
    """The query string of ``params`` with ``page`` set (None: removed)."""
    out = {k: v for k, v in params.items() if k != "page" and v}
    if page is not None:
        out["page"] = str(page)
    return urlencode(out)


def lang_of(request: Request) -> str:
    lang = request.cookies.get(LANG, "zh")
    return lang if lang in LANGS else "zh"


def session_of(request: Request) -> Session | None:
    c: Console = request.app.state.console
    return c.codec.read(request.cookies.get(COOKIE), now_ms=c.now_ms())


def require(request: Request, page: Page) -> Session:
    s = session_of(request)
    if s is None:
        raise NotLoggedIn()
    if not s.principal.may_open(page):
        raise Forbidden()
    return s


def render(request: Request, template: str, *, status: int = 200, **ctx: Any) -> HTMLResponse:
    c: Console = request.app.state.console
    lang = lang_of(request)
    s = session_of(request)
    nonce = request.cookies.get(NONCE) or ""
    params: dict[str, Any] = {
        "t": lambda k: t(k, lang), "lang": lang, "session": s, "Page": Page,
        "who": None if s is None else s.principal, "path": request.url.path,
        "csrf": s.csrf if s is not None else c.codec.login_csrf(nonce) if nonce else "",
        "updated": c.store.updated_ms, "catalog": c.catalog}
    body = c.env.get_template(template).render(**(params | ctx))
    return HTMLResponse(body, status_code=status)


async def form_of(request: Request) -> dict[str, str]:
    """An urlencoded form body (small; the console has no uploads)."""
    body = await request.body()
    if len(body) > 16384:
        return {}
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


def _route(request: Request) -> str:
    route = request.scope.get("route")
    return str(getattr(route, "path", request.url.path))


class Headers(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response


def _auth_routes(app: FastAPI) -> None:
    @app.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request) -> Response:
        nonce = request.cookies.get(NONCE) or secrets.token_urlsafe(16)
        c: Console = request.app.state.console
        resp = render(request, "login.html", login_csrf=c.codec.login_csrf(nonce),
                      csrf=c.codec.login_csrf(nonce),
                      failed=request.query_params.get("failed") == "1")
        resp.set_cookie(NONCE, nonce, httponly=True, samesite="strict",
                        secure=c.secure_cookies, path="/")
        return resp

    @app.post("/login")
    async def login(request: Request) -> Response:
        c: Console = request.app.state.console
        form = await form_of(request)
        nonce = request.cookies.get(NONCE) or ""
        if not nonce or not secrets.compare_digest(form.get("csrf", ""),
                                                   c.codec.login_csrf(nonce)):
            log.warning("console.csrf_refused", route="/login")
            return HTMLResponse("CSRF check failed", status_code=403)
        principal = c.tokens.identify(form.get("token", ""))
        if principal is None:
            log.warning("console.login_failed")
            return RedirectResponse("/login?failed=1", status_code=303)
        value, _ = c.codec.issue(principal, now_ms=c.now_ms())
        log.info("console.login", principal=principal.id)
        home = "/" if principal.may_open(Page.OVERVIEW) else "/audit"
        resp = RedirectResponse(home, status_code=303)
        resp.set_cookie(COOKIE, value, httponly=True, samesite="strict",
                        secure=c.secure_cookies, path="/", max_age=c.codec.ttl_ms // 1000)
        resp.delete_cookie(NONCE, path="/")
        return resp

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        s = session_of(request)
        form = await form_of(request)
        if s is None or not secrets.compare_digest(form.get("csrf", ""), s.csrf):
            return HTMLResponse("CSRF check failed", status_code=403)
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/")
        return resp

    @app.post("/lang")
    async def switch_lang(request: Request) -> Response:
        c: Console = request.app.state.console
        form = await form_of(request)
        s = session_of(request)
        expected = s.csrf if s is not None else c.codec.login_csrf(
            request.cookies.get(NONCE) or "")
        if not secrets.compare_digest(form.get("csrf", ""), expected):
            return HTMLResponse("CSRF check failed", status_code=403)
        nxt = form.get("next", "/")
        if not nxt.startswith("/") or nxt.startswith("//"):
            nxt = "/"
        resp = RedirectResponse(nxt, status_code=303)
        lang = form.get("lang", "zh")
        resp.set_cookie(LANG, lang if lang in LANGS else "zh", httponly=True,
                        samesite="strict", secure=c.secure_cookies, path="/")
        return resp

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}


def create_app(console: Console) -> FastAPI:
    from shulian.console.pages import add_pages
    from shulian.console.signing import add_signing

    app = FastAPI(title="Shulian console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = console
    app.add_middleware(Headers)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        s = session_of(request)
        log.warning("console.forbidden", principal=None if s is None else s.principal.id,
                    method=request.method, route=_route(request))
        return render(request, "error.html", status=403, title_key="forbidden",
                      text_key="forbidden_text")

    @app.exception_handler(NotLoggedIn)
    async def not_logged_in(request: Request, exc: NotLoggedIn) -> Response:
        return RedirectResponse("/login", status_code=303)

    _auth_routes(app)
    add_pages(app)
    add_signing(app)
    return app


def principal_of(session: Session) -> Principal:
    return session.principal
