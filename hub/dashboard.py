"""The technicians' dashboard: fleet, per-CAC pages, alarms, commands, reports (HTML).

Pages need a login (cookie ``cac_hub_session``: HttpOnly, SameSite=Strict); forms carry
the session's CSRF token. ``viewer`` sees; ``technician`` also acknowledges alarms and
sends commands. ``/api/v1/alarms``, ``/api/v1/commands`` and ``/api/v1/reports/daily``
stay plain machine-readable JSON like the rest of ``/api/v1``.

Threads: everything that touches the store runs on ONE admin thread (``Dashboard.db``) with
a connection of its own; the fleet comes from memory (``hub.model.FleetModel``, cached).
``Dashboard.tick`` (from the hub's tick) refreshes the sessions-today counts; alarms and
command expiry are the fleet upkeep's (``hub.upkeep``), which tells ``alarms_changed``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from common.httpform import read_form
from hub import __version__, alarms, charts, commands, history, i18n, impact, reports, users
from hub.config import HUB_ID_RE, HubConfig
from hub.ingest import Ingest
from hub.model import FleetModel, region_of, sessions_today
from hub.store import AdminStore, StoreError, open_admin
from hub.tokens import Caller

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
COOKIE = "cac_hub_session"
TODAY_SECONDS = 10.0  # how often the sessions-today counts are refreshed
N_ = i18n.N_
CHART_SERIES = (("cpu", N_("CPU"), "%", 100.0), ("mem", N_("Memory"), "%", 100.0),
                ("disk", N_("Disk"), "%", 100.0), ("temp", N_("Temperature"), "°C", None),
                ("backlog", N_("Outbox backlog"), N_("records"), None))

T = TypeVar("T")
Publish = Callable[[str, bytes], None]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _ts(value: float | None) -> str:
    if value is None:
        return "never"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _money(centimes: int) -> str:
    sign = "-" if centimes < 0 else ""
    return f"{sign}{abs(centimes) // 100}.{abs(centimes) % 100:02d}"


def _num(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


@jinja2.pass_context
def _ts_shown(ctx: jinja2.runtime.Context, value: float | None) -> str:
    """``_ts`` in a page: "never" in the page's language."""
    return ctx["_"]("never") if value is None else _ltr(ctx, _ts(value))


@jinja2.pass_context
def _ltr(ctx: jinja2.runtime.Context, value: object) -> str:
    """A date, an ISO time or an id kept left to right inside an Arabic sentence (Unicode
    isolates: the digits and dashes of "2026-12-03 12:27" would otherwise be reordered)."""
    return f"\u2066{value}\u2069" if ctx.get("dir") == "rtl" else str(value)


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters.update(ts=_ts_shown, ltr=_ltr, money=_money, num=_num)
    return env


