"""The agent's HTTP API (CONTRACT §4): operators and station kiosks, JSON under /api/v1.

Routes only: parsing, authentication and the error table are in ``agent.edge`` and
``agent.http_errors``; ``make_app`` assembles the API, the console, the content routes and
the runtime (``agent.runtime``) into one application.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

from aiohttp import web

from agent import __version__
from agent.commands import CommandRunner
from agent.console import setup_console
from agent.content.routes import setup as setup_content
from agent.edge import (
    COMMANDS,
    EXECUTOR,
    MAX_BODY_BYTES,
    REPORTER,
    SERVICE,
    BadRequest,
    bearer,
    call,
    field_int,
    field_str,
    json_body,
    json_errors,
    json_value,
    manager,
    ok,
    operator,
    station,
)
from agent.impact import check_profile
from agent.meter.session import EndReason
from agent.reporter import Reporter
from agent.reports import till_day_for
from agent.runtime import AgentRuntime
from agent.service import AgentService
from agent.uplink import UPLINK, UplinkMonitor
from agent.usecases.till import MAX_CASH
from wire.api_index import add_index_route
from wire.catalogue import MAX_QUANTITY

__all__ = ["COMMANDS", "EXECUTOR", "MAX_BODY_BYTES", "REPORTER", "SERVICE", "make_app"]

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- operator endpoints

routes = web.RouteTableDef()


@routes.post("/api/v1/login")
async def login(request: web.Request) -> web.Response:
    body = await json_body(request)
    name = field_str(body, "name", max_len=64)
    password = field_str(body, "password", max_len=1024)
    svc = request.app[SERVICE]
    return ok(await call(request, svc.login_from, name, password, request.remote))


@routes.post("/api/v1/logout")
async def logout(request: web.Request) -> web.Response:
    await operator(request)
    await call(request, request.app[SERVICE].logout, bearer(request))
    return ok({"ok": True})


@routes.get("/api/v1/stations")
async def stations(request: web.Request) -> web.Response:
    await operator(request)
    return ok(await call(request, request.app[SERVICE].stations))


@routes.get("/api/v1/sessions")
async def sessions(request: web.Request) -> web.Response:
    await operator(request)
    return ok(await call(request, request.app[SERVICE].active_sessions))


@routes.post("/api/v1/sessions")
async def start_session(request: web.Request) -> web.Response:
    who = await operator(request)
    body = await json_body(request)
    sid = field_str(body, "station", max_len=32)
    minutes = field_int(body, "minutes", 1, 24 * 60, nullable=True)
    category = field_str(body, "category", required=False, max_len=32)
    svc = request.app[SERVICE]
    profile = _profile(request, body)
    return ok(await call(request, svc.start_session, sid, minutes, category, who.name,
                         profile), 201)


@routes.post("/api/v1/sessions/{id}/extend")
async def extend_session(request: web.Request) -> web.Response:
    who = await operator(request)
    body = await json_body(request)
    minutes = field_int(body, "minutes", 1, 24 * 60)
    svc = request.app[SERVICE]
    return ok(await call(request, svc.extend, request.match_info["id"], minutes, who.name))


@routes.post("/api/v1/sessions/{id}/end")
async def end_session(request: web.Request) -> web.Response:
    who = await operator(request)
    await json_body(request, allow_empty=True)
    svc = request.app[SERVICE]
    return ok(await call(request, svc.end, request.match_info["id"], EndReason.OPERATOR,
                         f"operator:{who.name}"))


@routes.post("/api/v1/sessions/{id}/pause")
async def pause_session(request: web.Request) -> web.Response:
    """``{"reason": optional}``: billed and remaining time stop (CONTRACT §7)."""
    who = await operator(request)
    body = await json_body(request, allow_empty=True)
    reason = field_str(body, "reason", required=False, max_len=200)
    svc = request.app[SERVICE]
    return ok(await call(request, svc.pause, request.match_info["id"], reason,
                         f"operator:{who.name}"))


@routes.post("/api/v1/sessions/{id}/resume")
async def resume_session(request: web.Request) -> web.Response:
    who = await operator(request)
    await json_body(request, allow_empty=True)
    svc = request.app[SERVICE]
    return ok(await call(request, svc.resume, request.match_info["id"],
                         f"operator:{who.name}"))


@routes.post("/api/v1/sessions/{id}/move")
async def move_session(request: web.Request) -> web.Response:
    """``{"station"}``: the same session on a free, unlocked station."""
    who = await operator(request)
    body = await json_body(request)
    target = field_str(body, "station", max_len=32)
    svc = request.app[SERVICE]
    return ok(await call(request, svc.move, request.match_info["id"], target,
                         f"operator:{who.name}"))


@routes.post("/api/v1/stations/pause-all")
async def pause_all(request: web.Request) -> web.Response:
    who = await operator(request)
    body = await json_body(request, allow_empty=True)
    reason = field_str(body, "reason", required=False, max_len=200)
    svc = request.app[SERVICE]
    return ok(await call(request, svc.pause_all, reason, f"operator:{who.name}"))


@routes.post("/api/v1/stations/resume-all")
async def resume_all(request: web.Request) -> web.Response:
    who = await operator(request)
    await json_body(request, allow_empty=True)
    svc = request.app[SERVICE]
    return ok(await call(request, svc.resume_all, f"operator:{who.name}"))


@routes.post("/api/v1/vouchers")
async def sell_voucher(request: web.Request) -> web.Response:
    who = await operator(request)
    body = await json_body(request)
    minutes = field_int(body, "minutes", 1, 24 * 60)
    category = field_str(body, "category", required=False, max_len=32)
    if "profile" in body:  # a voucher is sold, not used: the visit is profiled at redeem
        raise BadRequest("profile: not taken on a voucher sale (give it when the voucher "
                         "is used, at the kiosk)", "bad_profile")
    svc = request.app[SERVICE]
    return ok(await call(request, svc.sell_voucher, minutes, category, who.name), 201)


@routes.get("/api/v1/vouchers/{code}")
async def voucher_info(request: web.Request) -> web.Response:
    await operator(request)
    svc = request.app[SERVICE]
    return ok(await call(request, svc.voucher_info, request.match_info["code"]))


@routes.post("/api/v1/vouchers/{code}/void")
async def void_voucher(request: web.Request) -> web.Response:
    who = await operator(request)
    body = await json_body(request)
    reason = field_str(body, "reason", max_len=200)
    if not reason or not reason.strip():
        raise BadRequest("a void needs a reason", "missing_field")
    svc = request.app[SERVICE]
    return ok(await call(request, svc.void_voucher, request.match_info["code"], reason.strip(),
                         who.name))


@routes.get("/api/v1/quote")
async def quote(request: web.Request) -> web.Response:
    await operator(request)
    try:
        minutes = int(request.query.get("minutes", ""))
    except ValueError:
        raise BadRequest("'minutes' must be an integer", "bad_field") from None
    if not 1 <= minutes <= 24 * 60:
        raise BadRequest("'minutes' must be between 1 and 1440", "bad_field")
    category = request.query.get("category") or None
    svc = request.app[SERVICE]
    fee = await call(request, svc.quote, minutes, category)
    return ok({"minutes": minutes, "fee": fee, "currency": svc.tariff.currency})


@routes.post("/api/v1/stations/{sid}/lock")
async def lock_station(request: web.Request) -> web.Response:
    who = await operator(request)
    body = await json_body(request, allow_empty=True)
    reason = field_str(body, "reason", required=False, max_len=500) or ""
    svc = request.app[SERVICE]
    return ok(await call(request, svc.lock_station, request.match_info["sid"],
                         f"operator:{who.name}", reason))


@routes.post("/api/v1/stations/{sid}/unlock")
async def unlock_station(request: web.Request) -> web.Response:
    who = await operator(request)
    await json_body(request, allow_empty=True)
    svc = request.app[SERVICE]
    return ok(await call(request, svc.unlock_station, request.match_info["sid"],
                         f"operator:{who.name}"))


@routes.post("/api/v1/stations/{sid}/message")
async def message_station(request: web.Request) -> web.Response:
    """``{"text", "seconds": optional}``; station ``*`` sends to every station; an empty
    text clears the message."""
    who = await operator(request)
    body = await json_body(request)
    text = field_str(body, "text", max_len=2000)
    seconds = field_int(body, "seconds", 1, 24 * 3600, nullable=True, required=False)
    sid = request.match_info["sid"]
    svc = request.app[SERVICE]
    return ok(await call(request, svc.send_message, None if sid == "*" else sid, text or "",
                         seconds, f"operator:{who.name}"))


@routes.get("/api/v1/tariff")
async def get_tariff(request: web.Request) -> web.Response:
    await operator(request)
    return ok(await call(request, request.app[SERVICE].tariff_view))


@routes.put("/api/v1/tariff")
async def put_tariff(request: web.Request) -> web.Response:
    """Manager only: the body is the config file's ``[tariff]`` table as JSON."""
    who = await manager(request)
    body = await json_body(request)
    svc = request.app[SERVICE]
    return ok(await call(request, svc.set_tariff, body, f"operator:{who.name}"))


