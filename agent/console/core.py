"""Console plumbing: cookies, CSRF, who is logged in, rendering, calls to the service.

The session cookie holds the operator token that ``AgentService.login`` issues (12 h, the
same ``TokenStore`` as the JSON API): logout or expiry there ends the console session too.
The cookie is HttpOnly, SameSite=Strict, limited to ``/console``, and Secure when the page
came over HTTPS or the console was set up with ``secure_cookies=True`` (or the environment
variable ``CAC_CONSOLE_SECURE_COOKIES=1``, for an agent behind a TLS proxy).

CSRF: every form carries ``csrf`` = HMAC(per-process secret, session token); every POST is
checked before anything runs. The login form (no session yet) uses a double-submit cookie.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import jinja2
from aiohttp import web

from agent.console.i18n import LANGS, MESSAGES, Locale, pick_lang, translate
from agent.errors import DomainError
from agent.service import AgentService, Principal
from common.httpform import read_form

T = TypeVar("T")

SESSION_COOKIE = "cac_console"
LOGIN_CSRF_COOKIE = "cac_login_csrf"
LANG_COOKIE = "cac_lang"
COOKIE_PATH = "/console"
SESSION_COOKIE_MAX_AGE = 12 * 3600  # the token itself expires with the service's TTL
PREFIX = "/console"
MAX_HELD = 1000  # logins whose looked-up code / ticket batch is kept
HERE = Path(__file__).parent
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


@dataclass
class ConsoleState:
    service: AgentService
    executor: Any
    secret: bytes
    secure_cookies: bool
    env: jinja2.Environment
    flashes: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    # voucher codes never travel in a URL (browser history, access logs): what a session
    # looked up or is about to print is kept here, by session token, for the next GET
    held: dict[str, dict[str, Any]] = field(default_factory=dict)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


STATE = web.AppKey("console_state", ConsoleState)


def make_env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    return env


def state(request: web.Request) -> ConsoleState:
    return request.config_dict[STATE]


async def call(request: web.Request, fn: Callable[..., T], *args: Any) -> T:
    """Run a service call on the service's own thread."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(state(request).executor, functools.partial(fn, *args))


def csrf_for(st: ConsoleState, token: str) -> str:
    return hmac.new(st.secret, b"csrf:" + token.encode(), hashlib.sha256).hexdigest()


def locale_of(request: web.Request) -> Locale:
    lang = request.query.get("lang")
    if lang not in LANGS:
        lang = pick_lang(request.cookies.get(LANG_COOKIE))
    return Locale(lang, state(request).service.tz)


def is_secure(request: web.Request) -> bool:
    return state(request).secure_cookies or request.secure


def set_cookie(request: web.Request, resp: web.StreamResponse, name: str, value: str,
               max_age: int | None = None) -> None:
    resp.set_cookie(name, value, path=COOKIE_PATH, httponly=True, samesite="Strict",
                    secure=is_secure(request), max_age=max_age)


def clear_cookie(request: web.Request, resp: web.StreamResponse, name: str) -> None:
    resp.del_cookie(name, path=COOKIE_PATH, secure=is_secure(request), samesite="Strict",
                    httponly=True)


@dataclass
class Ctx:
    """One authenticated request: who, their token and CSRF token, and their language."""

    request: web.Request
    who: Principal
    token: str
    csrf: str
    loc: Locale

    @property
    def state(self) -> ConsoleState:
        return state(self.request)

    def flash(self, kind: str, text: str) -> None:
        self.state.flashes.setdefault(self.token, []).append((kind, text))

    def hold(self, key: str, value: Any) -> None:
        """Keep ``value`` for this login's next page (a looked-up code, a ticket batch)."""
        held = self.state.held
        prev = held.pop(self.token, {})  # re-inserted last: the newest login
        held[self.token] = {**prev, key: value}
        while len(held) > MAX_HELD:  # oldest logins first (dicts keep insertion order)
            held.pop(next(iter(held)))

    def held(self, key: str, default: Any = None) -> Any:
        return self.state.held.get(self.token, {}).get(key, default)

    def error_text(self, exc: DomainError) -> str:
        known = f"err_{exc.code}"
        if known in MESSAGES:
            return self.loc.t(known)
        return self.loc.t("err_other", message=exc.message)


class NotLoggedIn(Exception):
    pass


async def authenticate(request: web.Request) -> tuple[Principal, str]:
    """The operator behind the session cookie; a bearer header is never accepted here."""
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token or "Authorization" in request.headers:
        raise NotLoggedIn
    st = state(request)
    try:
        who = await call(request, st.service.operator_for_token, token)
    except DomainError:
        raise NotLoggedIn from None
    return who, token


def render(request: web.Request, template: str, loc: Locale, status: int = 200,
           **context: Any) -> web.Response:
    st = state(request)
    context = {"active": "", "title": "", **context}
    html = st.env.get_template(template).render(
        t=loc.t, loc=loc, lang=loc.lang, dir=loc.dir, langs=LANGS, prefix=PREFIX,
        lang_names={code: translate(code, "lang_name") for code in LANGS},
        path=request.path_qs, **context)
    return web.Response(text=html, content_type="text/html", charset="utf-8", status=status)


def page(ctx: Ctx, template: str, status: int = 200, **context: Any) -> web.Response:
    flashes = ctx.state.flashes.pop(ctx.token, [])
    return render(ctx.request, template, ctx.loc, status, who=ctx.who, csrf=ctx.csrf,
                  flashes=flashes, **context)


def redirect(location: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(location)


Handler = Callable[[Ctx], Awaitable[web.StreamResponse]]


def console_view(*, manager: bool = False) -> Callable[[Handler], Callable[
        [web.Request], Awaitable[web.StreamResponse]]]:
    """Wrap a handler: log-in required (a page redirects to the login, a POST or stream is
    401), CSRF checked on every POST before the handler runs, manager role if asked."""

    def wrap(fn: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        @functools.wraps(fn)
        async def handler(request: web.Request) -> web.StreamResponse:
            loc = locale_of(request)
            st = state(request)
            try:
                who, token = await authenticate(request)
            except NotLoggedIn:
                if request.method == "GET" and "text/event-stream" not in request.headers.get(
                        "Accept", ""):
                    had = request.cookies.get(SESSION_COOKIE)
                    raise redirect(f"{PREFIX}/login" + ("?expired=1" if had else "")) from None
                return render(request, "error.html", loc, 401, message=loc.t("session_expired"),
                              who=None, csrf="", flashes=[])
            csrf = csrf_for(st, token)
            ctx = Ctx(request, who, token, csrf, loc)
            if request.method == "POST":
                form = await read_form(request)
                sent = form.get("csrf")
                if not isinstance(sent, str) or not hmac.compare_digest(sent, csrf):
                    return page(ctx, "error.html", 403, message=loc.t("err_csrf"))
            if manager and who.role != "manager":
                return page(ctx, "error.html", 403, message=loc.t("err_forbidden"))
            return await fn(ctx)

        return handler

    return wrap


async def form_of(ctx: Ctx) -> dict[str, str]:
    form = await read_form(ctx.request)
    return {k: v.strip() for k, v in form.items() if isinstance(v, str)}


def env_secure_cookies() -> bool:
    return os.environ.get("CAC_CONSOLE_SECURE_COOKIES", "") in ("1", "true", "yes")


def new_secret() -> bytes:
    return secrets.token_bytes(32)
