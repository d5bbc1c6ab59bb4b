"""The agent's HTTP edge, shared by the JSON API, the console and the content routes.

The application keys (service, its executor, the command runner, the reporter), the JSON
error middleware, request parsing, authentication and the call onto the service thread.
Domain errors become HTTP answers here, through the one table in ``agent.http_errors``.
Nothing here imports ``agent.api``, ``agent.console`` or ``agent.content``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aiohttp import web

from agent.commands import CommandRunner
from agent.errors import DomainError
from agent.http_errors import headers_of, status_of
from agent.reporter import Reporter
from agent.service import AgentService, Principal

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SERVICE = web.AppKey("service", AgentService)
EXECUTOR = web.AppKey("executor", ThreadPoolExecutor)
REPORTER = web.AppKey("reporter", Reporter)
COMMANDS = web.AppKey("commands", CommandRunner)


class BadRequest(DomainError):
    """A request that cannot be read (body, field, query); its code says what."""

    def __init__(self, message: str, code: str = "bad_request") -> None:
        super().__init__(code, message)


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
    except DomainError as exc:
        return error_response(status_of(exc), exc.code, exc.message, headers_of(exc))
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


MAX_JSON_DEPTH = 32  # no request of the API nests deeper


def _check_value(value: Any, depth: int = 0) -> None:
    """Refuse nesting deeper than MAX_JSON_DEPTH and strings with lone surrogates (they
    cannot be written to the ledger or the audit file as UTF-8, issue 16)."""
    if depth > MAX_JSON_DEPTH:
        raise BadRequest(f"the body nests deeper than {MAX_JSON_DEPTH} levels", "bad_json")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest("the body holds a string that is not valid Unicode (a lone "
                             "surrogate)", "bad_text") from None
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_value(k, depth + 1)
            _check_value(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check_value(v, depth + 1)


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json"))


async def json_body(request: web.Request, *, allow_empty: bool = False) -> dict[str, Any]:
    raw = await request.read()  # aiohttp refuses bodies over client_max_size with a 413
    if not raw.strip():
        if allow_empty:
            return {}
        raise BadRequest("a JSON object body is required", "bad_json")
    body = await json_value(request)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", "bad_json")
    return body


async def json_value(request: web.Request) -> Any:
    """The body as any JSON value (an object or a list), checked as ``json_body`` does."""
    raw = await request.read()
    if not raw.strip():
        raise BadRequest("a JSON body is required", "bad_json")
    if not _is_json(request.content_type):
        # a browser sends text/plain, form or bodiless-type POSTs across origins without
        # asking first (CORS "simple" requests): only application/json is read
        raise BadRequest("send the body as Content-Type: application/json",
                         "unsupported_media")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequest("the body is not valid JSON", "bad_json") from None
    _check_value(body)
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
        raise DomainError("unauthorized", "an 'Authorization: Bearer <token>' is required")
    return token.strip()


# ---------------------------------------------------------------- plumbing


async def call(request: web.Request, fn: Callable[..., T], *args: Any) -> T:
    """Run a service call on the service's own thread (serialised, off the event loop)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(request.app[EXECUTOR], functools.partial(fn, *args))


async def operator(request: web.Request) -> Principal:
    svc = request.app[SERVICE]
    return await call(request, svc.operator_for_token, bearer(request))


async def manager(request: web.Request) -> Principal:
    who = await operator(request)
    if who.role != "manager":
        raise DomainError("forbidden", "only a manager may do this")
    return who


async def station(request: web.Request) -> str:
    svc = request.app[SERVICE]
    return await call(request, svc.station_for_token, bearer(request),
                      request.match_info["sid"])


def ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)