@routes.get("/api/v1/audit")
async def audit(request: web.Request) -> web.Response:
    await manager(request)
    try:
        limit = int(request.query.get("limit", "200"))
    except ValueError:
        raise BadRequest("'limit' must be an integer", "bad_field") from None
    svc = request.app[SERVICE]
    return ok(await call(request, svc.audit_entries, None, None, max(1, min(limit, 5000))))


# ---------------------------------------------------------------- the till (CONTRACT §8)


@routes.get("/api/v1/catalogue")
async def get_catalogue(request: web.Request) -> web.Response:
    await operator(request)
    return ok(await call(request, request.app[SERVICE].catalogue))


@routes.put("/api/v1/catalogue")
async def put_catalogue(request: web.Request) -> web.Response:
    """Manager only: the body is ``{"catalogue": [...]}`` (the ``[[catalogue]]`` tables)."""
    who = await manager(request)
    body = await json_value(request)
    svc = request.app[SERVICE]
    return ok(await call(request, svc.set_catalogue, body, f"operator:{who.name}"))


@routes.post("/api/v1/sales")
async def sell(request: web.Request) -> web.Response:
    who = await operator(request)
    body = await json_body(request)
    item = field_str(body, "item", max_len=32)
    quantity = field_int(body, "quantity", 1, MAX_QUANTITY)
    session = field_str(body, "session", required=False, max_len=64)
    category = field_str(body, "category", required=False, max_len=32)
    svc = request.app[SERVICE]
    return ok(await call(request, svc.sell, item, quantity, session, category, who.name), 201)


