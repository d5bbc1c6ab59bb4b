"""Console pages: login and logout, language, the live station grid and its actions."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from aiohttp import web

from agent.console.core import (
    LANG_COOKIE,
    LOGIN_CSRF_COOKIE,
    PREFIX,
    SESSION_COOKIE,
    SESSION_COOKIE_MAX_AGE,
    Ctx,
    call,
    clear_cookie,
    console_view,
    form_of,
    locale_of,
    page,
    redirect,
    render,
    set_cookie,
    state,
)
from agent.console.i18n import LANGS, MESSAGES, Locale
from agent.errors import DomainError
from agent.http_errors import headers_of, status_of
from agent.impact import PARTS, check_profile
from agent.meter.session import EndReason
from agent.service import AgentService
from common.httpform import read_form

log = logging.getLogger(__name__)

SSE_INTERVAL_SECONDS = 1.0  # the grid's refresh period
SSE_HEARTBEAT_SECONDS = 15.0  # a comment line keeps idle proxies from closing the stream
MAX_MINUTES = 24 * 60

routes = web.RouteTableDef()


# ---------------------------------------------------------------- login, logout, language


def _login_page(request: web.Request, status: int = 200, error: str = "",
                notice: str = "", name: str = "") -> web.Response:
    loc = locale_of(request)
    token = secrets.token_urlsafe(24)
    resp = render(request, "login.html", loc, status, who=None, csrf=token, flashes=[],
                  error=error, notice=notice, name=name)
    set_cookie(request, resp, LOGIN_CSRF_COOKIE, token)
    return resp


@routes.get("/login")
async def login_form(request: web.Request) -> web.Response:
    loc = locale_of(request)
    notice = ""
    if request.query.get("expired") == "1":
        notice = loc.t("session_expired")
    elif request.query.get("bye") == "1":
        notice = loc.t("logged_out")
    return _login_page(request, notice=notice)


@routes.post("/login")
async def login_post(request: web.Request) -> web.Response:
    loc = locale_of(request)
    form = await read_form(request)
    sent, cookie = form.get("csrf"), request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not isinstance(sent, str) or not cookie or not hmac.compare_digest(sent, cookie):
        return render(request, "error.html", loc, 403, message=loc.t("err_csrf"), who=None,
                      csrf="", flashes=[])
    name = str(form.get("name", "")).strip()[:64]
    password = str(form.get("password", ""))[:1024]
    svc = state(request).service
    try:
        grant = await call(request, svc.login_from, name, password, request.remote)
    except DomainError as exc:
        if status_of(exc) == 429:
            secs = int(headers_of(exc).get("Retry-After", "900"))
            resp = _login_page(request, 429, loc.t("err_locked_out", minutes=-(-secs // 60)),
                               name=name)
            resp.headers["Retry-After"] = str(secs)
            return resp
        return _login_page(request, 401, loc.t("err_bad_credentials"), name=name)
    resp = web.HTTPSeeOther(f"{PREFIX}/")
    set_cookie(request, resp, SESSION_COOKIE, grant["token"], SESSION_COOKIE_MAX_AGE)
    clear_cookie(request, resp, LOGIN_CSRF_COOKIE)
    raise resp


@routes.post("/logout")
@console_view()
async def logout(ctx: Ctx) -> web.StreamResponse:
    svc = ctx.state.service
    await call(ctx.request, svc.logout, ctx.token)
    await call(ctx.request, svc.audit_action, f"operator:{ctx.who.name}", "logout")
    ctx.state.flashes.pop(ctx.token, None)
    ctx.state.held.pop(ctx.token, None)
    resp = web.HTTPSeeOther(f"{PREFIX}/login?bye=1")
    clear_cookie(ctx.request, resp, SESSION_COOKIE)
    raise resp


def safe_next(value: str | None) -> str:
    if value and value.startswith(PREFIX) and not value.startswith("//") and "\\" not in value:
        return value
    return f"{PREFIX}/"


@routes.get("/lang")
async def set_lang(request: web.Request) -> web.Response:
    lang = request.query.get("to", "")
    resp = web.HTTPSeeOther(safe_next(request.query.get("next")))
    if lang in LANGS:
        set_cookie(request, resp, LANG_COOKIE, lang, 365 * 24 * 3600)
    raise resp


# ---------------------------------------------------------------- the grid


def station_display(st: dict[str, Any], loc: Locale) -> dict[str, Any]:
    """One station as the grid shows it, every text already in the operator's language."""
    s = st.get("session")
    if st.get("locked"):
        kind_state = "locked"
    elif s is not None:
        kind_state = "session"
    elif not st.get("online"):
        kind_state = "offline"
    else:
        kind_state = "free"
    out: dict[str, Any] = {
        "id": st["id"], "state": kind_state, "state_label": loc.t(f"state_{kind_state}"),
        "online": bool(st.get("online")),
        "online_label": "" if st.get("online") else loc.t("state_offline"),
        "session_id": "", "kind": "", "time_left": "", "fee": "", "paid": "",
        "category": "", "lock_reason": "", "message": "",
        "run": "", "paused_label": "", "pause_reason": "",
    }
    if s is not None:
        kind = ("voucher" if s.get("paid_by") == "voucher"
                else "open" if s.get("open_ended") else "fixed")
        out.update(session_id=s["id"], kind=kind,
                   time_left=loc.duration(s.get("remaining_seconds")),
                   fee=loc.money(s.get("total_so_far", s.get("fee_so_far", 0)),
                                 s.get("currency", "MAD")),
                   paid=loc.t("paid_by_voucher" if kind == "voucher" else "paid_by_cash"),
                   category=s.get("category") or "",
                   run=s.get("state", "running"),
                   paused_label=loc.t("paused") if s.get("state") == "paused" else "",
                   pause_reason=s.get("pause_reason") or "")
    lock = st.get("lock")
    if lock:
        out["lock_reason"] = f"{lock.get('reason') or ''} ({lock.get('by', '')})".strip()
    msg = st.get("message")
    if msg:
        out["message"] = msg.get("text", "")
    return out


