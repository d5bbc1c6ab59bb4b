"""The agent's HTTP API (CONTRACT §4): operators and station kiosks, JSON under /api/v1."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiohttp import web

from agent import __version__
from agent.commands import CommandRunner
from agent.reporter import Reporter
from agent.service import AgentService, Principal, ServiceError
from agent.session import EndReason
from agent.systemd import Notifier

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
TICK_SECONDS = 1.0  # how often time-exhausted sessions are closed and checkpoints taken

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SERVICE = web.AppKey("service", AgentService)
EXECUTOR = web.AppKey("executor", ThreadPoolExecutor)
REPORTER = web.AppKey("reporter", Reporter)
COMMANDS = web.AppKey("commands", CommandRunner)


class BadRequest(ServiceError):
    def __init__(self, message: str, code: str = "bad_request") -> None:
        super().__init__(400, code, message)


def error_response(status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status,
                             headers=headers)


_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media"}


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every refusal is a JSON {"error", "message"}; an unexpected fault is a logged 500."""
    try:
        return await handler(request)
    except ServiceError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        message = exc.text or exc.reason
        if exc.status == 413:
            message = f"request body over {MAX_BODY_BYTES} bytes"
        return error_response(exc.status, code, message)
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error; it has been logged")


# ---------------------------------------------------------------- request parsing


async def json_body(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    raw = await request.read()  # aiohttp refuses bodies over client_max_size with a 413
    if not raw.strip():
        if allow_empty:
            return {}
        raise BadRequest("a JSON object body is required", "bad_json")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not valid JSON", "bad_json") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", "bad_json")
    return body


def field_int(body: dict[str, Any], key: str, lo: int, hi: int, *,
              nullable: bool = False, required: bool = True) -> int | None:
    if key not in body:
        if not required and nullable:
            return None
        raise BadRequest(f"{key!r} is required", "missing_field")
    value = body[key]
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{key!r} must be an integer", "bad_field")
    if not lo <= value <= hi:
        raise BadRequest(f"{key!r} must be between {lo} and {hi}", "bad_field")
    return value


def field_str(body: dict[str, Any], key: str, *, required: bool = True,
              max_len: int = 200) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise BadRequest(f"{key!r} is required", "missing_field")
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{key!r} must be a string", "bad_field")
    if len(value) > max_len:
        raise BadRequest(f"{key!r} is longer than {max_len} characters", "bad_field")
    return value


def bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ServiceError(401, "unauthorized", "an 'Authorization: Bearer <token>' is required")
    return token.strip()


# ---------------------------------------------------------------- plumbing


async def call(request: web.Request, fn: Callable[..., T], *args: Any) -> T:
    """Run a service call on the service's own thread (serialised, off the event loop)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(request.app[EXECUTOR], functools.partial(fn, *args))


async def operator(request: web.Request) -> Principal:
    svc = request.app[SERVICE]
    return await call(request, svc.operator_for_token, bearer(request))


async def station(request: web.Request) -> str:
    svc = request.app[SERVICE]
    return await call(request, svc.station_for_token, bearer(request),
                      request.match_info["sid"])


def ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


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
    return ok(await call(request, svc.start_session, sid, minutes, category, who.name), 201)


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


@routes.post("/api/v1/vouchers")
async def sell_voucher(request: web.Request) -> web.Response:
    who = await operator(request)
    body = await json_body(request)
    minutes = field_int(body, "minutes", 1, 24 * 60)
    category = field_str(body, "category", required=False, max_len=32)
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


async def manager(request: web.Request) -> Principal:
    who = await operator(request)
    if who.role != "manager":
        raise ServiceError(403, "forbidden", "only a manager may do this")
    return who


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


# ---------------------------------------------------------------- station endpoints


@routes.post("/api/v1/stations/{sid}/redeem")
async def redeem(request: web.Request) -> web.Response:
    sid = await station(request)
    body = await json_body(request)
    code = field_str(body, "code", max_len=64)
    svc = request.app[SERVICE]
    return ok(await call(request, svc.redeem, sid, code), 201)


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


@routes.get("/api/v1/health")
async def health(request: web.Request) -> web.Response:
    svc = request.app[SERVICE]
    backlog = await call(request, svc.ledger.backlog)
    return ok({"status": "ok", "cac_id": svc.config.cac_id, "version": __version__,
               "backlog": backlog})


# ---------------------------------------------------------------- the application


async def _ticker(app: web.Application, notifier: Notifier | None = None) -> None:
    svc = app[SERVICE]
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(TICK_SECONDS)
        try:
            await loop.run_in_executor(app[EXECUTOR], svc.tick)
        except Exception:
            log.exception("session tick failed; retrying in %s s", TICK_SECONDS)
        else:
            if notifier is not None:  # systemd: READY=1, then watchdog pings (agent/systemd.py)
                notifier.tick()


async def _lifecycle(app: web.Application) -> Any:
    reporter = app.get(REPORTER)
    if reporter is not None:
        reporter.start()
    notifier = Notifier()
    task = asyncio.create_task(_ticker(app, notifier))
    yield
    notifier.stopping()
    # shutdown order: stop the ticker, write a last checkpoint, publish the retained
    # `offline` and disconnect, release the service thread
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    svc = app[SERVICE]
    loop = asyncio.get_running_loop()
    if svc.sessions:
        await loop.run_in_executor(app[EXECUTOR], svc.checkpoint)
    if reporter is not None:
        await reporter.stop()
    app[EXECUTOR].shutdown(wait=True)


def make_app(service: AgentService, reporter_enabled: bool = False,
             request_restart: Callable[[], None] | None = None) -> web.Application:
    """The agent's web application; with ``reporter_enabled`` it also reports to the hub and
    runs its commands (``request_restart`` is what the ``restart`` command calls)."""
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[json_errors])
    app[SERVICE] = service
    app[EXECUTOR] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agent-service")
    app[COMMANDS] = CommandRunner(service, app[EXECUTOR], request_restart)
    if reporter_enabled:
        app[REPORTER] = Reporter(service.config, service.ledger, app[EXECUTOR],
                                 service.health_snapshot, command_handler=app[COMMANDS].run)
    app.add_routes(routes)
    from agent.console import setup_console  # the operator console at /console/
    setup_console(app)
    app.cleanup_ctx.append(_lifecycle)
    from agent.content import setup as setup_content  # portal content cache, resync_content

    setup_content(app)
    from wire.api_index import add_index_route

    add_index_route(app, "cac-agent", __version__,
                    {"console": "/console/", "health": "/api/v1/health"})
    return app