@routes.post("/api/v1/sales/{id}/void")
async def void_sale(request: web.Request) -> web.Response:
    who = await manager(request)
    body = await json_body(request)
    reason = field_str(body, "reason", max_len=200)
    if not reason or not reason.strip():
        raise BadRequest("'reason': a void needs a reason", "missing_field")
    svc = request.app[SERVICE]
    return ok(await call(request, svc.void_sale, request.match_info["id"], reason.strip(),
                         who.name))


@routes.post("/api/v1/shifts")
async def open_shift(request: web.Request) -> web.Response:
    who = await operator(request)
    body = await json_body(request)
    opening = field_int(body, "opening_float", 0, MAX_CASH)
    svc = request.app[SERVICE]
    return ok(await call(request, svc.open_shift, opening, who.name), 201)


@routes.get("/api/v1/shifts/current")
async def current_shift(request: web.Request) -> web.Response:
    await operator(request)
    return ok(await call(request, request.app[SERVICE].current_shift))


@routes.post("/api/v1/shifts/current/close")
async def close_shift(request: web.Request) -> web.Response:
    who = await operator(request)
    body = await json_body(request)
    counted = field_int(body, "counted_cash", 0, MAX_CASH)
    svc = request.app[SERVICE]
    return ok(await call(request, svc.close_shift, counted, who.name))


@routes.get("/api/v1/print/jobs")
async def print_jobs(request: web.Request) -> web.Response:
    """Held print jobs of the stations' CUPS queues: ``[{"id", "station", "pages", "color",
    "submitted_at"}]``; 503 ``print_unavailable`` when CUPS does not answer."""
    await operator(request)
    return ok(await call(request, request.app[SERVICE].print_jobs))


@routes.post("/api/v1/print/jobs/{id}/release")
async def release_print(request: web.Request) -> web.Response:
    who = await operator(request)
    await json_body(request, allow_empty=True)
    svc = request.app[SERVICE]
    return ok(await call(request, svc.release_print, request.match_info["id"], who.name))


@routes.post("/api/v1/print/jobs/{id}/cancel")
async def cancel_print(request: web.Request) -> web.Response:
    who = await operator(request)
    await json_body(request, allow_empty=True)
    svc = request.app[SERVICE]
    return ok(await call(request, svc.cancel_print, request.match_info["id"], who.name))


@routes.get("/api/v1/reports/day")
async def report_day(request: web.Request) -> web.Response:
    await operator(request)
    svc = request.app[SERVICE]
    text = request.query.get("date")
    try:
        day = date.fromisoformat(text) if text else None
    except ValueError:
        raise BadRequest("'date' must be YYYY-MM-DD", "bad_field") from None
    if day is None:
        day = svc.clock.now().astimezone(svc.tz).date()
    return ok(await call(request, till_day_for, svc, day))


# ---------------------------------------------------------------- station endpoints


