"""The hub's HTTP API (CONTRACT §5): fleet and sessions as JSON under /api/v1, /metrics.

Errors are JSON ``{"error": "<code>", "message": "<text>"}`` like the agent's API. Fleet
answers come from memory (``Ingest.views``); sessions from the store, read in a worker
thread on a connection of the request's own, so a large answer never blocks ingest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.config import HUB_ID_RE
from hub.fleet import CacView
from hub.ingest import Ingest
from hub.metrics import CONTENT_TYPE, collect, only, render, wants_fleet
from hub.store import StoreError, UsageStore, open_reader
from hub.tokens import TokenCache, make_guard

if TYPE_CHECKING:
    from hub.dashboard import Dashboard

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
GaugeSource = Callable[[], Mapping[str, tuple[str, float]]]

INGEST = web.AppKey("ingest", Ingest)
DB_PATH = web.AppKey("db_path", Path)
GAUGES: web.AppKey[GaugeSource] = web.AppKey("gauges")

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media_type"}
_encoder = msgspec.json.Encoder()


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


def json_response(obj: object) -> web.Response:
    return web.Response(body=_encoder.encode(obj), content_type="application/json")


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every refusal is a JSON {"error", "message"}; an unexpected fault is a logged 500."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, _HTTP_CODES.get(exc.status, "http_error"),
                              exc.text or exc.reason)
    except StoreError as exc:  # PostgreSQL down or restarting: try again, nothing is lost
        log.error("store unavailable on %s %s: %s", request.method, request.path, exc)  # noqa: TRY400
        return error_response(503, "store_unavailable",
                              "the hub's store does not answer now; try again shortly")
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error; it has been logged")


def iso(ts: float | None) -> str | None:
    """Seconds since the epoch as an ISO 8601 UTC time."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def cac_json(c: CacView) -> dict[str, Any]:
    """One CAC in the CONTRACT §5 shape (plus optional keys)."""
    health: dict[str, Any] = {}
    if c.health is not None:
        health = msgspec.to_builtins(c.health)
        health.pop("v", None)
        health["received_at"] = iso(c.health_seen)
    return {
        "cac_id": c.cac_id,
        "online": c.online,
        "last_seen": iso(c.last_seen),
        "health": health,
        "backlog": c.backlog,
        "version": c.version,
        "boot_id": c.boot_id,
        "state": c.state,
        "first_seen": iso(c.first_seen),
    }


routes = web.RouteTableDef()


CACS_CACHE_SECONDS = 1.0  # the fleet answer is rebuilt at most this often (~50 µs per CAC)
_CACS_CACHE: web.AppKey[dict[str, Any]] = web.AppKey("cacs_cache")


@routes.get("/api/v1/cacs")
async def get_cacs(request: web.Request) -> web.Response:
    cache = request.app[_CACS_CACHE]
    now = time.monotonic()
    if cache.get("body") is None or now - cache["at"] >= CACS_CACHE_SECONDS:
        cache["body"] = _encoder.encode([cac_json(c) for c in request.app[INGEST].views()])
        cache["at"] = now
    return web.Response(body=cache["body"], content_type="application/json")


def _unknown(cac_id: str) -> web.Response:
    return error_response(404, "not_found", f"unknown CAC {cac_id[:80]!r}")


@routes.get("/api/v1/cacs/{cac_id}")
async def get_cac(request: web.Request) -> web.Response:
    cac_id = request.match_info["cac_id"]
    view = request.app[INGEST].view(cac_id)
    if view is None:
        return _unknown(cac_id)
    return json_response(cac_json(view))


SESSIONS_PAGE = 1000  # records per page of /api/v1/cacs/{id}/sessions unless ?limit=
SESSIONS_PAGE_MAX = 10_000
_INT_RE = re.compile(r"[0-9]{1,15}")  # ASCII digits only: str.isdigit() accepts "²"