class Dashboard:
    """State and store access of the dashboard; ``setup(app)`` adds its routes."""

    def __init__(self, config: HubConfig, ingest: Ingest, publish: Publish,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.ingest = ingest
        self.publish = publish
        self.clock = clock
        self.model = FleetModel(ingest.views, clock)
        self.sessions = users.Sessions(config.dashboard)
        self.env = _env()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="hub-admin")
        # password checks (scrypt, ~50 ms each) on a thread of their own: a flood of
        # logins waits its turn there instead of starving the default executor
        self.scrypt = ThreadPoolExecutor(1, thread_name_prefix="hub-scrypt")
        self._store: AdminStore | None = None
        self._next_today = 0.0
        self._next_prune = 0.0

    # ------------------------------------------------------------ lifecycle and store

    async def start(self) -> None:
        self._store = await self.db_raw(
            lambda: open_admin(self.config.db_path, self.config.store_url))
        await self.db(users.ensure_language_column, write=True)

    async def close(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            await self.db_raw(store.close)
        self._executor.shutdown(wait=True)
        self.scrypt.shutdown(wait=True)

    async def db_raw(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def db(self, fn: Callable[..., T], *args: Any, write: bool = False) -> T:
        """``fn(connection, *args)`` on the admin thread (in a transaction with ``write``)."""
        def run() -> T:
            store = self._store
            if store is None:
                raise StoreError("the dashboard's store is closed")
            if not write:
                return fn(store.db, *args)
            with store.transaction():
                return fn(store.db, *args)
        return await self.db_raw(run)

    async def usage_db(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(connection, *args)`` reading the usage records (reports, sessions today):
        on PostgreSQL (``[store] url``) a connection of the shared usage store, else the
        dashboard's own SQLite connection (issue 17: reports on both stores)."""
        usage = self.ingest.store
        if not usage.shared_reads:
            return await self.db(fn, *args)

        def run() -> T:
            with usage.transaction() as conn:
                return fn(conn, *args)
        return await self.db_raw(run)

    # ------------------------------------------------------------ periodic work

    async def tick(self, now: float) -> None:
        if now >= self._next_prune:  # lockouts and expired sessions' leftovers
            self._next_prune = now + 60.0
            self.sessions.prune(time.monotonic())
        try:
            if now >= self._next_today:
                self._next_today = now + TODAY_SECONDS
                day = datetime.fromtimestamp(now, UTC).astimezone().date().isoformat()
                self.model.sessions_today = await self.usage_db(sessions_today, day)
        except StoreError as exc:
            log.error("dashboard upkeep failed: %s", exc)  # noqa: TRY400

    def alarms_changed(self, counts: dict[str, int]) -> None:
        """The fleet upkeep's active alarm count per CAC (shown on the fleet page)."""
        self.model.alarm_counts = counts
        self.model.invalidate()

    # ------------------------------------------------------------ commands

    async def send_command(self, cac_id: str, name: str, args: dict[str, Any],
                           station: str | None, who: str) -> commands.CommandRow:
        now = self.clock()
        row = await self.db(commands.create, cac_id, name, args, station, who, now,
                            write=True)
        self.publish(*row.wire(self.config.dashboard.command_timeout_seconds))
        await self.db(commands.mark_sent, row.id, now, write=True)
        log.info("command %s (%s) to %s by %s", row.id, name, cac_id, who)
        return row

    # ------------------------------------------------------------ rendering

    def render(self, request: web.Request, template: str, status: int = 200,
               **ctx: Any) -> web.Response:
        who = request.get(WHO)
        page = self.env.get_template(template).render(
            who=who, version=__version__, hub_id=self.config.hub_id, path=request.path,
            path_qs=request.path_qs, store_down=self.ingest.store_down_since is not None,
            **i18n.page_context(request, who.language if who else None), **ctx)
        return web.Response(text=page, content_type="text/html", status=status,
                            headers={"Cache-Control": "no-store",
                                     "Content-Security-Policy":
                                         "default-src 'self'; style-src 'self'; "
                                         "img-src 'self' data:; frame-ancestors 'none'",
                                     "X-Content-Type-Options": "nosniff"})

    async def who(self, request: web.Request) -> users.Who | None:
        """The request's login, if its cookie names a live session whose account is still
        as it was at login (a new role or password ends the session, issue 16)."""
        who = self.sessions.get(request.cookies.get(COOKIE), time.monotonic())
        if who is None:
            return None
        try:
            account, lang = await self.db(_account_and_language, who.name)
        except StoreError:  # the store is down (PostgreSQL): the login stands until the
            return who      # account can be checked again; the fleet view is in memory
        if not self.sessions.still_valid(who, account):
            log.info("session of %s ended: the account changed since its login", who.name)
            self.sessions.close(who.token)
            return None
        return replace(who, language=lang)

    async def remember_lang(self, request: web.Request, lang: str) -> None:
        """The switch while logged in: the choice is the user's (``users.language``)."""
        who = await self.who(request)
        if who is not None:
            await self.db(users.set_language, who.name, lang, write=True)

    async def caller(self, request: web.Request) -> Caller | None:
        """The dashboard login of an API request (its cookie), if any."""
        who = await self.who(request)
        return None if who is None else Caller(who.name, who.role, "login")

    def setup(self, app: web.Application) -> None:
        app[DASHBOARD] = self
        app.add_routes(routes)
        i18n.setup(app, self.remember_lang)  # GET /lang: the language switch
        app.router.add_static("/static", HERE / "static", append_version=False)


DASHBOARD = web.AppKey("dashboard", Dashboard)
WHO = web.RequestKey("who", users.Who)
FORM: web.RequestKey[dict[str, str]] = web.RequestKey("form")
routes = web.RouteTableDef()


def _dash(request: web.Request) -> Dashboard:
    return request.app[DASHBOARD]


def _account_and_language(db: Any, name: str) -> tuple[tuple[str, str] | None, str | None]:
    return users.lookup(db, name), users.language(db, name)


def _t(request: web.Request, msgid: str) -> str:
    """``msgid`` in the request's language, for words built here rather than in a page."""
    who = request.get(WHO)
    return i18n.translator(i18n.request_lang(request, who.language if who else None))(msgid)


def _login_redirect(request: web.Request) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"/login?{urlencode({'next': request.path_qs})}")


def page(*, technician: bool = False, form: bool = False) -> Callable[[Handler], Handler]:
    """A logged-in page; ``technician`` needs that role; ``form`` checks the CSRF token."""
    def wrap(handler: Handler) -> Handler:
        async def inner(request: web.Request) -> web.StreamResponse:
            dash = _dash(request)
            who = await dash.who(request)
            if who is None:
                if form:
                    return web.Response(status=403, text=_t(request, N_("log in first")))
                raise _login_redirect(request)
            request[WHO] = who
            if technician and not who.technician:
                return dash.render(request, "denied.html", status=403)
            if form:
                data = await read_form(request)
                request[FORM] = {k: v for k, v in data.items() if isinstance(v, str)}
                if not users.Sessions.csrf_ok(who, request[FORM].get("csrf")):
                    return web.Response(status=403, text=_t(request, N_(
                        "stale or missing form token; reload the page")))
            return await handler(request)
        return inner
    return wrap


# ---------------------------------------------------------------- login


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


# a path on this hub: "/" then no second "/" or "\\", and no backslash, space or control
# character anywhere (browsers drop TAB/LF inside URLs and read "\\" as "/", so
# "/\\evil.example" and "/<TAB>/evil.example" would lead off-site; issue 16)
_LOCAL_PATH = re.compile(r"/(?![/\\])[^\\\s\x00-\x1f\x7f]*")


def _safe_next(value: str | None) -> str:
    if value and len(value) <= 2048 and _LOCAL_PATH.fullmatch(value):
        return value
    return "/"


@routes.get("/login")
async def login_page(request: web.Request) -> web.Response:
    return _dash(request).render(request, "login.html", error=None,
                                 next=_safe_next(request.query.get("next")),
                                 chosen=_chosen_lang(request.query.get("lang")))


def _chosen_lang(value: object) -> str | None:
    """The language picked on the login page (``/login?lang=ar``, the switch adds it)."""
    return value if isinstance(value, str) and value in i18n.LANGS else None


@routes.post("/login")
async def login(request: web.Request) -> web.StreamResponse:
    dash = _dash(request)
    data = await read_form(request)
    name = str(data.get("name", ""))[:64]
    password = str(data.get("password", ""))
    nxt = _safe_next(str(data.get("next", "/")))
    chosen = _chosen_lang(data.get("lang"))
    now = time.monotonic()
    address = request.remote or ""
    if dash.sessions.locked(name, now, address):
        return dash.render(request, "login.html", status=429, next=nxt, chosen=chosen,
                           error=_t(request, N_("Too many failed logins: this account is "
                                                "locked for a while.")))
    account = await dash.db(users.lookup, name)
    ok = await asyncio.get_running_loop().run_in_executor(
        dash.scrypt, dash.sessions.check_password, account, password)
    if not ok or account is None:
        locked = dash.sessions.failed(name, time.monotonic(), address)
        log.warning("failed dashboard login for %r from %s%s", name, address,
                    " (now locked out)" if locked else "")
        return dash.render(request, "login.html", status=401, next=nxt, chosen=chosen,
                           error=_t(request, N_("Wrong name or password.")))
    who = dash.sessions.open(name, account[0], time.monotonic(), address, account[1])
    await dash.db(commands.audit, name, "login", "dashboard", dash.clock(), write=True)
    if chosen is not None:  # picked on the login page: the account's language from now on
        await dash.db(users.set_language, name, chosen, write=True)
    lang = chosen or await dash.db(users.language, name)
    resp = _see_other(nxt)
    if lang is not None:  # this browser's login page speaks it too after a logout
        i18n.set_cookie(resp, lang)
    resp.set_cookie(COOKIE, who.token, httponly=True, samesite="Strict", path="/",
                    max_age=dash.config.dashboard.session_hours * 3600,
                    secure=dash.config.http.tls_cert is not None)  # HTTPS: never sent in clear
    return resp


@routes.post("/logout")
@page(form=True)
async def logout(request: web.Request) -> web.StreamResponse:
    _dash(request).sessions.close(request[WHO].token)
    resp = _see_other("/login")
    resp.del_cookie(COOKIE, path="/")
    return resp


# ---------------------------------------------------------------- fleet


@routes.get("/")
@page()
async def fleet_page(request: web.Request) -> web.Response:
    dash = _dash(request)
    snap = dash.model.current()
    return dash.render(request, "fleet.html", snap=snap, now=snap.built_at)


@routes.get("/dashboard/fleet.json")
@page()
async def fleet_json(request: web.Request) -> web.Response:
    snap = _dash(request).model.current()
    return web.Response(body=snap.json, content_type="application/json",
                        headers={"Cache-Control": "no-store"})


def _known(dash: Dashboard, cac_id: str) -> bool:
    return bool(HUB_ID_RE.fullmatch(cac_id)) and dash.ingest.view(cac_id) is not None


def _cac_data(db: Any, cac_id: str, now: float) -> dict[str, Any]:
    day = history.series(db, cac_id, now - history.MINUTE_KEEP_SECONDS, hourly=False)
    month = history.series(db, cac_id, now - history.HOUR_KEEP_SECONDS, hourly=True)
    return {"day": day, "month": month,
            "alarms": alarms.listing(db, cac_id=cac_id, limit=50),
            "commands": commands.listing(db, cac_id=cac_id, limit=50)}


@routes.get("/cacs/{cac_id}")
@page()
async def cac_page(request: web.Request) -> web.Response:
    dash = _dash(request)
    cac_id = request.match_info["cac_id"]
    if not _known(dash, cac_id):
        return dash.render(request, "missing.html", status=404, what=f"CAC {cac_id[:80]}")
    return await _cac_page(request, cac_id, request.query.get("error"))


async def _cac_page(request: web.Request, cac_id: str, error: str | None,
                    typed: Mapping[str, str] | None = None, status: int = 200) -> web.Response:
    """The CAC page; after a refused command, with its error and what was typed (kept)."""
    dash = _dash(request)
    view = dash.ingest.view(cac_id)
    now = dash.clock()
    data = await dash.db(_cac_data, cac_id, now)
    _ = i18n.translator(i18n.request_lang(request, request[WHO].language))
    no_data = _("no data")
    day_charts = [charts.svg(data["day"], m, _("{what}, last 24 h", what=_(title)), _(unit),
                             now - history.MINUTE_KEEP_SECONDS, now, history.MINUTE, top,
                             empty_text=no_data)
                  for m, title, unit, top in CHART_SERIES]
    month_charts = [charts.svg(data["month"], m, _("{what}, last 30 days", what=_(title)),
                               _(unit), now - history.HOUR_KEEP_SECONDS, now, history.HOUR,
                               top, empty_text=no_data)
                    for m, title, unit, top in CHART_SERIES]
    # the till (issue 17): this CAC's last 7 days from the daily report
    since = (datetime.fromtimestamp(now, UTC) - timedelta(days=TILL_DAYS - 1)).date()
    till = await dash.usage_db(_daily, {"from": since.isoformat(), "to": None,
                                        "cac": cac_id, "region": None})
    return dash.render(request, "cac.html", c=view, region=region_of(cac_id), now=now,
                       till=till, till_totals=reports.totals(till),
                       till_items=reports.item_totals(till),
                       day_charts=day_charts, month_charts=month_charts,
                       alarms=data["alarms"], commands=data["commands"],
                       names=commands.NAMES, error=error, typed=typed or {}, status=status)


TILL_DAYS = 7  # the CAC page's till block


@routes.post("/cacs/{cac_id}/commands")
@page(technician=True, form=True)
async def post_command(request: web.Request) -> web.StreamResponse:
    dash = _dash(request)
    cac_id = request.match_info["cac_id"]
    if not _known(dash, cac_id):
        return dash.render(request, "missing.html", status=404, what=f"CAC {cac_id[:80]}")
    form = request[FORM]
    try:
        args, station = commands.build_args(form.get("name", ""), form)
    except commands.CommandError as exc:  # the page again, with what was typed kept
        typed = {k: str(form.get(k, ""))[:20_000] for k in
                 ("name", "station", "reason", "text", "seconds", "tariff", "catalogue")}
        return await _cac_page(request, cac_id, str(exc), typed, status=400)
    await dash.send_command(cac_id, form["name"], args, station, request[WHO].name)
    raise web.HTTPSeeOther(f"/cacs/{cac_id}#commands")


# ---------------------------------------------------------------- alarms and commands


@routes.get("/alarms")
@page()
async def alarms_page(request: web.Request) -> web.Response:
    dash = _dash(request)
    rows = await dash.db(alarms.listing)
    return dash.render(request, "alarms.html", alarms=rows)


@routes.post("/alarms/{alarm_id:\\d+}/ack")
@page(technician=True, form=True)
async def ack_alarm(request: web.Request) -> web.StreamResponse:
    dash = _dash(request)
    alarm_id = int(request.match_info["alarm_id"])
    who = request[WHO].name
    now = dash.clock()

    def ack(db: Any) -> bool:
        done = alarms.acknowledge(db, alarm_id, who, now)
        if done:
            commands.audit(db, who, "alarm.ack", str(alarm_id), now)
        return done

    await dash.db(ack, write=True)
    raise web.HTTPSeeOther(_safe_next(request[FORM].get("next", "/alarms")))


@routes.get("/commands")
@page()
async def commands_page(request: web.Request) -> web.Response:
    dash = _dash(request)

    def read(db: Any) -> tuple[Any, Any]:
        return commands.listing(db), commands.audit_trail(db)

    rows, trail = await dash.db(read)
    return dash.render(request, "commands.html", commands=rows, audit=trail)


# ---------------------------------------------------------------- reports


def _report_args(request: web.Request) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for key in ("from", "to"):
        v = request.query.get(key, "").strip()
        out[key] = v if len(v) == 10 and v[4] == "-" and v[7] == "-" else None
    region = request.query.get("region", "").strip()
    out["region"] = region[:64] or None
    cac = request.query.get("cac", "").strip()
    out["cac"] = cac if HUB_ID_RE.fullmatch(cac) else None
    return out


def _daily(db: Any, a: dict[str, str | None]) -> list[reports.DailyRow]:
    return reports.daily(db, since=a["from"], until=a["to"], cac_id=a["cac"],
                         region=a["region"])


def _hourly(db: Any, a: dict[str, str | None]) -> list[int]:
    return reports.by_hour(db, since=a["from"], until=a["to"], cac_id=a["cac"])


@routes.get("/reports")
@page()
async def reports_page(request: web.Request) -> web.Response:
    dash = _dash(request)
    a = _report_args(request)
    rows = await dash.usage_db(_daily, a)
    hours = await dash.usage_db(_hourly, a)
    qs = urlencode({k: v for k, v in a.items() if v})
    return dash.render(request, "reports.html", rows=rows, totals=reports.totals(rows),
                       item_totals=reports.item_totals(rows),
                       hours=hours, hours_max=max(hours + [1]), args=a, qs=qs)


def _csv(text: str, name: str) -> web.Response:
    return web.Response(text=text, content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


@routes.get("/reports/daily.csv")
@page()
async def daily_csv(request: web.Request) -> web.Response:
    rows = await _dash(request).usage_db(_daily, _report_args(request))
    return _csv(reports.daily_csv(rows, _csv_tr(request)), "cac-usage-daily.csv")


@routes.get("/reports/items.csv")
@page()
async def items_csv(request: web.Request) -> web.Response:
    rows = await _dash(request).usage_db(_daily, _report_args(request))
    return _csv(reports.items_csv(rows, _csv_tr(request)), "cac-sales-by-item.csv")


@routes.get("/reports/hourly.csv")
@page()
async def hourly_csv(request: web.Request) -> web.Response:
    hours = await _dash(request).usage_db(_hourly, _report_args(request))
    return _csv(reports.hourly_csv(hours, _csv_tr(request)), "cac-sessions-by-hour.csv")


def _csv_tr(request: web.Request) -> Callable[[str], str]:
    """CSV headers in the language of the pages (hub/i18n.py)."""
    return i18n.translator(i18n.request_lang(request))


# ---------------------------------------------------------------- machine-readable


def _alarm_json(a: alarms.Alarm) -> dict[str, Any]:
    return {"id": a.id, "cac_id": a.cac_id, "kind": a.kind, "message": a.message,
            "active": a.active, "raised_at": _iso(a.raised_at), "cleared_at": _iso(a.cleared_at),
            "acked_by": a.acked_by, "acked_at": _iso(a.acked_at)}


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(
        timespec="milliseconds")


@routes.get("/api/v1/alarms")
async def api_alarms(request: web.Request) -> web.Response:
    cac = request.query.get("cac_id")
    rows = await _dash(request).db(lambda db: alarms.listing(db, cac_id=cac))
    if request.query.get("active") in ("1", "true"):
        rows = [a for a in rows if a.active]
    return web.json_response([_alarm_json(a) for a in rows])


@routes.get("/api/v1/commands")
async def api_commands(request: web.Request) -> web.Response:
    cac = request.query.get("cac_id")
    rows = await _dash(request).db(lambda db: commands.listing(db, cac_id=cac))
    return web.json_response([
        {"id": r.id, "cac_id": r.cac_id, "station": r.station, "name": r.name,
         "status": r.status, "message": r.message, "sent_by": r.sent_by,
         "created_at": _iso(r.created_at), "answered_at": _iso(r.answered_at),
         "sends": r.sends} for r in rows])


@routes.get("/api/v1/reports/daily")
async def api_daily(request: web.Request) -> web.Response:
    rows = await _dash(request).usage_db(_daily, _report_args(request))
    return web.json_response([r.__dict__ for r in rows])


# ---------------------------------------------------------------- impact (issue 18)

# the profile tokens of CONTRACT §9b and the report's own keys, as English msgids
IMPACT_LABELS = {
    "egov": N_("e-government"), "job": N_("job search"), "school": N_("school work"),
    "business": N_("business"), "training": N_("training"), "other": N_("other"),
    "f": N_("women"), "m": N_("men"), "x": N_("another gender"),
    impact.NOT_GIVEN: N_("not given"), "first": N_("first this month"),
    "returning": N_("returning"), "unlinked": N_("not linked (cash)"),
}


def _impact_error(exc: impact.ImpactError) -> web.Response:
    return web.json_response({"error": "bad_request", "field": exc.field,
                              "message": str(exc)}, status=400)


def _impact_report(db: Any, args: tuple[str, str, str], min_cell: int) -> dict[str, Any]:
    return impact.report(db, *args, min_cell)


async def _impact(request: web.Request) -> tuple[tuple[str, str, str], dict[str, Any]]:
    """The request's report; ImpactError for a bad argument (answered 400 by the caller)."""
    args = impact.parse_args(request.query)
    return args, await _impact_of(_dash(request), args)


async def _impact_of(dash: Dashboard, args: tuple[str, str, str]) -> dict[str, Any]:
    return await dash.usage_db(_impact_report, args, dash.config.reports.min_cell)


@routes.get("/api/v1/reports/impact")
async def api_impact(request: web.Request) -> web.Response:
    try:
        _args, rep = await _impact(request)
    except impact.ImpactError as exc:
        return _impact_error(exc)
    return web.json_response(rep)


@routes.get("/reports/impact.csv")
@page()
async def impact_csv(request: web.Request) -> web.Response:
    try:
        args, rep = await _impact(request)
    except impact.ImpactError as exc:
        return _impact_error(exc)
    return _csv(impact.to_csv(rep), f"cac-impact-{args[0]}-{args[1]}-{args[2]}.csv")


def _impact_charts(rep: dict[str, Any], _: Any) -> list[str]:
    by = rep["by"]
    months = impact.months_between(rep["from"], rep["to"])
    groups = sorted({r[by] for r in rep["rows"]})
    share = {(r["month"], r[by]): impact.women_share(r) for r in rep["rows"]}
    series = [(g, [share.get((m, g)) for m in months]) for g in groups[:len(charts.PALETTE)]]
    keys = sorted({k for r in rep["rows"] for k, v in r["purpose"].items()
                   if isinstance(v, int)})
    bars = []
    for r in rep["rows"]:
        if not isinstance(r["visits"], int):
            continue
        counts = [r["purpose"].get(k) for k in keys]
        nums = [c if isinstance(c, int) else 0 for c in counts]
        bars.append((f"{r['month']} {r[by]}", nums, r["visits"] - sum(nums)))
    return [charts.share_by_month(series, months, _("Share of women among visits"),
                                  _("no data")),
            charts.stacked_bars(bars, [_(IMPACT_LABELS.get(k, k)) for k in keys],
                                _("Visits by purpose"), _("hidden (small counts)"),
                                _("no data"))]


@routes.get("/reports/impact")
@page()
async def impact_page(request: web.Request) -> web.Response:
    dash = _dash(request)
    _ = i18n.translator(i18n.request_lang(request))
    error = None
    try:
        args = impact.parse_args(request.query)
    except impact.ImpactError as exc:
        error = exc
        args = impact.parse_args({})
    rep = await _impact_of(dash, args)
    qs = urlencode({"from": args[0], "to": args[1], "by": args[2]})
    return dash.render(request, "impact.html", status=400 if error else 200, rep=rep,
                       qs=qs, charts=_impact_charts(rep, _),
                       labels={k: _(v) for k, v in IMPACT_LABELS.items()},
                       error=None if error is None else (error.field, str(error)))