@routes.post("/api/v1/stations/{sid}/redeem")
async def redeem(request: web.Request) -> web.Response:
    sid = await station(request)
    body = await json_body(request)
    code = field_str(body, "code", max_len=64)
    svc = request.app[SERVICE]
    profile = _profile(request, body)
    return ok(await call(request, svc.redeem, sid, code, profile), 201)


@routes.post("/api/v1/stations/{sid}/session/profile")
async def station_profile(request: web.Request) -> web.Response:
    """CONTRACT §9b: the kiosk's "help us count" answer, once per session."""
    sid = await station(request)
    body = await json_body(request)
    # the body is the profile, or {"profile": {...}} as the start and the redeem take it
    profile = _profile(request, body if set(body) == {"profile"} else {"profile": body})
    return ok(await call(request, request.app[SERVICE].set_profile, sid, profile))


def _profile(request: web.Request, body: dict[str, Any]) -> dict[str, str] | None:
    """The body's optional ``profile``, checked against [impact]; 400 naming the part."""
    return check_profile(body.get("profile"), request.app[SERVICE].config.impact)


@routes.get("/api/v1/stations/{sid}/session")
async def station_session(request: web.Request) -> web.Response:
    sid = await station(request)
    return ok(await call(request, request.app[SERVICE].station_session, sid))


@routes.post("/api/v1/stations/{sid}/session/end")
async def station_end(request: web.Request) -> web.Response:
    sid = await station(request)
    body = await json_body(request, allow_empty=True)
    reason_text = field_str(body, "reason", required=False, max_len=16) or "citizen"
    if reason_text not in (EndReason.CITIZEN, EndReason.IDLE):
        raise BadRequest("'reason' must be 'citizen' or 'idle'", "bad_field")
    svc = request.app[SERVICE]
    return ok(await call(request, svc.end_on_station, sid, EndReason(reason_text)))


@routes.get("/api/v1/stations/{sid}/print/jobs")
async def station_print_jobs(request: web.Request) -> web.Response:
    """The station's own held print jobs: ``[{"id", "pages", "color", "price", "currency",
    ...}]`` (the kiosk: "3 pages, 3.00 MAD, collect at the counter")."""
    sid = await station(request)
    return ok(await call(request, request.app[SERVICE].station_print_jobs, sid))


@routes.get("/api/v1/stations/{sid}/uplink")
async def station_uplink(request: web.Request) -> web.Response:
    """Whether the site's uplink is up (the kiosk's start page says when the internet is
    down): ``{"up", "hub", "internet", "checked_at", "changed_at", "last_outage_s"}``."""
    await station(request)
    return ok(request.app[UPLINK].snapshot())


@routes.get("/api/v1/health")
async def health(request: web.Request) -> web.Response:
    svc = request.app[SERVICE]
    backlog = await call(request, svc.ledger.backlog)
    return ok({"status": "ok", "cac_id": svc.config.cac_id, "version": __version__,
               "backlog": backlog, "uplink": request.app[UPLINK].snapshot()})


# ---------------------------------------------------------------- the application


def make_app(service: AgentService, reporter_enabled: bool = False,
             request_restart: Callable[[], None] | None = None) -> web.Application:
    """The agent's web application; with ``reporter_enabled`` it also reports to the hub and
    runs its commands (``request_restart`` is what the ``restart`` command calls)."""
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[json_errors])
    app[SERVICE] = service
    app[EXECUTOR] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agent-service")
    app[COMMANDS] = CommandRunner(service, app[EXECUTOR], request_restart)
    reporter: Reporter | None = None
    if reporter_enabled:
        def health_snapshot() -> dict[str, Any]:
            return {**service.health_snapshot(), "uplink": app[UPLINK].snapshot()}

        reporter = app[REPORTER] = Reporter(service.config, service.ledger, app[EXECUTOR],
                                            health_snapshot, command_handler=app[COMMANDS].run)
    app[UPLINK] = UplinkMonitor(service.config.uplink, None if reporter is None
                                else reporter.connected.is_set)
    app.cleanup_ctx.append(app[UPLINK].lifecycle)
    app.add_routes(routes)
    setup_console(app)  # the operator console at /console/
    content = setup_content(app)  # portal content cache, its routes, resync_content
    runtime = AgentRuntime(service, app[EXECUTOR], app.get(REPORTER), content)
    app.cleanup_ctx.append(runtime.lifecycle)
    add_index_route(app, "cac-agent", __version__,
                    {"console": "/console/", "health": "/api/v1/health"})
    return app