def _read_sessions(db_path: Path, cac_id: str, after: int, limit: int,
                   shared: UsageStore | None = None
                   ) -> tuple[list[dict[str, Any]], int | None] | None:
    """From ``shared`` (a store any thread may read: PostgreSQL), else a SQLite reader."""
    with contextlib.ExitStack() as stack:
        store = shared if shared is not None else stack.enter_context(open_reader(db_path))
        if not store.has_cac(cac_id):
            return None
        return store.sessions_page(cac_id, after, limit)


def _query_int(request: web.Request, key: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(key)
    if raw is None:
        return default
    if not _INT_RE.fullmatch(raw) or not low <= int(raw) <= high:
        raise web.HTTPBadRequest(text=f"{key} must be a whole number from {low} to {high}")
    return int(raw)


@routes.get("/api/v1/cacs/{cac_id}/sessions")
async def get_sessions(request: web.Request) -> web.Response:
    """The closed session records received from the CAC, each once, by seq, one page at a
    time: ``?after=SEQ&limit=N`` (default 1000); a ``Link: <...>; rel="next"`` header
    (and ``X-Next-After``) names the next page while there is one."""
    cac_id = request.match_info["cac_id"]
    if not HUB_ID_RE.fullmatch(cac_id):
        return _unknown(cac_id)
    after = _query_int(request, "after", 0, 0, 10**15)
    limit = _query_int(request, "limit", SESSIONS_PAGE, 1, SESSIONS_PAGE_MAX)
    try:
        ingest_store = request.app[INGEST].store
        found = await asyncio.to_thread(_read_sessions, request.app[DB_PATH], cac_id,
                                        after, limit,
                                        ingest_store if ingest_store.shared_reads else None)
    except StoreError as exc:
        log.error("sessions of %s: %s", cac_id, exc)  # noqa: TRY400
        return error_response(503, "store_unavailable", "the store cannot be read right now")
    if found is None:
        if request.app[INGEST].view(cac_id) is None:
            return _unknown(cac_id)
        found = [], None  # heard from, nothing stored yet
    rows, next_after = found
    resp = json_response(rows)
    if next_after is not None:
        resp.headers["Link"] = (f"</api/v1/cacs/{cac_id}/sessions?after={next_after}"
                                f"&limit={limit}>; rel=\"next\"")
        resp.headers["X-Next-After"] = str(next_after)
    return resp


@routes.get("/metrics")
async def get_metrics(request: web.Request) -> web.Response:
    """Every metric, or only those named by ``?name[]=cac_hub_...`` (repeatable): a scraper
    that wants the counters does not pay for the per-CAC series."""
    ingest = request.app[INGEST]
    names = request.query.getall("name[]", [])
    views = ingest.views() if wants_fleet(names) else []
    text = render(only(collect(ingest.counters.snapshot(), views, request.app[GAUGES]()),
                       names))
    return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})


def make_app(ingest: Ingest, db_path: Path, gauges: GaugeSource = dict,
             dashboard: Dashboard | None = None, *,
             metrics_public: bool = False,
             signer: Ed25519PrivateKey | None = None) -> web.Application:
    """The hub's HTTP app; with ``dashboard`` also the technicians' pages (hub/dashboard.py).
    Every ``/api/v1`` path and ``/metrics`` needs a token or a login (``hub.tokens``)."""
    cookie_check = dashboard.caller if dashboard is not None else None
    shared = ingest.store.aux if ingest.store.shared_reads else None  # PostgreSQL
    guard = make_guard(TokenCache(db_path, shared), cookie_check, metrics_public)
    app = web.Application(client_max_size=64 * 1024, middlewares=[json_errors, guard])
    app[INGEST] = ingest
    app[DB_PATH] = db_path
    app[GAUGES] = gauges
    app[_CACS_CACHE] = {}
    app.add_routes(routes)
    if dashboard is not None:
        dashboard.setup(app)
    from hub.content import setup as setup_content  # catalogue, manifests, blobs

    setup_content(app, db_path.parent / "content", signer)  # db_path: DATA_DIR/hub.sqlite3
    from hub import __version__
    from wire.api_index import add_index_route

    links = {"metrics": "/metrics"}
    if dashboard is not None:
        links["dashboard"] = "/"
    add_index_route(app, "cac-hub", __version__, links)
    return app