@routes.get("/")
@console_view()
async def grid(ctx: Ctx) -> web.StreamResponse:
    svc = ctx.state.service
    stations = await call(ctx.request, svc.stations)
    tariff = await call(ctx.request, svc.tariff_view)
    return page(ctx, "grid.html", active="grid", title=ctx.loc.t("grid_title"),
                stations=[station_display(s, ctx.loc) for s in stations],
                station_ids=[s["id"] for s in stations],
                categories=sorted(tariff["tariff"].get("concessions", {})),
                impact_rows=impact_rows(svc, ctx.loc))


def impact_rows(svc: AgentService, loc: Locale) -> list[dict[str, Any]]:
    """The start form's three rows of big buttons (CONTRACT §9b): each value of the
    ``[impact]`` lists with its words (the token itself when the list has a local value)."""
    imp = svc.config.impact
    rows = []
    for key in PARTS:
        choices = [(v, loc.t(f"impact_{key}_{v}") if f"impact_{key}_{v}" in MESSAGES else v)
                   for v in imp.choices(key)]
        rows.append({"key": key, "label": loc.t(f"impact_{key}"), "choices": choices})
    return rows


def _form_profile(form: Mapping[str, str]) -> dict[str, str] | None:
    """The profile the start form's buttons chose; "skip" is the empty value."""
    return {k: form[k] for k in PARTS if form.get(k)} or None


@routes.get("/events")
@console_view()
async def events(ctx: Ctx) -> web.StreamResponse:
    """Server-sent events: the grid's stations (``event: stations``) when they change,
    at most every SSE_INTERVAL_SECONDS; ``event: logout`` when the session ends."""
    request, st, svc = ctx.request, ctx.state, ctx.state.service
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    await resp.prepare(request)
    last, quiet = "", 0.0
    try:
        while not st.stopping.is_set():
            try:
                await call(request, svc.operator_for_token, ctx.token)
            except DomainError:
                await resp.write(b"event: logout\ndata: {}\n\n")
                break
            stations = await call(request, svc.stations)
            payload = json.dumps([station_display(s, ctx.loc) for s in stations],
                                 ensure_ascii=False, separators=(",", ":"))
            if payload != last:
                await resp.write(f"event: stations\ndata: {payload}\n\n".encode())
                last, quiet = payload, 0.0
            elif quiet >= SSE_HEARTBEAT_SECONDS:
                await resp.write(b": keep-alive\n\n")
                quiet = 0.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(st.stopping.wait(), SSE_INTERVAL_SECONDS)
            quiet += SSE_INTERVAL_SECONDS
    except (ConnectionResetError, RuntimeError) as exc:  # client gone / executor shut down
        log.debug("console event stream closed: %s", exc)
    return resp


def _minutes(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise DomainError("bad_minutes", "minutes must be a whole number") from None
    if not 1 <= value <= MAX_MINUTES:
        raise DomainError("bad_minutes", f"minutes must be between 1 and {MAX_MINUTES}")
    return value


def _current(svc: AgentService, sid: str, expected: str) -> str:
    """The id of the session on ``sid``; refuse if it is not the one the page showed."""
    view = svc.station_view(sid)
    s = view["session"]
    if s is None:
        raise DomainError("no_session", f"station {sid} has no session")
    if expected and s["id"] != expected:
        raise DomainError("session_changed", "the station's session changed")
    return str(s["id"])


def _extend(svc: AgentService, sid: str, expected: str, minutes: int,
            who: str) -> dict[str, Any]:
    return svc.extend(_current(svc, sid, expected), minutes, who)


def _end(svc: AgentService, sid: str, expected: str, who: str) -> dict[str, Any]:
    return svc.end(_current(svc, sid, expected), EndReason.OPERATOR, f"operator:{who}")


def _pause(svc: AgentService, sid: str, expected: str, reason: str,
           who: str) -> dict[str, Any]:
    return svc.pause(_current(svc, sid, expected), reason or None, f"operator:{who}")


def _resume(svc: AgentService, sid: str, expected: str, who: str) -> dict[str, Any]:
    return svc.resume(_current(svc, sid, expected), f"operator:{who}")


def _move(svc: AgentService, sid: str, expected: str, target: str,
          who: str) -> dict[str, Any]:
    return svc.move(_current(svc, sid, expected), target, f"operator:{who}")


@routes.post("/stations/{sid}/{action}")
@console_view()
async def station_action(ctx: Ctx) -> web.StreamResponse:
    svc, req, loc = ctx.state.service, ctx.request, ctx.loc
    sid, action = req.match_info["sid"], req.match_info["action"]
    form = await form_of(ctx)
    who, actor = ctx.who.name, f"operator:{ctx.who.name}"
    try:
        if action == "start":
            minutes = None if form.get("mode") == "open" else _minutes(form.get("minutes", ""))
            profile = check_profile(_form_profile(form), svc.config.impact)  # 400 words
            await call(req, svc.start_session, sid, minutes, form.get("category") or None, who,
                       profile)
            ctx.flash("ok", loc.t("ok_started", station=sid))
        elif action == "extend":
            await call(req, _extend, svc, sid, form.get("session_id", ""),
                       _minutes(form.get("minutes", "")), who)
            ctx.flash("ok", loc.t("ok_extended", station=sid))
        elif action == "end":
            rec = await call(req, _end, svc, sid, form.get("session_id", ""), who)
            ctx.flash("ok", loc.t("ok_ended", station=sid,
                                  fee=loc.money(rec["fee"], rec["currency"])))
        elif action == "pause":
            await call(req, _pause, svc, sid, form.get("session_id", ""),
                       form.get("reason", "")[:200], who)
            ctx.flash("ok", loc.t("ok_paused", station=sid))
        elif action == "resume":
            await call(req, _resume, svc, sid, form.get("session_id", ""), who)
            ctx.flash("ok", loc.t("ok_resumed", station=sid))
        elif action == "move":
            target = form.get("target", "")[:32]
            await call(req, _move, svc, sid, form.get("session_id", ""), target, who)
            ctx.flash("ok", loc.t("ok_moved", station=sid, target=target))
            sid = target
        elif action == "lock":
            await call(req, svc.lock_station, sid, actor, form.get("reason", "")[:500])
            ctx.flash("ok", loc.t("ok_locked", station=sid))
        elif action == "unlock":
            await call(req, svc.unlock_station, sid, actor)
            ctx.flash("ok", loc.t("ok_unlocked", station=sid))
        elif action == "message":
            await call(req, svc.send_message, sid, form.get("text", ""),
                       _seconds(form.get("seconds", "")), actor)
            ctx.flash("ok", loc.t("ok_message"))
        else:
            raise web.HTTPNotFound()
    except DomainError as exc:
        ctx.flash("error", ctx.error_text(exc))
    raise redirect(f"{PREFIX}/#st-{quote(sid)}")


def _seconds(text: str) -> int | None:
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise DomainError("bad_seconds", "seconds must be a whole number") from None


@routes.post("/pause-all")
@console_view()
async def pause_all(ctx: Ctx) -> web.StreamResponse:
    """Every running session paused (a power cut on UPS, a dead uplink)."""
    form = await form_of(ctx)
    try:
        done = await call(ctx.request, ctx.state.service.pause_all,
                          form.get("reason", "")[:200] or None, f"operator:{ctx.who.name}")
        ctx.flash("ok", ctx.loc.t("ok_paused_all", count=len(done["sessions"])))
    except DomainError as exc:
        ctx.flash("error", ctx.error_text(exc))
    raise redirect(f"{PREFIX}/")


@routes.post("/resume-all")
@console_view()
async def resume_all(ctx: Ctx) -> web.StreamResponse:
    await form_of(ctx)
    try:
        done = await call(ctx.request, ctx.state.service.resume_all,
                          f"operator:{ctx.who.name}")
        ctx.flash("ok", ctx.loc.t("ok_resumed_all", count=len(done["sessions"])))
    except DomainError as exc:
        ctx.flash("error", ctx.error_text(exc))
    raise redirect(f"{PREFIX}/")


@routes.post("/message-all")
@console_view()
async def message_all(ctx: Ctx) -> web.StreamResponse:
    form = await form_of(ctx)
    try:
        await call(ctx.request, ctx.state.service.send_message, None, form.get("text", ""),
                   _seconds(form.get("seconds", "")), f"operator:{ctx.who.name}")
        ctx.flash("ok", ctx.loc.t("ok_message"))
    except DomainError as exc:
        ctx.flash("error", ctx.error_text(exc))
    raise redirect(f"{PREFIX}/")
